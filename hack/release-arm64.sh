#!/usr/bin/env bash
# The kubectl plugin for Linux arm64, cross-built on an x86_64 machine: hack/release.sh calls
# it unless KL_RELEASE_ARM64=0.
#
#   hack/release-arm64.sh SOURCE_DIR     builds SOURCE_DIR's kubectl-lighthouse into
#                                        $CARGO_TARGET_DIR/aarch64-unknown-linux-musl/release/
#
# The Rust side needs only the aarch64-unknown-linux-musl target (rustup). The C side is
# ring's C and assembly (the plugin's crate has no jemalloc): it needs an aarch64 C compiler
# with musl's headers, and the result a linker. Debian's aarch64 cross gcc is for glibc. Zig is a C cross compiler that ships musl for every architecture:
# cargo-zigbuild (PyPI, pinned here with ziglang) runs cargo with `zig cc` as the C compiler
# and linker. Both are installed once into a virtualenv under ~/.cache/kube-lighthouse.
#
# Environment: CARGO_TARGET_DIR and RUSTFLAGS (hack/release.sh sets both), KL_CACHE_DIR.
set -euo pipefail

SRC=${1:?usage: hack/release-arm64.sh SOURCE_DIR}
CACHE_DIR=${KL_CACHE_DIR:-$HOME/.cache/kube-lighthouse}
TARGET=aarch64-unknown-linux-musl
ZIGLANG=0.17.0
ZIGBUILD=0.24.0
VENV=$CACHE_DIR/zigbuild-$ZIGBUILD-zig-$ZIGLANG

log() { printf '[release-arm64] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"
if [[ ! -x $VENV/bin/cargo-zigbuild ]]; then
  log "installing ziglang $ZIGLANG and cargo-zigbuild $ZIGBUILD from PyPI into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "ziglang==$ZIGLANG" "cargo-zigbuild==$ZIGBUILD" >&2 ||
    die "pip install ziglang cargo-zigbuild failed"
fi

started=$SECONDS
log "building kubectl-lighthouse ($TARGET, release, zig cc)"
(
  cd "$SRC"
  export PATH=$VENV/bin:$PATH
  # Stripped by the linker: binutils' strip on this machine knows x86 only.
  export CARGO_PROFILE_RELEASE_STRIP=symbols
  nice -n 19 cargo zigbuild --quiet --release --locked --target "$TARGET" -p kubectl-lighthouse --bin kubectl-lighthouse
) >&2 || die "the arm64 build failed"
binary=${CARGO_TARGET_DIR:-$SRC/target}/$TARGET/release/kubectl-lighthouse
file "$binary" | grep -q "ARM aarch64" || die "$binary is not an arm64 binary: $(file "$binary")"
log "built in $((SECONDS - started))s: $binary"
