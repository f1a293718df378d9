//! A release as users get it: `hack/release.sh VERSION` on a fresh clone, then each artifact
//! used the way its audience uses it.
//!
//! - the version is written once, in Cargo.toml: the chart and the plugin's `version` agree
//!   with it, and the krew manifest in plugins/ is a template, not a release;
//! - `hack/release.sh` refuses a dirty tree and a version Cargo.toml does not declare, and
//!   builds every artifact into dist/: the image archive named as the chart expects, the chart
//!   packaged at VERSION, the static plugin archive, the krew manifest with the archive's real
//!   URL and sha256, and SHA256SUMS; a second run gives the same SHA256SUMS;
//! - an MSP engineer's install: krew (built from its Go module) installs the plugin from the
//!   released manifest and archive with no network at all, and `kubectl lighthouse version`
//!   prints VERSION; an archive that does not match the manifest's sha256 is refused.
//!
//! The platform team's install (the packaged chart and the released image on a real node, and
//! `helm upgrade` from the previous release) is `the_release_on_a_node` in tests/node_e2e.rs,
//! in hack/test.sh's node phase.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use sha2::{Digest, Sha256};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const REPOSITORY: &str = "ghcr.io/kube-lighthouse/kube-lighthouse";
const RELEASES: &str = "https://github.com/kube-lighthouse/kube-lighthouse/releases/download";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn output(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

/// Runs `command`, failing the test with its output unless it succeeds; returns its stdout.
fn run(command: &mut Command) -> String {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `command`, which must fail; returns its stderr.
fn fails(command: &mut Command) -> String {
    let out = output(command);
    assert!(!out.status.success(), "{command:?} succeeded:\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sha256(path: &Path) -> String {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The package version is the one fact: the chart in the repository states it too (so that a
/// chart installed from a checkout runs the image of the same version), the krew manifest in
/// plugins/ is only a template, and the changelog has the version's section.
#[test]
fn the_version_is_written_once() {
    let chart = yaml(&repo().join("charts/kube-lighthouse/Chart.yaml"));
    assert_eq!(chart["version"].as_str(), Some(VERSION), "Chart.yaml's version is not Cargo.toml's");
    assert_eq!(chart["appVersion"].as_str(), Some(VERSION), "Chart.yaml's appVersion is not Cargo.toml's");

    let manifest = yaml(&repo().join("plugins/lighthouse.yaml"));
    assert_eq!(manifest["spec"]["version"].as_str(), Some("v0.0.0"), "plugins/lighthouse.yaml is a template");
    assert_eq!(
        manifest["spec"]["platforms"].as_sequence().map(Vec::len),
        Some(0),
        "plugins/lighthouse.yaml lists no platform: hack/release.sh writes them, with real sha256 values"
    );

    let changelog = std::fs::read_to_string(repo().join("CHANGELOG.md")).expect("CHANGELOG.md");
    assert!(
        changelog.lines().any(|l| l.starts_with(&format!("## {VERSION}")) || l.starts_with(&format!("## [{VERSION}]"))),
        "CHANGELOG.md has no section for {VERSION}"
    );
}

/// A clone of this checkout's HEAD, in a new directory under the target directory.
fn fresh_clone(dir: &Path) -> PathBuf {
    let head = run(Command::new("git").arg("-C").arg(repo()).args(["rev-parse", "HEAD"]));
    let src = dir.join("src");
    run(Command::new("git").args(["clone", "--quiet", "--no-hardlinks"]).arg(repo()).arg(&src));
    run(Command::new("git").arg("-C").arg(&src).args(["checkout", "--quiet", "--detach", head.trim()]));
    src
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"))
}

/// `hack/release.sh ARGS` in `src`, sharing this checkout's target directory (its dependencies
/// are built once; the sources are staged at one path whatever the clone's, so the binaries are
/// the same).
fn release(src: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(src.join("hack/release.sh"));
    command.current_dir(src).env("CARGO_TARGET_DIR", target_dir()).env_remove("RUSTFLAGS").args(args);
    command
}

#[test]
#[ignore = "builds a release (minutes) and krew: hack/test.sh runs it"]
fn a_release_installs_as_a_user_would() {
    let started = Instant::now();
    let dir = target_dir().join("release-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let src = fresh_clone(&dir);

    // Refusals, before anything is built.
    let wrong = fails(&mut release(&src, &["9.9.9"]));
    assert!(wrong.contains("not Cargo.toml's package version"), "{wrong}");
    std::fs::write(src.join("stray.txt"), "uncommitted").expect("write");
    let dirty = fails(&mut release(&src, &[VERSION]));
    assert!(dirty.contains("uncommitted changes"), "{dirty}");
    std::fs::remove_file(src.join("stray.txt")).expect("rm");

    // The release.
    let t = Instant::now();
    run(&mut release(&src, &[VERSION]));
    let first_run = t.elapsed();
    let dist = src.join("dist");
    let image = format!("kube-lighthouse-{VERSION}.oci.tar");
    let chart = format!("kube-lighthouse-{VERSION}.tgz");
    let plugin = "kubectl-lighthouse_linux_amd64.tar.gz";
    let mut expected =
        vec![image.clone(), chart.clone(), plugin.to_string(), "lighthouse.yaml".into(), "SHA256SUMS".into()];
    // The arm64 plugin, unless the run leaves it out (hack/test.sh does, for CI's time).
    let arm64 =
        (std::env::var("KL_RELEASE_ARM64").as_deref() != Ok("0")).then_some("kubectl-lighthouse_linux_arm64.tar.gz");
    expected.extend(arm64.map(String::from));
    expected.sort();
    let mut files: Vec<String> = std::fs::read_dir(&dist)
        .expect("dist/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, expected, "dist/ holds exactly the release's artifacts");
    run(Command::new("sha256sum").current_dir(&dist).args(["--check", "--strict", "SHA256SUMS"]));
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).expect("SHA256SUMS");
    assert_eq!(sums.lines().count(), expected.len() - 1, "SHA256SUMS covers every other file:\n{sums}");

    // Reproducible: a second run, into another directory, gives the same bytes.
    let t = Instant::now();
    run(&mut release(&src, &[VERSION, "--out", &dir.join("again").to_string_lossy()]));
    let second_run = t.elapsed();
    let again = std::fs::read_to_string(dir.join("again/SHA256SUMS")).expect("SHA256SUMS");
    assert_eq!(again, sums, "two runs of hack/release.sh {VERSION} differ");

    // The image archive is named as the chart expects.
    let index = run(Command::new("tar").arg("-xOf").arg(dist.join(&image)).arg("index.json"));
    let index: serde_json::Value = serde_json::from_str(&index).expect("index.json");
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"].as_str(),
        Some(format!("{REPOSITORY}:{VERSION}").as_str())
    );

    // The chart: packaged at VERSION, its image pinned to the release's tag.
    let helm = PathBuf::from(run(&mut Command::new(repo().join("hack/install-helm.sh"))).trim());
    let shown: serde_yaml::Value =
        serde_yaml::from_str(&run(Command::new(&helm).arg("show").arg("chart").arg(dist.join(&chart)))).expect("yaml");
    assert_eq!(shown["version"].as_str(), Some(VERSION));
    assert_eq!(shown["appVersion"].as_str(), Some(VERSION));
    let rendered = run(Command::new(&helm).args(["template", "kube-lighthouse"]).arg(dist.join(&chart)));
    let images: Vec<&str> = rendered.lines().filter_map(|l| l.trim().strip_prefix("image: ")).collect();
    assert!(!images.is_empty(), "the chart runs no image");
    for image in images {
        assert_eq!(image.trim_matches('"'), format!("{REPOSITORY}:{VERSION}"));
    }

    // The krew manifest: the archive's URL on the release page and its sha256.
    let manifest = yaml(&dist.join("lighthouse.yaml"));
    assert_eq!(manifest["metadata"]["name"].as_str(), Some("lighthouse"));
    assert_eq!(manifest["spec"]["version"].as_str(), Some(format!("v{VERSION}").as_str()));
    let platform = &manifest["spec"]["platforms"][0];
    assert_eq!(platform["selector"]["matchLabels"]["arch"].as_str(), Some("amd64"));
    assert_eq!(platform["uri"].as_str(), Some(format!("{RELEASES}/v{VERSION}/{plugin}").as_str()));
    assert_eq!(platform["sha256"].as_str(), Some(sha256(&dist.join(plugin)).as_str()));
    let platforms = manifest["spec"]["platforms"].as_sequence().map_or(0, Vec::len);
    assert_eq!(platforms, 1 + usize::from(arm64.is_some()), "one platform per plugin archive");
    if let Some(archive) = arm64 {
        let platform = &manifest["spec"]["platforms"][1];
        assert_eq!(platform["selector"]["matchLabels"]["arch"].as_str(), Some("arm64"));
        assert_eq!(platform["uri"].as_str(), Some(format!("{RELEASES}/v{VERSION}/{archive}").as_str()));
        assert_eq!(platform["sha256"].as_str(), Some(sha256(&dist.join(archive)).as_str()));
        // The binary is an arm64 one, static; where qemu-user is installed, it runs.
        let unpacked = dir.join("arm64");
        std::fs::create_dir_all(&unpacked).expect("mkdir");
        run(Command::new("tar").arg("-xzf").arg(dist.join(archive)).arg("-C").arg(&unpacked));
        let binary = unpacked.join("kubectl-lighthouse");
        let described = run(Command::new("file").arg(&binary));
        assert!(described.contains("ARM aarch64") && described.contains("statically linked"), "{described}");
        if let Ok(out) = Command::new("qemu-aarch64").arg(&binary).arg("version").output() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), VERSION, "the arm64 plugin's version, under qemu");
        } else {
            eprintln!("qemu-aarch64 is not installed: the arm64 plugin was checked, not run");
        }
    }

    // An MSP engineer's install: krew, offline (any request goes to a closed port).
    let t = Instant::now();
    let krew = PathBuf::from(run(&mut Command::new(repo().join("hack/krew.sh"))).trim());
    let krew_build = t.elapsed();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::os::unix::fs::symlink(&krew, bin.join("kubectl-krew")).expect("symlink");
    let krew_root = dir.join("krew");
    let path =
        format!("{}:{}:{}", bin.display(), krew_root.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let kubectl = |args: &[&str]| {
        let mut command = Command::new("kubectl");
        command
            .env("PATH", &path)
            .env("KREW_ROOT", &krew_root)
            .env("HOME", &dir)
            .env("KUBECONFIG", dir.join("no-kubeconfig"))
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "")
            .stdin(std::process::Stdio::null())
            .args(args);
        command
    };
    let manifest_arg = format!("--manifest={}", dist.join("lighthouse.yaml").display());

    // An archive that is not the released one: krew refuses it on its sha256.
    let tampered = dir.join("tampered.tar.gz");
    let mut bytes = std::fs::read(dist.join(plugin)).expect("archive");
    bytes.extend_from_slice(b"\0");
    std::fs::write(&tampered, bytes).expect("write");
    let refused =
        fails(&mut kubectl(&["krew", "install", &manifest_arg, &format!("--archive={}", tampered.display())]));
    assert!(refused.contains("checksum does not match"), "krew did not refuse it on its checksum: {refused}");

    run(&mut kubectl(&["krew", "install", &manifest_arg, &format!("--archive={}", dist.join(plugin).display())]));
    // What krew recorded (`krew list` would want the central index, which needs the network).
    let receipt = yaml(&krew_root.join("receipts/lighthouse.yaml"));
    assert_eq!(receipt["spec"]["version"].as_str(), Some(format!("v{VERSION}").as_str()), "krew's receipt");
    assert!(krew_root.join("bin/kubectl-lighthouse").exists(), "krew linked no kubectl-lighthouse");
    let version = run(&mut kubectl(&["lighthouse", "version"]));
    assert_eq!(version.trim(), VERSION, "kubectl lighthouse version");
    let help = run(&mut kubectl(&["lighthouse", "--help"]));
    assert!(help.contains("Azure Lighthouse"), "kubectl lighthouse --help: {help}");

    eprintln!("FIGURES release={first_run:?} again={second_run:?} krew={krew_build:?} total={:?}", started.elapsed());
    std::fs::remove_dir_all(&dir).expect("rm the clone");
}
