# Shell functions the hack/ scripts share. Source it after defining `log` and `die`:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# apt_install PACKAGE...: installs the Debian packages that are missing (CI's machine starts
# with none of what the scripts need beyond the image's own).
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# go_cmd: the Go toolchain to build with (KL_GO, else `go` on PATH, else /usr/local/go).
go_cmd() {
  if [[ -n ${KL_GO:-} ]]; then
    echo "$KL_GO"
  elif command -v go >/dev/null; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    die "no Go toolchain: install Go >= 1.26 from https://go.dev/dl (or set KL_GO)"
  fi
}

# cargo_version [DIR]: the version in DIR/Cargo.toml (default: this checkout's), the one place a
# release's version is written (hack/release.sh, hack/image.sh's default tag): the workspace's
# `[workspace.package]` version, or, in a checkout from before the workspace (a previous
# release), the `[package]` version.
cargo_version() {
  awk '/^\[(workspace\.)?package\]/ {p = 1; next} /^\[/ {p = 0} p && $1 == "version" && $2 == "=" {gsub(/"/, "", $3); print $3; exit}' \
    "${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/Cargo.toml"
}

# The SOURCE_DATE_EPOCH compilers see in release builds (hack/release.sh, hack/previous-release.sh).
# Fixed, not the commit's time: cc's build scripts (ring's and jemalloc's C) rerun when it
# changes, and everything above them rebuilds, so a moving value would rebuild nearly every
# dependency at each commit; fixed, a C dependency's __DATE__ is the same in every release too.
# The archives carry the commit's time. Any constant would do; changing it rebuilds once.
RELEASE_BUILD_EPOCH=1796623916

# release_rustflags TARGET_DIR: the RUSTFLAGS of release builds sharing TARGET_DIR
# (hack/release.sh, hack/previous-release.sh, and hack/test.sh's node images built from a
# release's staged sources). The sources are staged at TARGET_DIR/release-src whatever the
# checkout's path, and it and the cargo home are remapped, so the binaries do not depend on
# where they were built; one set of flags for all three means their dependencies are built once.
release_rustflags() {
  echo "--remap-path-prefix=$1/release-src=/src/kube-lighthouse --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
}
