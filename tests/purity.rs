//! The pure core stays pure (issue 15; docs/architecture.md, "Crates"): the crate
//! `kube-lighthouse-core` (`crates/core`: model, api, azure) and the sign-in broker's core
//! (`src/federation/core.rs`, `rotation.rs`) use no client, no runtime, no I/O and nothing of
//! the shell, so every decision in them is a plain function, tested synchronously.
//!
//! For the core crate the compiler enforces most of it (it has no client, runtime or HTTP
//! dependency: `cargo check -p kube-lighthouse-core`); what it cannot see is the standard
//! library's I/O, environment and clock, and the broker's core, which lives in the controller's
//! crate. This test reads those sources and fails on any use of what a pure module must not
//! touch, naming the file and line.

use std::path::{Path, PathBuf};

/// What a pure module must not name, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("crate::controller", "the shell"),
    ("crate::webhook", "the shell"),
    ("crate::serve", "the shell"),
    ("crate::runtime", "the process"),
    ("crate::lease", "the process"),
    ("crate::http", "the process"),
    ("crate::metrics", "the process"),
    ("crate::config", "the process"),
    ("crate::plugin", "the plugin's client"),
    ("kube::Client", "an API client"),
    ("kube::Api", "an API client"),
    ("kube::api::Api", "an API client"),
    ("kube::client", "an API client"),
    ("kube::runtime", "kube's runtime"),
    ("kube::discovery", "API discovery"),
    ("tokio", "an async runtime"),
    ("futures", "async"),
    ("async fn", "async"),
    (".await", "async"),
    ("hyper", "HTTP"),
    ("axum", "HTTP"),
    ("reqwest", "HTTP"),
    ("std::fs", "file I/O"),
    ("std::net", "network I/O"),
    ("std::process", "processes"),
    ("std::env", "the environment"),
    ("std::time::SystemTime", "the clock (pass `now` in)"),
    ("Instant::now", "the clock (pass `now` in)"),
    ("tracing", "logging (the shell logs)"),
];

/// Modules that may read the clock once to hand it to the pure functions: the name of the
/// function that does.
const CLOCK_READERS: &[(&str, &str)] = &[("crates/core/src/model/outcome.rs", "jiff::Timestamp::now()")];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_pure_core_uses_no_client_no_runtime_no_io_and_nothing_of_the_shell() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("crates/core/src"), &mut files);
    // The sign-in broker's pure core (its shell is the rest of src/federation).
    files.extend(["src/federation/core.rs", "src/federation/rotation.rs"].map(|f| root.join(f)));
    assert!(files.len() > 20, "found only {} files: is the core still crates/core/src?", files.len());
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source");
        let relative = file.strip_prefix(root).expect("relative").display().to_string();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for (needle, why) in FORBIDDEN {
                if code.contains(needle) {
                    offences.push(format!("{relative}:{}: `{needle}` ({why}): {}", number + 1, line.trim()));
                }
            }
            if code.contains("::now()") && !CLOCK_READERS.iter().any(|(f, call)| relative == *f && code.contains(call))
            {
                offences.push(format!("{relative}:{}: reads the clock; pass `now` in: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(offences.is_empty(), "the pure core is not pure:\n{}", offences.join("\n"));
}
