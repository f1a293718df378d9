#!/usr/bin/env bash
# The controller's container image without Docker: the same image as the Dockerfile (a static
# musl binary, user 65532:65532, nothing else to write to, Debian's CA certificates, the same
# labels, entrypoint and ports), assembled from crates and Debian packages only, as an OCI
# image archive.
#
#   hack/image.sh [--repository R] [--tag T]   build target/image/kube-lighthouse-T.oci.tar
#   hack/image.sh --load [...]                 … and import it into the node's containerd
#                                              (hack/control-plane.sh up --node)
#   hack/image.sh --print-config [...]         print the image configuration, build nothing
#                                              (tests/image.rs compares it with the Dockerfile)
#
# Defaults: repository ghcr.io/kube-lighthouse/kube-lighthouse (the chart's), tag Cargo.toml's
# package version (the chart's appVersion). Other ways into a cluster: docs/install.md ("The
# image without a registry").
#
# Needs: cargo with the x86_64-unknown-linux-musl target (added with rustup when missing),
# musl-tools (musl-gcc, for ring's C) and ca-certificates from Debian, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=x86_64-unknown-linux-musl
REPOSITORY=ghcr.io/kube-lighthouse/kube-lighthouse
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TAG=$(cargo_version "$ROOT")
LOAD=0 PRINT=0

# What users depend on, as the Dockerfile says it (tests/image.rs holds the two together).
USER_ID=65532:65532
ENTRYPOINT='["/kube-lighthouse"]'
PORTS=(8080 8081)
LABELS=(
  "org.opencontainers.image.title=kube-lighthouse"
  "org.opencontainers.image.description=Azure Lighthouse on Kubernetes: delegated namespace access as RBAC"
  "org.opencontainers.image.source=https://github.com/kube-lighthouse/kube-lighthouse"
  "org.opencontainers.image.licenses=Apache-2.0"
)
# As distroless/static-debian12 sets them.
ENVS=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)

log() { printf '[image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

while (($#)); do
  case $1 in
    --repository) REPOSITORY=${2:?}; shift 2 ;;
    --tag) TAG=${2:?}; shift 2 ;;
    --load) LOAD=1; shift ;;
    --print-config) PRINT=1; shift ;;
    *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
IMAGE=$REPOSITORY:$TAG

image_args() {
  local args=(--ref "$IMAGE" --user "$USER_ID" --entrypoint "$ENTRYPOINT") p l e
  for p in "${PORTS[@]}"; do args+=(--port "$p"); done
  for l in "${LABELS[@]}"; do args+=(--label "$l"); done
  for e in "${ENVS[@]}"; do args+=(--env "$e"); done
  printf '%s\0' "${args[@]}"
}

if ((PRINT)); then
  mapfile -d '' args < <(image_args)
  exec python3 "$ROOT/hack/oci-image.py" "${args[@]}" --print-config
fi

apt_install musl-tools ca-certificates binutils file python3
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT_DIR=$TARGET_DIR/image
WORK=$OUT_DIR/rootfs
mkdir -p "$OUT_DIR"
rm -rf "$WORK"
mkdir -p "$WORK"

started=$SECONDS
log "building the static binary (cargo build --release --target $TARGET)"
(cd "$ROOT" && nice -n 19 cargo build --quiet --release --locked --target "$TARGET" -p kube-lighthouse --bin kube-lighthouse)
cp "$TARGET_DIR/$TARGET/release/kube-lighthouse" "$WORK/kube-lighthouse"
strip "$WORK/kube-lighthouse"
file "$WORK/kube-lighthouse" 2>/dev/null | grep -q "statically linked\|static-pie linked" ||
  die "$WORK/kube-lighthouse is not statically linked"
log "binary built in $((SECONDS - started))s"

# Debian's Mozilla bundle, as distroless ships it (and not this machine's local additions).
cat /usr/share/ca-certificates/mozilla/*.crt >"$WORK/ca-certificates.crt"
# distroless' users: root, nobody, and nonroot (65532), whose home is the only writable path
# besides /tmp; the chart mounts a read-only root.
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$WORK/passwd"
printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$WORK/group"

mapfile -d '' args < <(image_args)
ARCHIVE=$OUT_DIR/kube-lighthouse-$TAG.oci.tar
python3 "$ROOT/hack/oci-image.py" "${args[@]}" --out "$ARCHIVE" \
  --file "$WORK/kube-lighthouse:/kube-lighthouse:0755" \
  --file "$WORK/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:0644" \
  --file "$WORK/passwd:/etc/passwd:0644" --file "$WORK/group:/etc/group:0644" \
  --dir /tmp:1777 --dir /home/nonroot:0700:65532:65532 --dir /root:0700
log "$IMAGE: $ARCHIVE"

if ((LOAD)); then
  "$ROOT/hack/node.sh" import "$ARCHIVE"
  log "loaded into the node's containerd (namespace k8s.io)"
fi
