//! What users read points to the project's own docs (docs/roles.md, docs/just-in-time.md,
//! docs/reference.md, …), never to the internal specification ("SPEC §3"), which users do not
//! have.
//!
//! What is user-facing, and how this test tells it from code comments, which may keep such
//! references for developers:
//! - every file under README.md, CHANGELOG.md, docs/, charts/, examples/, plugins/ and crds/,
//!   comments included (users read values.yaml, the templates and the examples' comments);
//! - in src/, every string literal and every line of code, found by a small lexer that drops
//!   `//` and `/* */` comments (doc comments too) and keeps string literals, raw strings
//!   included: error messages, status reasons and messages, Events, log lines, CLI texts;
//! - the doc comments that do reach users, where they arrive: clap makes `--help` of the
//!   command-line types' `///` (rendered here for every subcommand of the plugin and for the
//!   controller's flags), and schemars makes the CRDs' descriptions of the API types' (crds/,
//!   above; tests/crds_current.rs keeps it generated).

use std::path::{Path, PathBuf};

use clap::CommandFactory;

/// What cites the specification.
const CITATIONS: [&str; 3] = ["SPEC §", "the SPEC", "SPEC's"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn citations(text: &str) -> Vec<&'static str> {
    CITATIONS.iter().copied().filter(|c| text.contains(c)).collect()
}

#[test]
fn user_facing_files_cite_no_specification() {
    let mut all = Vec::new();
    for top in ["README.md", "CHANGELOG.md", "docs", "charts", "examples", "plugins", "crds"] {
        files(&repo().join(top), &mut all);
    }
    let mut found = Vec::new();
    for path in &all {
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        for (n, line) in text.lines().enumerate() {
            if !citations(line).is_empty() {
                found.push(format!(
                    "{}:{}: {}",
                    path.strip_prefix(repo()).unwrap_or(path).display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(all.len() > 50, "too few files read: {}", all.len());
    assert!(
        found.is_empty(),
        "user-facing text cites the specification; point to docs/ instead:\n{}",
        found.join("\n")
    );
}

/// The code of a Rust source with its comments removed, line numbers kept: string literals
/// and code stay, `//…` and `/*…*/` (doc comments included) become blanks.
fn without_comments(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let keep_newlines = |out: &mut String, text: &[char]| out.extend(text.iter().filter(|c| **c == '\n'));
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i = (i + 2).min(chars.len());
            keep_newlines(&mut out, &chars[start..i]);
        } else if c == 'r' && matches!(next, Some('"') | Some('#')) && (i == 0 || !chars[i - 1].is_alphanumeric()) {
            // A raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let start = i;
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(&chars[start..j]);
            i = j;
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
            out.extend(&chars[start..i]);
        } else if c == '\'' {
            // A char literal ('x', '\n', '"') or a lifetime ('a).
            if next == Some('\\') {
                let start = i;
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i = (i + 1).min(chars.len());
                out.extend(&chars[start..i]);
            } else if chars.get(i + 2) == Some(&'\'') {
                out.extend(&chars[i..i + 3]);
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[test]
fn the_lexer_keeps_strings_and_drops_comments() {
    let source = "/// SPEC § doc\nlet a = \"SPEC § in a string\"; // SPEC § trailing\n/* SPEC §\n */ let b = r#\"raw \"SPEC §\"\"#;\nlet c = '\"'; let d = \"// not a comment SPEC §\";\n";
    let code = without_comments(source);
    let lines: Vec<&str> = code.lines().collect();
    assert_eq!(lines[0], "");
    assert_eq!(lines[1].trim_end(), "let a = \"SPEC § in a string\";");
    assert!(lines[3].contains("raw \"SPEC §\""), "{code}");
    assert!(lines[4].contains("// not a comment SPEC §"), "{code}");
    assert_eq!(code.matches("SPEC §").count(), 3, "{code}");
}

#[test]
fn source_strings_cite_no_specification() {
    let mut all = Vec::new();
    files(&repo().join("src"), &mut all);
    files(&repo().join("crates"), &mut all);
    let mut found = Vec::new();
    for path in all.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
        let source = std::fs::read_to_string(path).expect("source");
        for (n, line) in without_comments(&source).lines().enumerate() {
            if !citations(line).is_empty() {
                found.push(format!(
                    "{}:{}: {}",
                    path.strip_prefix(repo()).unwrap_or(path).display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(found.is_empty(), "strings in src/ cite the specification; point to docs/ instead:\n{}", found.join("\n"));
}

/// Every `--help` text: the command's and, recursively, each subcommand's.
fn help(command: &mut clap::Command, out: &mut Vec<(String, String)>) {
    command.build();
    out.push((command.get_name().to_string(), command.render_long_help().to_string()));
    for sub in command.get_subcommands_mut() {
        help(sub, out);
    }
}

#[test]
fn help_cites_no_specification() {
    let mut texts = Vec::new();
    help(&mut kubectl_lighthouse::cli::Cli::command(), &mut texts);
    help(&mut kube_lighthouse::config::Config::command(), &mut texts);
    assert!(texts.len() > 20, "too few help texts: {}", texts.len());
    let found: Vec<String> = texts
        .iter()
        .filter(|(_, text)| !citations(text).is_empty())
        .map(|(name, text)| {
            let lines: Vec<&str> = text.lines().filter(|l| !citations(l).is_empty()).collect();
            format!("{name}: {}", lines.join(" / "))
        })
        .collect();
    assert!(found.is_empty(), "--help cites the specification:\n{}", found.join("\n"));
}
