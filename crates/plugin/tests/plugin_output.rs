//! The plugin's process behaviour that needs no cluster: the version it prints, and what it
//! does when its reader goes away (`kubectl lighthouse completion bash | head`), as kubectl
//! does: stop quietly.

use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-lighthouse"))
        .args(["completion", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl-lighthouse");
    // Read a little, as `head -c 16` would, then close the pipe. The script is far larger than
    // a pipe's buffer, so the plugin is still writing when the reader goes.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).expect("the script begins");
    drop(stdout);
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    let status = child.wait().expect("wait");
    assert_eq!(stderr, "", "nothing on stderr when the reader goes away");
    assert!(status.success(), "exit {status:?}");
}

/// `kubectl lighthouse version` prints the workspace's version (Cargo.toml, the one place it is
/// written; a release's krew manifest and chart carry the same).
#[test]
fn the_plugin_prints_the_workspace_version() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_kubectl-lighthouse")).arg("version").output().expect("run kubectl-lighthouse");
    assert!(out.status.success(), "exit {:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}\n", env!("CARGO_PKG_VERSION")));
}
