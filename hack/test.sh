#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, and the integration tests against the
# local control plane (installed and built on first use; see hack/control-plane.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== control plane"
hack/control-plane.sh up
export KL_TEST_KUBECONFIG=${KL_STATE_DIR:-/tmp/kube-lighthouse-cp}/kubeconfig
trap 'hack/control-plane.sh down >/dev/null 2>&1 || true' EXIT

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-targets -- --test-threads "${KL_TEST_THREADS:-4}"
