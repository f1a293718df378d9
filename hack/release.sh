#!/usr/bin/env bash
# Builds a release of kube-lighthouse into dist/, from the committed tree, reproducibly.
#
#   hack/release.sh VERSION [--allow-dirty] [--out DIR]
#
# VERSION must be the package version in Cargo.toml: that is the one place the version is
# written. Everything else takes it from there (the chart's version and appVersion, the
# image's tag, the plugin's `kubectl lighthouse version`, the krew manifest).
#
# dist/ then holds, for the release page (https://github.com/kube-lighthouse/kube-lighthouse/
# releases/tag/vVERSION, every file downloadable at .../releases/download/vVERSION/FILE):
#   kube-lighthouse-VERSION.oci.tar                the controller's image as an OCI archive
#                                                  (hack/image.sh: the Dockerfile's image),
#                                                  named ghcr.io/kube-lighthouse/kube-lighthouse:VERSION
#   kube-lighthouse-VERSION.tgz                    the Helm chart (`helm package`), version and
#                                                  appVersion VERSION, so its image is :VERSION
#   kubectl-lighthouse_linux_amd64.tar.gz          the kubectl plugin, static (musl)
#   kubectl-lighthouse_linux_arm64.tar.gz          the same for arm64, cross-built with zig
#                                                  (hack/release-arm64.sh; KL_RELEASE_ARM64=0 skips it)
#   lighthouse.yaml                                the krew manifest (from plugins/lighthouse.yaml)
#                                                  with these archives' URLs and sha256 values
#   SHA256SUMS                                     `sha256sum -c SHA256SUMS` checks them all
#
# Clean tree: the release is built from `git archive HEAD`, never from uncommitted files, and
# the script refuses a tree with uncommitted changes (--allow-dirty, for tests and trials,
# builds the working tree's files instead, tracked and untracked but not ignored).
#
# Reproducible: two runs from one commit give the same SHA256SUMS. The sources are staged at
# one path ($CARGO_TARGET_DIR/release-src) whatever the checkout's, and the paths compiled
# into binaries are remapped (to /src/kube-lighthouse and /cargo); every archive has sorted
# entries, owner 0:0 and the commit's time (SOURCE_DATE_EPOCH) as mtime; gzip writes no name
# or time; the image has no timestamps at all (hack/oci-image.py); compilers see one fixed
# SOURCE_DATE_EPOCH (hack/lib.sh, RELEASE_BUILD_EPOCH).
#
# Needs what hack/image.sh needs (cargo with the x86_64-unknown-linux-musl target, musl-tools,
# python3), git, and helm (hack/install-helm.sh installs it).
#
# Environment:
#   CARGO_TARGET_DIR   where cargo builds (default ./target); the staged sources live there too
#   KL_RELEASE_ARM64   0: no arm64 plugin (default 1: hack/release-arm64.sh installs zig from
#                      PyPI once and cross-builds it; docs/install.md, "Releases")
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPOSITORY=ghcr.io/kube-lighthouse/kube-lighthouse
RELEASES=https://github.com/kube-lighthouse/kube-lighthouse/releases/download

log() { printf '[release] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

VERSION="" ALLOW_DIRTY=0 OUT=$ROOT/dist
while (($#)); do
  case $1 in
    --allow-dirty) ALLOW_DIRTY=1; shift ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) [[ -z $VERSION ]] || usage; VERSION=$1; shift ;;
  esac
done
[[ -n $VERSION ]] || usage

# A parent cargo (tests/release.rs runs this under `cargo test`) leaves its package's CARGO_*
# variables in the environment, and build scripts (ring's) rerun when those change, with nearly
# every dependency after them: drop them, so that a build from a test and one from a shell share
# the cache.
for v in $(compgen -e | grep '^CARGO_' | grep -vx 'CARGO_HOME\|CARGO_TARGET_DIR'); do unset "$v"; done
unset OUT_DIR
. "$ROOT/hack/lib.sh"
# The one fact: the package version of Cargo.toml.
DECLARED=$(cargo_version "$ROOT")
[[ $VERSION != v* ]] || die "VERSION $VERSION: give the version without the tag's v (${VERSION#v})"
[[ $VERSION == "$DECLARED" ]] ||
  die "VERSION $VERSION is not Cargo.toml's package version ($DECLARED): bump Cargo.toml (and Cargo.lock) first"
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "VERSION $VERSION is not semantic (MAJOR.MINOR.PATCH)"

cd "$ROOT"
git rev-parse --verify -q HEAD >/dev/null || die "$ROOT is not a git checkout with a commit"
if [[ -n $(git status --porcelain --untracked-files=normal) ]]; then
  ((ALLOW_DIRTY)) || die "the tree has uncommitted changes (git status); commit them, or --allow-dirty for a trial"
  log "warning: building the working tree's files, uncommitted changes included (--allow-dirty)"
fi
COMMIT=$(git rev-parse HEAD)
# The archives' time: the commit's. Compilers see a fixed one (RELEASE_BUILD_EPOCH, hack/lib.sh).
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct "$COMMIT")

apt_install musl-tools ca-certificates binutils file python3 git
TARGET=x86_64-unknown-linux-musl
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"
HELM=$("$ROOT/hack/install-helm.sh")

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$TARGET_DIR"
TARGET_DIR=$(cd "$TARGET_DIR" && pwd)
STAGE=$TARGET_DIR/release-src
export CARGO_TARGET_DIR=$TARGET_DIR
# Remapped paths make the binaries independent of where the sources and crates are (hack/lib.sh).
RUSTFLAGS=$(release_rustflags "$TARGET_DIR")
export RUSTFLAGS

# One release at a time per target directory: they share the staged sources.
exec 9>"$TARGET_DIR/release.lock"
flock 9

started=$SECONDS
log "$VERSION from $COMMIT (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"

# --- the staged sources: only files whose content changed get a new mtime, so cargo
# rebuilds what changed and nothing else.
incoming=$TARGET_DIR/release-src.incoming
rm -rf "$incoming"
mkdir -p "$incoming"
if ((ALLOW_DIRTY)); then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -f $f || -L $f ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xmf - -C "$incoming"
else
  git archive "$COMMIT" | tar -xmf - -C "$incoming"
fi
python3 - "$incoming" "$STAGE" <<'EOF'
import filecmp, os, shutil, sys

incoming, stage = sys.argv[1], sys.argv[2]
os.makedirs(stage, exist_ok=True)
wanted = set()
for dirpath, _, files in os.walk(incoming):
    rel = os.path.relpath(dirpath, incoming)
    for name in files:
        path = os.path.normpath(os.path.join(rel, name))
        wanted.add(path)
        src, dst = os.path.join(incoming, path), os.path.join(stage, path)
        if os.path.isfile(dst) and not os.path.islink(dst) and filecmp.cmp(src, dst, shallow=False) \
                and os.stat(src).st_mode == os.stat(dst).st_mode:
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.lexists(dst):
            os.remove(dst)
        shutil.move(src, dst)
for dirpath, _, files in os.walk(stage):
    for name in files:
        path = os.path.normpath(os.path.join(os.path.relpath(dirpath, stage), name))
        if path not in wanted:
            os.remove(os.path.join(stage, path))
EOF
rm -rf "$incoming"
[[ $(cargo_version "$STAGE") == "$VERSION" ]] || die "the staged Cargo.toml does not say $VERSION"

rm -rf "$OUT"
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# tgz NAME DIR FILE...: a reproducible tar.gz of DIR's FILEs.
tgz() {
  local name=$1 dir=$2
  shift 2
  tar -C "$dir" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --format=gnu -cf - "$@" | gzip -9 -n >"$OUT/$name"
}

# --- the binaries: the controller (for the image) and the plugin, static.
log "building kube-lighthouse and kubectl-lighthouse ($TARGET, release)"
(cd "$STAGE" && SOURCE_DATE_EPOCH=$RELEASE_BUILD_EPOCH nice -n 19 cargo build --quiet --release --locked \
  --target "$TARGET" -p kube-lighthouse --bin kube-lighthouse -p kubectl-lighthouse --bin kubectl-lighthouse)

# --- the image, by the staged hack/image.sh (it reuses the build above).
SOURCE_DATE_EPOCH=$RELEASE_BUILD_EPOCH "$STAGE/hack/image.sh" --repository "$REPOSITORY" --tag "$VERSION" >&2
cp "$TARGET_DIR/image/kube-lighthouse-$VERSION.oci.tar" "$OUT/"

# --- the plugin archives.
plugin_archive() {
  local arch=$1 binary=$2 dir=$work/plugin-$1
  mkdir -p "$dir"
  cp "$binary" "$dir/kubectl-lighthouse"
  # binutils' strip knows x86 only; the arm64 build is stripped by cargo (hack/release-arm64.sh).
  [[ $arch != amd64 ]] || strip "$dir/kubectl-lighthouse"
  chmod 0755 "$dir/kubectl-lighthouse"
  file "$dir/kubectl-lighthouse" | grep -q "statically linked\|static-pie linked" ||
    die "the $arch plugin is not statically linked"
  tgz "kubectl-lighthouse_linux_$arch.tar.gz" "$dir" kubectl-lighthouse
}
plugin_archive amd64 "$TARGET_DIR/$TARGET/release/kubectl-lighthouse"
[[ $("$TARGET_DIR/$TARGET/release/kubectl-lighthouse" version) == "$VERSION" ]] ||
  die "kubectl-lighthouse version does not print $VERSION"

if [[ ${KL_RELEASE_ARM64:-1} == 1 ]]; then
  SOURCE_DATE_EPOCH=$RELEASE_BUILD_EPOCH "$ROOT/hack/release-arm64.sh" "$STAGE"
  plugin_archive arm64 "$TARGET_DIR/aarch64-unknown-linux-musl/release/kubectl-lighthouse"
else
  log "arm64 plugin: not built (KL_RELEASE_ARM64=0)"
fi

# --- the chart: version and appVersion are VERSION, so the image defaults to :VERSION.
mkdir -p "$work/chart"
cp -a "$STAGE/charts/kube-lighthouse" "$work/chart/"
find "$work/chart" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
"$HELM" lint --quiet "$work/chart/kube-lighthouse" >/dev/null
"$HELM" package "$work/chart/kube-lighthouse" --version "$VERSION" --app-version "$VERSION" -d "$work" >/dev/null
# helm writes the files' mtimes (set above) and its own order; gzip it again without a time.
chart=$work/kube-lighthouse-$VERSION.tgz
mkdir -p "$work/chart-x"
tar -xzf "$chart" -C "$work/chart-x"
tgz "kube-lighthouse-$VERSION.tgz" "$work/chart-x" kube-lighthouse
# awk reads to the end: leaving early would stop helm with SIGPIPE, and pipefail would fail here.
image=$("$HELM" template kube-lighthouse "$OUT/kube-lighthouse-$VERSION.tgz" |
  awk '$1 == "image:" && !found {gsub(/"/, "", $2); print $2; found = 1}')
[[ $image == "$REPOSITORY:$VERSION" ]] || die "the packaged chart runs image $image, not $REPOSITORY:$VERSION"

# --- the krew manifest: plugins/lighthouse.yaml with the version and one platform per archive.
python3 - "$STAGE/plugins/lighthouse.yaml" "$OUT" "$VERSION" "$RELEASES" >"$OUT/lighthouse.yaml" <<'EOF'
import hashlib, os, sys

template, out, version, releases = sys.argv[1:5]
text = open(template).read()
head, marker, _ = text.partition("  platforms:")
if not marker:
    sys.exit(f"{template}: no 'platforms:' under spec")
# The template's own comment says it is a template; the generated manifest says what it is.
lines = [l for l in head.splitlines() if not l.lstrip().startswith("#")]
body = "\n".join(lines).replace("version: v0.0.0", f"version: v{version}")
if f"version: v{version}" not in body:
    sys.exit(f"{template}: no 'version: v0.0.0' to fill in")
print(f"# krew plugin manifest of kube-lighthouse {version}, generated by hack/release.sh.")
print(f"#   kubectl krew install --manifest=lighthouse.yaml   (or --archive=FILE, offline)")
print(body)
print("  platforms:")
for arch in ("amd64", "arm64"):
    name = f"kubectl-lighthouse_linux_{arch}.tar.gz"
    path = os.path.join(out, name)
    if not os.path.exists(path):
        continue
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    print(f"""  - selector:
      matchLabels:
        os: linux
        arch: {arch}
    uri: {releases}/v{version}/{name}
    sha256: "{digest}"
    bin: kubectl-lighthouse
    files:
    - from: kubectl-lighthouse
      to: .""")
EOF

(cd "$OUT" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%f\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
log "dist: $OUT ($((SECONDS - started))s)"
cat "$OUT/SHA256SUMS"
