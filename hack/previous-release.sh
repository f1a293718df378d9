#!/usr/bin/env bash
# The previous release's chart and image, built from its source, for the upgrade test
# (`the_release_on_a_node` in tests/node_e2e.rs: `helm upgrade` from it to this release).
#
#   hack/previous-release.sh OUT_DIR
#
# writes OUT_DIR/kube-lighthouse-PREV.tgz (its chart, `helm package` as it was) and
# OUT_DIR/kube-lighthouse-PREV.oci.tar (its image, by its own hack/image.sh), and prints PREV.
#
# The previous release is the tag v$PREVIOUS_VERSION when the repository has it, else the
# commit that preceded the release work (0.1.0 was never tagged: it is the last commit whose
# Cargo.toml says 0.1.0, 56cb8bd). It is built from a clone at that commit; its sources are
# staged where hack/release.sh stages this release's, with the same compiler flags, so both
# share the dependencies built in CARGO_TARGET_DIR.
#
# Environment: CARGO_TARGET_DIR (default ./target), KL_PREVIOUS_VERSION, KL_PREVIOUS_COMMIT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREVIOUS_VERSION=${KL_PREVIOUS_VERSION:-0.1.0}
PREVIOUS_COMMIT=${KL_PREVIOUS_COMMIT:-56cb8bd6c3ed5357e5551907782a00089b2c3875}
OUT=${1:?usage: hack/previous-release.sh OUT_DIR}

log() { printf '[previous-release] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# A parent cargo (tests/release.rs runs this under `cargo test`) leaves its package's CARGO_*
# variables in the environment, and build scripts (ring's) rerun when those change, with nearly
# every dependency after them: drop them, so that a build from a test and one from a shell share
# the cache.
for v in $(compgen -e | grep '^CARGO_' | grep -vx 'CARGO_HOME\|CARGO_TARGET_DIR'); do unset "$v"; done
unset OUT_DIR
. "$ROOT/hack/lib.sh"

if commit=$(git -C "$ROOT" rev-parse -q --verify "v$PREVIOUS_VERSION^{commit}"); then
  log "v$PREVIOUS_VERSION is tagged: $commit"
else
  commit=$PREVIOUS_COMMIT
  git -C "$ROOT" cat-file -e "$commit^{commit}" 2>/dev/null || die "no commit $commit in $ROOT (a shallow clone?)"
fi

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$TARGET_DIR" "$OUT"
TARGET_DIR=$(cd "$TARGET_DIR" && pwd)
OUT=$(cd "$OUT" && pwd)
if [[ -s $OUT/kube-lighthouse-$PREVIOUS_VERSION.tgz && -s $OUT/kube-lighthouse-$PREVIOUS_VERSION.oci.tar ]]; then
  echo "$PREVIOUS_VERSION"
  exit 0
fi

# The same flags and build epoch as hack/release.sh (its staged path in them), so dependencies
# are shared.
export CARGO_TARGET_DIR=$TARGET_DIR
RUSTFLAGS=$(release_rustflags "$TARGET_DIR")
export RUSTFLAGS
export SOURCE_DATE_EPOCH=$RELEASE_BUILD_EPOCH

src=$TARGET_DIR/previous-release-src
rm -rf "$src"
git clone --quiet --no-checkout "$ROOT" "$src"
git -C "$src" checkout --quiet --detach "$commit"
declared=$(cargo_version "$src")
[[ $declared == "$PREVIOUS_VERSION" ]] || die "commit $commit is version $declared, not $PREVIOUS_VERSION"

log "building $PREVIOUS_VERSION from $commit"
"$src/hack/image.sh" --tag "$PREVIOUS_VERSION" >&2
cp "$TARGET_DIR/image/kube-lighthouse-$PREVIOUS_VERSION.oci.tar" "$OUT/"
HELM=$("$ROOT/hack/install-helm.sh")
"$HELM" package "$src/charts/kube-lighthouse" --version "$PREVIOUS_VERSION" --app-version "$PREVIOUS_VERSION" \
  -d "$OUT" >/dev/null
rm -rf "$src"
echo "$PREVIOUS_VERSION"
