//! `kubectl_complete-lighthouse`: what kubectl (1.26 and later) runs to complete
//! `kubectl lighthouse <TAB>` (see [`kubectl_lighthouse::complete`]). Install it on the
//! PATH next to `kubectl-lighthouse`; `cargo install --path . --bin kubectl-lighthouse --bin
//! kubectl_complete-lighthouse` does both.

use std::io::Write;

fn main() {
    let words: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let current_dir = std::env::current_dir().ok();
    let answer = kubectl_lighthouse::complete::cobra_completions(&words, current_dir.as_deref());
    // A reader that went away is not an error worth a message.
    let _ = std::io::stdout().lock().write_all(answer.as_bytes());
}
