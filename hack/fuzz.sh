#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while (docs/reliability.md, "Fuzzing and properties").
#
#   hack/fuzz.sh TARGET [SECONDS]      TARGET: rules | validate | admission | azure_import
#   hack/fuzz.sh list
#
# Installs cargo-fuzz when it is missing; needs a nightly toolchain (`rustup toolchain install
# nightly`). The generated corpus grows in fuzz/corpus/TARGET (ignored by git), seeded from the
# committed fuzz/seeds/TARGET; a crash is written to fuzz/artifacts/TARGET and reproduced with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`.
# Environment: FUZZ_JOBS (default 1), FUZZ_ARGS (more libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
target=${1:?usage: hack/fuzz.sh TARGET [SECONDS] (hack/fuzz.sh list)}
if [[ $target == list ]]; then
  exec cargo +nightly fuzz list
fi
seconds=${2:-60}
mkdir -p "corpus/$target"
# No sanitizer: the code under test is safe Rust, and ASan would halve the executions. Debug
# assertions on: integer overflow and the standard library's checks panic, and a panic is a crash.
exec cargo +nightly fuzz run --sanitizer none --debug-assertions "$target" "corpus/$target" "seeds/$target" -- \
  -max_total_time="$seconds" -jobs="${FUZZ_JOBS:-1}" -workers="${FUZZ_JOBS:-1}" -print_final_stats=1 ${FUZZ_ARGS:-}
