#!/usr/bin/env bash
# Local Kubernetes control plane for kube-lighthouse: real etcd + kube-apiserver (RBAC on)
# + kube-controller-manager on 127.0.0.1, built from Debian's packages. No Docker, no nodes.
#
#   hack/control-plane.sh install   install apt packages and build the binaries once (cached)
#   hack/control-plane.sh up        start (idempotent); writes $STATE_DIR/kubeconfig
#   hack/control-plane.sh down      stop and wipe state (idempotent)
#   hack/control-plane.sh status    exit 0 when the API server answers
#   hack/control-plane.sh env       print `export KUBECONFIG=…` for eval
#
# Why build: Debian ships etcd but not the Kubernetes server binaries; bookworm's *source*
# package `kubernetes` (1.20.2) holds the whole tree with vendor/, which Debian's Go 1.19
# builds offline. The binaries are cached in $CACHE_DIR, so only the first `up` is slow.
#
# Environment:
#   KL_CACHE_DIR  where the build is cached   (default ~/.cache/kube-lighthouse)
#   KL_STATE_DIR  certificates, data, logs     (default /tmp/kube-lighthouse-cp)
#   KL_KCM_CONTROLLERS  kube-controller-manager's --controllers (default: namespace,
#                 garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation)
set -euo pipefail

CACHE_DIR=${KL_CACHE_DIR:-$HOME/.cache/kube-lighthouse}
STATE_DIR=${KL_STATE_DIR:-/tmp/kube-lighthouse-cp}
K8S_VERSION=1.20.2
# Bump when the build recipe changes, so a cached binary of an older recipe is not reused.
BUILD_REVISION=2
BIN_DIR=$CACHE_DIR/kubernetes-$K8S_VERSION-r$BUILD_REVISION/bin
ADMIN_TOKEN_FILE=$STATE_DIR/admin.token
KUBECONFIG_FILE=$STATE_DIR/kubeconfig

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------

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

# Adds a deb-src entry for bookworm main using the same mirror and keyring as the existing
# deb822 source, because apt refuses a source whose signed-by differs from its twin's.
add_deb_src() {
  if apt-get indextargets 2>/dev/null | grep -q 'Identifier: Sources'; then
    return
  fi
  local src=/etc/apt/sources.list.d/kube-lighthouse-src.sources
  local uri keyring
  uri=$(awk '/^URIs:/ && /debian$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  keyring=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  uri=${uri:-http://deb.debian.org/debian}
  keyring=${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}
  log "adding deb-src for bookworm main ($uri)"
  cat >"$src" <<EOF
Types: deb-src
URIs: $uri
Suites: bookworm
Components: main
Signed-By: $keyring
EOF
  apt-get update -qq
}

build_kubernetes() {
  local work=$CACHE_DIR/build
  mkdir -p "$work"
  cd "$work"
  if ! ls kubernetes_*.dsc >/dev/null 2>&1; then
    add_deb_src
    log "downloading Debian source package kubernetes"
    apt-get source --download-only kubernetes >/dev/null
  fi
  local tree
  tree=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
  if [[ -z $tree ]]; then
    log "unpacking source"
    dpkg-source --no-check -x kubernetes_*.dsc >/dev/null
    tree=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
  fi
  tree=$(cd "$tree" && pwd)
  # Kubernetes 1.20 vendors modern-go/reflect2 1.0.1, whose map iteration crashes the API
  # server (SIGSEGV in aeshashbody) when built with Go >= 1.18. Debian's 1.0.2 fixes it.
  rsync -a --delete --exclude '*_test.go' /usr/share/gocode/src/github.com/modern-go/reflect2/ \
    "$tree/vendor/github.com/modern-go/reflect2/"
  # The GOPATH layout debian/rules uses: the build scripts insist on living in it.
  mkdir -p "$tree/.go/src/k8s.io"
  ln -sfn "$tree" "$tree/.go/src/k8s.io/kubernetes"
  log "building kube-apiserver and kube-controller-manager (about 8 minutes on 2 cores)"
  (
    cd "$tree/.go/src/k8s.io/kubernetes"
    export GOPATH=$tree/.go GO111MODULE=off GOFLAGS=-mod=vendor CGO_ENABLED=0 GOCACHE=$work/gocache
    export KUBE_GIT_VERSION=v$K8S_VERSION KUBE_GIT_TREE_STATE=clean
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1
  ) || {
    # A failed generator step can leave empty binaries behind that would look like success.
    rm -rf "$tree/_output"
    tail -n 40 "$work/build.log" >&2
    die "build failed; full log in $work/build.log"
  }
  mkdir -p "$BIN_DIR"
  for b in kube-apiserver kube-controller-manager; do
    local out
    out=$(find "$tree/_output" -type f -name "$b" -path '*bin*' | head -n1)
    [[ -s $out ]] || die "build produced no $b"
    install -m 0755 "$out" "$BIN_DIR/$b"
  done
  rm -rf "$tree" "$work/gocache"
  log "binaries cached in $BIN_DIR"
}

cmd_install() {
  apt_install etcd-server golang-go golang-github-modern-go-reflect2-dev rsync jq openssl dpkg-dev ca-certificates curl
  if [[ -x $BIN_DIR/kube-apiserver && -s $BIN_DIR/kube-apiserver && -x $BIN_DIR/kube-controller-manager && -s $BIN_DIR/kube-controller-manager ]]; then
    return
  fi
  build_kubernetes
}

# ---------------------------------------------------------------------------------------
# up / down
# ---------------------------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

make_pki() {
  local pki=$STATE_DIR/pki
  [[ -f $pki/ca.crt ]] && return
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kube-lighthouse-local-ca" \
      -keyout ca.key -out ca.crt \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    cat >apiserver.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1
EOF
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_kubeconfig() {
  local port=$1 token=$2
  local ca
  ca=$(base64 -w0 <"$STATE_DIR/pki/ca.crt")
  cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $ca
users:
- name: admin
  user:
    token: $token
contexts:
- name: local
  context: {cluster: local, user: admin, namespace: default}
current-context: local
EOF
}

pid_alive() { [[ -f $STATE_DIR/$1.pid ]] && kill -0 "$(cat "$STATE_DIR/$1.pid")" 2>/dev/null; }

start() {
  local name=$1
  shift
  "$@" >"$STATE_DIR/logs/$name.log" 2>&1 &
  echo $! >"$STATE_DIR/$name.pid"
}

wait_for() {
  local what=$1 tries=$2
  shift 2
  for ((i = 0; i < tries; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$what did not become ready; last log lines:"
  tail -n 30 "$STATE_DIR/logs/$what.log" >&2 || true
  return 1
}

cmd_up() {
  if cmd_status >/dev/null 2>&1; then
    log "already up; KUBECONFIG=$KUBECONFIG_FILE"
    return
  fi
  cmd_down >/dev/null 2>&1 || true
  cmd_install
  mkdir -p "$STATE_DIR/logs" "$STATE_DIR/etcd"
  make_pki
  local etcd_port etcd_peer api_port token
  etcd_port=$(free_port)
  etcd_peer=$(free_port)
  api_port=$(free_port)
  token=$(openssl rand -hex 24)
  echo "$token" >"$ADMIN_TOKEN_FILE"
  echo "$token,admin,admin-uid,system:masters" >"$STATE_DIR/tokens.csv"
  # Audit every request at Metadata level: the "Activity log" of delegated actions.
  cat >"$STATE_DIR/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
EOF

  start etcd etcd --name local --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "local=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync
  wait_for etcd 60 curl -fsS "http://127.0.0.1:$etcd_port/health"

  start kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$STATE_DIR/pki/apiserver.crt" --tls-private-key-file "$STATE_DIR/pki/apiserver.key" \
    --client-ca-file "$STATE_DIR/pki/ca.crt" \
    --authorization-mode RBAC --token-auth-file "$STATE_DIR/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$STATE_DIR/pki/sa.pub" \
    --service-account-signing-key-file "$STATE_DIR/pki/sa.key" \
    --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/24 \
    --audit-policy-file "$STATE_DIR/audit-policy.yaml" --audit-log-path "$STATE_DIR/logs/audit.log" \
    --audit-log-maxsize "${KL_AUDIT_MAXSIZE_MB:-100}" --audit-log-maxbackup 1
  write_kubeconfig "$api_port" "$token"
  wait_for kube-apiserver 240 curl -fsS --cacert "$STATE_DIR/pki/ca.crt" \
    -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz"

  start kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig "$KUBECONFIG_FILE" --leader-elect=false --port 0 --secure-port 0 \
    --controllers "${KL_KCM_CONTROLLERS:-namespace,garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation}" \
    --service-account-private-key-file "$STATE_DIR/pki/sa.key" --root-ca-file "$STATE_DIR/pki/ca.crt" \
    --use-service-account-credentials=false
  # `view`/`edit`/`admin` only get rules once the aggregation controller ran.
  wait_for kube-controller-manager 120 bash -c \
    "KUBECONFIG='$KUBECONFIG_FILE' kubectl get clusterrole view -o jsonpath='{.rules[0].verbs}' | grep -q get"
  log "up: export KUBECONFIG=$KUBECONFIG_FILE"
}

cmd_down() {
  for name in kube-controller-manager kube-apiserver etcd; do
    if pid_alive "$name"; then
      kill "$(cat "$STATE_DIR/$name.pid")" 2>/dev/null || true
      for _ in $(seq 1 40); do pid_alive "$name" || break; sleep 0.25; done
      pid_alive "$name" && kill -9 "$(cat "$STATE_DIR/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$STATE_DIR/$name.pid"
  done
  rm -rf "$STATE_DIR/etcd"
  log "down"
}

cmd_status() {
  [[ -f $KUBECONFIG_FILE ]] || return 1
  pid_alive etcd && pid_alive kube-apiserver && pid_alive kube-controller-manager || return 1
  KUBECONFIG=$KUBECONFIG_FILE kubectl get --raw /readyz >/dev/null
}

case ${1:-} in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) if cmd_status; then echo "up: KUBECONFIG=$KUBECONFIG_FILE"; else echo "down"; exit 1; fi ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_FILE" ;;
  *) echo "usage: $0 install|up|down|status|env" >&2; exit 2 ;;
esac
