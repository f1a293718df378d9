#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, and the integration tests against the
# local control plane (built from Kubernetes' Go modules on first use and cached; see
# hack/control-plane.sh), at both ends of the supported range (SPEC §8):
#   - Kubernetes 1.37 (the newest supported minor): every suite, among them the short chaos
#     suite (tests/chaos.rs: about 6 minutes; it restarts this control plane's kube-apiserver
#     and etcd; hack/chaos.sh runs the full one);
#   - Kubernetes 1.33 (the earliest): the e2e, webhook, sign-in, security, removal and chart
#     suites;
#   - with KL_TEST_NODE=1, then the node suite (tests/node_e2e.rs) on 1.37 with a real node:
#     the chart's own pods, from the image hack/image.sh builds without Docker; and the
#     release on that node (release_on_the_node, below): the packaged chart with the released
#     image, and `helm upgrade` from the previous release.
#
# The release as an MSP engineer takes it (tests/release.rs: `hack/release.sh VERSION` on a
# fresh clone, every artifact checked, `kubectl krew install` of the plugin offline) runs with
# the first `cargo test`: it needs no cluster, only the release build (minutes on a warm target
# directory; a cold one builds the release profile's dependencies first) and krew (built from
# its Go module once, then cached).
#
# The tests that need a cluster are marked #[ignore = "needs a cluster: hack/test.sh runs it"],
# so a plain `cargo test` reports them as ignored, never as passed; this script runs them with
# `-- --include-ignored`, and each fails if it cannot reach the control plane.
#
# Environment:
#   KL_TEST_VERSIONS  the minors to run, newest first (default "1.37 1.33"); "1.37" skips
#                     the second control plane for a quicker local run
#   KL_TEST_THREADS   parallel tests (default 4)
#   KL_TEST_NODE      1: also the node suite (tests/node_e2e.rs) on Kubernetes 1.37: a fresh
#                     control plane with a node (`hack/control-plane.sh up --node`), the image
#                     built and loaded (`hack/image.sh --load`, and again as tag e2e-upgrade
#                     for its `helm upgrade`), the chart installed as users install it.
#                     Default 0 until a rolling upgrade refuses no apply: a fresh-clone run
#                     saw one webhook call fail with EOF mid-upgrade (docs/reliability.md).
#                     It runs on its own control plane, after the other suites: the chart's
#                     controller must be the only one reconciling there.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=${KL_TEST_VERSIONS:-1.37 1.33}
# The suites proven at the earliest supported minor: what a user touches there.
EARLIEST_SUITES=(--test e2e --test webhook --test sign_in --test security --test removal --test chart)
trap 'hack/control-plane.sh down >/dev/null 2>&1 || true' EXIT

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings

first=1
for version in $versions; do
  export KL_KUBE_VERSION=$version
  echo "== control plane: Kubernetes $(hack/control-plane.sh version)"
  hack/control-plane.sh down >/dev/null 2>&1 || true
  hack/control-plane.sh up
  export KL_TEST_KUBECONFIG=${KL_STATE_DIR:-/tmp/kube-lighthouse-cp}/kubeconfig
  if ((first)); then
    echo "== cargo test (every suite, Kubernetes $version)"
    # --include-ignored runs the cluster suites; tests/azure_import.rs's sample_* stay out
    # (--skip): they need Azure's samples laid out by hand (tests/fixtures/azure/PROVENANCE.md);
    # so does the node suite, which needs a node (KL_TEST_NODE, below).
    cargo test --all-targets -- --include-ignored --skip sample_ --skip the_chart_on_a_node --skip the_release_on_a_node \
      --test-threads "${KL_TEST_THREADS:-4}"
    first=0
  else
    echo "== cargo test (e2e, webhook, sign-in, security and chart suites, Kubernetes $version)"
    cargo test "${EARLIEST_SUITES[@]}" -- --include-ignored --test-threads "${KL_TEST_THREADS:-4}"
  fi
  hack/control-plane.sh down
done

# release_on_the_node: this release, built by hack/release.sh on a fresh clone of HEAD, and the
# previous one (hack/previous-release.sh), their images imported into the node; then
# `the_release_on_a_node` (tests/node_e2e.rs) installs the first and upgrades from the second.
# Both builds share ./target (or CARGO_TARGET_DIR) with tests/release.rs.
release_on_the_node() {
  local dir=${KL_STATE_DIR:-/tmp/kube-lighthouse-cp}/release version previous started=$SECONDS
  version=$(. hack/lib.sh && cargo_version)
  rm -rf "$dir"
  mkdir -p "$dir"
  git clone --quiet --no-hardlinks . "$dir/src"
  git -C "$dir/src" checkout --quiet --detach "$(git rev-parse HEAD)"
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target} "$dir/src/hack/release.sh" "$version" --out "$dir/dist"
  previous=$(CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target} hack/previous-release.sh "$dir/previous")
  hack/node.sh import "$dir/dist/kube-lighthouse-$version.oci.tar"
  hack/node.sh import "$dir/previous/kube-lighthouse-$previous.oci.tar"
  echo "== release $version and $previous built and imported in $((SECONDS - started))s"
  KL_RELEASE_DIST=$dir/dist KL_PREVIOUS_RELEASE_DIST=$dir/previous \
    cargo test --test node_e2e -- --include-ignored --nocapture --exact the_release_on_a_node
  rm -rf "$dir"
}

if [[ ${KL_TEST_NODE:-0} == 1 ]]; then
  export KL_KUBE_VERSION=1.37
  echo "== node suite: Kubernetes $(hack/control-plane.sh version), one node, the chart's pods"
  hack/control-plane.sh down >/dev/null 2>&1 || true
  hack/control-plane.sh up --node
  export KL_TEST_KUBECONFIG=${KL_STATE_DIR:-/tmp/kube-lighthouse-cp}/kubeconfig
  hack/image.sh --load
  hack/image.sh --tag e2e-upgrade --load
  cargo test --test node_e2e -- --include-ignored --nocapture --exact the_chart_on_a_node
  echo "== the release on the node: the packaged chart and image, helm upgrade from the previous release"
  release_on_the_node
  hack/control-plane.sh down
fi
