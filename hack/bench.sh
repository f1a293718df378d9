#!/usr/bin/env bash
# Runs the benchmarks (docs/benchmarks.md) on a fresh local control plane of its own, so the
# figures never include another run's objects. Arguments go to the harness, e.g.
#   hack/bench.sh --n 200 --big-n 0 --reps 20
# Figures: stdout and target/bench/results.json; the sign-in broker's token exchange (warm and
# cold JWKS caches, in-process: benches/federation.rs) in target/bench/federation.json.
# KL_BENCH_KEEP=1 leaves the control plane up afterwards, with every delegation in place, for
# a profile (docs/benchmarks.md).
# KL_BENCH_PROFILE=dev measures the debug build (no optimized build of every dependency).
# Onboarding by an Onboarding alone: hack/bench.sh --only-policy --policy-n 10000
# A hub following 500 simulated customer clusters alone: hack/bench.sh --only-fleet
set -euo pipefail
cd "$(dirname "$0")/.."

export KL_STATE_DIR=${KL_BENCH_STATE_DIR:-/tmp/kube-lighthouse-bench}
# One audit log for the whole run: the harness counts the controller's writes in it.
export KL_AUDIT_MAXSIZE_MB=${KL_AUDIT_MAXSIZE_MB:-8192}
# No ServiceAccount controllers: thousands of new namespaces would keep them minting a
# ServiceAccount and a signed token Secret each for minutes, inside the timed windows.
export KL_KCM_CONTROLLERS=${KL_KCM_CONTROLLERS:-namespace,garbagecollector,clusterrole-aggregation}
hack/control-plane.sh down >/dev/null 2>&1 || true
rm -rf "$KL_STATE_DIR/logs"
hack/control-plane.sh up
if [ "${KL_BENCH_KEEP:-}" != 1 ]; then
  trap 'hack/control-plane.sh down >/dev/null 2>&1 || true' EXIT
fi
export KL_TEST_KUBECONFIG=$KL_STATE_DIR/kubeconfig
cargo bench --profile "${KL_BENCH_PROFILE:-bench}" --bench lighthouse -- "$@"
# The sign-in broker's exchange needs no cluster: a local issuer and the broker's routes.
cargo bench --profile "${KL_BENCH_PROFILE:-bench}" --bench federation_exchange
