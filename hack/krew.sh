#!/usr/bin/env bash
# krew, the kubectl plugin manager, built from its Go module (sigs.k8s.io/krew, pinned in
# hack/k8s/krew/go.mod) and cached; prints the path of the binary.
#
#   KREW=$(hack/krew.sh) && "$KREW" version
#
# The release test (tests/release.rs) installs the released plugin with it, as an MSP
# engineer would: `kubectl krew install --manifest=dist/lighthouse.yaml --archive=…`.
# Built as hack/node.sh builds its Go modules: the shared module cache, a throwaway build
# cache, a static binary, at the lowest CPU priority, one build at a time.
#
# Environment: KL_CACHE_DIR (default ~/.cache/kube-lighthouse), KL_GO (see hack/lib.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${KL_CACHE_DIR:-$HOME/.cache/kube-lighthouse}
MODULE=$ROOT/hack/k8s/krew

log() { printf '[krew] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KREW_VERSION=$(awk '$1 == "require" && $2 == "sigs.k8s.io/krew" {print $3; exit}' "$MODULE/go.mod")
[[ -n $KREW_VERSION ]] || die "no sigs.k8s.io/krew in $MODULE/go.mod"
DIR=$CACHE_DIR/krew-$KREW_VERSION/bin
mkdir -p "$CACHE_DIR"

(
  flock 9
  [[ -x $DIR/krew && -s $DIR/krew ]] && exit 0
  go=$(go_cmd)
  gocache=$CACHE_DIR/build/gocache-$BASHPID
  out=$DIR.tmp
  rm -rf "$out"
  mkdir -p "$CACHE_DIR/go-mod" "$CACHE_DIR/build" "$out"
  started=$SECONDS
  log "building krew $KREW_VERSION"
  (
    cd "$MODULE"
    export GOMODCACHE=$CACHE_DIR/go-mod GOCACHE=$gocache GOFLAGS=-modcacherw CGO_ENABLED=0
    nice -n 19 "$go" build -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=$KREW_VERSION" \
      -o "$out/krew" sigs.k8s.io/krew/cmd/krew
  ) >"$out.log" 2>&1 || {
    rm -rf "$gocache" "$out"
    tail -n 40 "$out.log" >&2
    die "build failed; full log in $out.log"
  }
  rm -rf "$gocache" "$out.log" "$DIR"
  mv "$out" "$DIR"
  log "built krew $KREW_VERSION in $((SECONDS - started))s; cached in $DIR"
) 9>"$CACHE_DIR/krew.lock"
echo "$DIR/krew"
