#!/usr/bin/env bash
# Local Kubernetes control plane for kube-lighthouse: real etcd + kube-apiserver (RBAC on,
# aggregation layer, structured authentication with two local JWT issuers standing in for
# two managing tenants) + kube-controller-manager on 127.0.0.1. No Docker, no nodes.
#
#   hack/control-plane.sh install   build the binaries once (cached per version)
#   hack/control-plane.sh up        start (idempotent); writes $STATE_DIR/kubeconfig
#   hack/control-plane.sh up --node also a node (hack/node.sh): kube-scheduler, kubelet,
#                                   kube-proxy, containerd, CNI bridge; pods run for real. The
#                                   API server then listens on the node's bridge (10.244.0.1),
#                                   Services are 10.96.0.0/24, authorization is Node,RBAC.
#                                   `install --node` builds the node's parts too.
#   hack/control-plane.sh up --federation
#                                   the sign-in broker's mode: the API server trusts exactly one
#                                   issuer, kube-lighthouse's broker, at a port and with a CA
#                                   fixed here ($STATE_DIR/federation/broker.json); three local
#                                   Entra-shaped issuers (contoso, fabrikam, northwind), served
#                                   on one port as Entra ID serves every tenant, are NOT trusted
#                                   by the API server: their engineers sign in through the broker.
#                                   The broker itself is the controller a test starts with the
#                                   flags broker.json gives (tests/federation.rs).
#   hack/control-plane.sh down      stop and wipe the etcd data (idempotent)
#   hack/control-plane.sh status    exit 0 when the API server and the issuers answer
#   hack/control-plane.sh restart apiserver|etcd [SECONDS]
#                                   SIGKILL kube-apiserver or etcd, keep it down SECONDS
#                                   (default 0), start it again with the same command line,
#                                   port and data, and wait until it answers (the chaos suite)
#   hack/control-plane.sh env       print `export KUBECONFIG=…` for eval
#   hack/control-plane.sh version   print the selected Kubernetes version
#
# Build: kube-apiserver and kube-controller-manager are built from the Go modules of the
# Kubernetes release (k8s.io/kubernetes + its staging modules, pinned in hack/k8s/<minor>/),
# etcd from go.etcd.io/etcd/server/v3 (hack/k8s/etcd/), with the Go toolchain (>= 1.26) and
# CGO_ENABLED=0. Binaries are cached per version in $CACHE_DIR, the module downloads in
# $CACHE_DIR/go-mod (shared by all versions); the Go build cache is deleted after a build.
# Measured on 2 cores shared with other builds: etcd 3.6.16 2 minutes; Kubernetes 1.37.2
# 21.5 minutes from empty caches (26 CPU-minutes: about 13 on idle cores); 1.33.13 10.5 minutes
# with its modules already downloaded (17 CPU-minutes; downloads take about a minute, 0.85 GB).
# The binaries are reproducible (-trimpath). Later `up`s start in 10-20 seconds.
#
# Sign-in: two issuers (hack/token-issuer, `kl-token-issuer`), one per managing tenant, serve
# OIDC discovery over HTTPS on 127.0.0.1; kube-apiserver's --authentication-config trusts each
# for its own tenant only and maps claims as SPEC §2 says. Mint a token with
#   target/debug/kl-token-issuer token --dir $STATE_DIR/issuers/contoso --oid OID [--group G]
# The admin kubeconfig uses a static token (system:masters).
#
# Environment:
#   KL_KUBE_VERSION  Kubernetes minor to run: 1.37 (default, v1.37.2) or 1.33 (v1.33.13)
#   KL_CACHE_DIR  where the build is cached   (default ~/.cache/kube-lighthouse)
#   KL_STATE_DIR  certificates, data, logs     (default /tmp/kube-lighthouse-cp)
#   KL_KCM_CONTROLLERS  kube-controller-manager's --controllers (default: namespace,
#                 garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation)
#   KL_AUDIT_MAXSIZE_MB  audit log size before rotation (default 100)
#   KL_TOKEN_ISSUER  a prebuilt kl-token-issuer (default: `cargo build -p kl-token-issuer`)
#   KL_GO         the go command (default: `go` on PATH, else /usr/local/go/bin/go)
#   KL_NODE=1     the same as --node
#   KL_FEDERATION=1  the same as --federation
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${KL_CACHE_DIR:-$HOME/.cache/kube-lighthouse}
STATE_DIR=${KL_STATE_DIR:-/tmp/kube-lighthouse-cp}

KUBE_MINOR=${KL_KUBE_VERSION:-1.37}
case $KUBE_MINOR in
  1.37 | 1.37.2 | v1.37.2) KUBE_MINOR=1.37 K8S_VERSION=1.37.2 ;;
  1.33 | 1.33.13 | v1.33.13) KUBE_MINOR=1.33 K8S_VERSION=1.33.13 ;;
  *) echo "[control-plane] error: KL_KUBE_VERSION=$KUBE_MINOR is not supported (1.33 or 1.37)" >&2; exit 2 ;;
esac
ETCD_VERSION=3.6.16
# Bump when the build recipe changes, so a cached binary of an older recipe is not reused.
BUILD_REVISION=3
BIN_DIR=$CACHE_DIR/kubernetes-$K8S_VERSION-r$BUILD_REVISION/bin
ETCD_BIN_DIR=$CACHE_DIR/etcd-$ETCD_VERSION-r$BUILD_REVISION/bin
ADMIN_TOKEN_FILE=$STATE_DIR/admin.token
KUBECONFIG_FILE=$STATE_DIR/kubeconfig
ISSUER_BIN=${KL_TOKEN_ISSUER:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/kl-token-issuer}
ISSUER_AUDIENCE=api://kube-lighthouse
# name:tenant ID, one issuer per managing tenant.
ISSUERS=(contoso:fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6 fabrikam:aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee)
DEFAULT_CONTROLLERS=namespace,garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation
NODE=${KL_NODE:-0}
FEDERATION=${KL_FEDERATION:-0}
FEDERATION_DIR=$STATE_DIR/federation
# The third managing tenant of the federation mode.
FEDERATION_EXTRA_ISSUER=northwind:5d4e3c2b-1a09-4f8e-9d7c-6b5a49382716
# `aud` of the broker's tokens, as the API server's one JWT authenticator expects it.
BROKER_AUDIENCE=kube-lighthouse
NODE_SH=$ROOT/hack/node.sh
# The node's addresses (hack/node.sh): the bridge, where the API server also listens in node
# mode, and the first address of the Service range (the `kubernetes` Service).
NODE_IP=10.244.0.1
NODE_SERVICE_CIDR=10.96.0.0/24
NODE_KUBERNETES_SERVICE_IP=10.96.0.1

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"


# go_build MODULE_DIR OUT_DIR LDFLAGS PACKAGE... builds into OUT_DIR with a throwaway build
# cache and the shared module cache (writable, so that `rm -rf` of the cache dir works).
go_build() {
  local module=$1 out=$2 ldflags=$3
  shift 3
  local go gocache
  go=$(go_cmd)
  gocache=$CACHE_DIR/build/gocache-$BASHPID
  mkdir -p "$CACHE_DIR/go-mod" "$CACHE_DIR/build" "$out"
  (
    cd "$module"
    export GOMODCACHE=$CACHE_DIR/go-mod GOCACHE=$gocache GOFLAGS=-modcacherw CGO_ENABLED=0
    "$go" build -trimpath -ldflags "$ldflags" -o "$out/" "$@"
  ) >"$out.log" 2>&1 || {
    rm -rf "$gocache" "$out"
    tail -n 40 "$out.log" >&2
    die "build failed; full log in $out.log"
  }
  rm -rf "$gocache" "$out.log"
}

have_bins() {
  local dir=$1
  shift
  for b in "$@"; do [[ -x $dir/$b && -s $dir/$b ]] || return 1; done
}

build_kubernetes() {
  have_bins "$BIN_DIR" kube-apiserver kube-controller-manager && return
  local ldflags="-s -w" pkg started=$SECONDS
  # Without these the binaries say v0.0.0-master and clients see no server minor.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${KUBE_MINOR#1.}"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  log "building kube-apiserver and kube-controller-manager v$K8S_VERSION (10-20 minutes on 2 cores)"
  go_build "$ROOT/hack/k8s/$KUBE_MINOR" "$BIN_DIR.tmp" "$ldflags" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  rm -rf "$BIN_DIR"
  mv "$BIN_DIR.tmp" "$BIN_DIR"
  log "built in $((SECONDS - started))s; cached in $BIN_DIR"
}

build_etcd() {
  have_bins "$ETCD_BIN_DIR" etcd && return
  local started=$SECONDS
  log "building etcd v$ETCD_VERSION (about 2 minutes)"
  go_build "$ROOT/hack/k8s/etcd" "$ETCD_BIN_DIR.tmp" "-s -w" go.etcd.io/etcd/server/v3
  # go names the binary of .../server/v3 after "server".
  mv "$ETCD_BIN_DIR.tmp/server" "$ETCD_BIN_DIR.tmp/etcd"
  rm -rf "$ETCD_BIN_DIR"
  mv "$ETCD_BIN_DIR.tmp" "$ETCD_BIN_DIR"
  log "built in $((SECONDS - started))s; cached in $ETCD_BIN_DIR"
}

cmd_install() {
  local tool
  for tool in openssl curl jq python3 flock; do
    command -v "$tool" >/dev/null || apt_install openssl curl jq python3 util-linux ca-certificates
  done
  command -v kubectl >/dev/null || die "kubectl is not on PATH"
  mkdir -p "$CACHE_DIR"
  # One build of each thing at a time (parallel `up`s of test runs share the cache).
  (flock 9 && build_etcd) 9>"$CACHE_DIR/etcd-$ETCD_VERSION.lock"
  (flock 9 && build_kubernetes) 9>"$CACHE_DIR/kubernetes-$K8S_VERSION.lock"
  if [[ $NODE == 1 ]]; then
    KL_STATE_DIR=$STATE_DIR KL_CACHE_DIR=$CACHE_DIR KL_KUBE_VERSION=$KUBE_MINOR "$NODE_SH" install
  fi
}

# ---------------------------------------------------------------------------------------
# up / down
# ---------------------------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# SO_REUSEADDR as the servers set it: connections in TIME_WAIT do not make a port taken.
port_free() {
  python3 -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1",int(sys.argv[1]))); s.close()' "$1" 2>/dev/null
}

# sign NAME CN EXTFILE-CONTENT [CA]: NAME.key + NAME.crt signed by CA (default ca).
sign() {
  local name=$1 cn=$2 ext=$3 ca=${4:-ca}
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$name.key" -out "$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial -days 3650 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

make_ca() {
  local name=$1 cn=$2
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$cn" -keyout "$name.key" -out "$name.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

make_pki() {
  local pki=$STATE_DIR/pki sans="IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1"
  mkdir -p "$pki"
  if [[ $NODE == 1 ]]; then
    # Pods reach the API server at the node's address and at the `kubernetes` Service.
    sans+=",IP:$NODE_IP,IP:$NODE_KUBERNETES_SERVICE_IP,DNS:kubernetes.default.svc.cluster.local"
    if [[ -f $pki/apiserver.crt ]] && ! openssl x509 -in "$pki/apiserver.crt" -noout -ext subjectAltName |
      grep -q "IP Address:$NODE_IP"; then
      rm -f "$pki/apiserver.crt"
    fi
  fi
  (
    cd "$pki"
    if [[ ! -f apiserver.crt ]]; then
      make_ca ca kube-lighthouse-local-ca
      sign apiserver kube-apiserver "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$sans"
    fi
    # The API server's client certificate for kubelet (logs, exec, port-forward).
    if [[ $NODE == 1 && ! -f kubelet-client.crt ]]; then
      openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
        -keyout kubelet-client.key -out kubelet-client.csr 2>/dev/null
      printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >kubelet-client.ext
      openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile kubelet-client.ext -out kubelet-client.crt 2>/dev/null
      rm -f kubelet-client.csr kubelet-client.ext
    fi
    if [[ ! -f sa.pub ]]; then
      openssl genrsa -out sa.key 2048 2>/dev/null
      openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    fi
    # Aggregation layer: kube-apiserver proxies to extension API servers with this client
    # certificate; they trust front-proxy-ca (published in kube-system/extension-apiserver-
    # authentication) for the X-Remote-* headers.
    if [[ ! -f front-proxy-client.crt ]]; then
      make_ca front-proxy-ca kube-lighthouse-front-proxy-ca
      sign front-proxy-client front-proxy-client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth" front-proxy-ca
    fi
    # Admission: kube-apiserver presents this client certificate to every webhook (its
    # admission configuration's kubeConfigFile), so a webhook can refuse any other caller
    # (kube-lighthouse's --admission-client-ca; docs/install.md, "Admission clients").
    if [[ ! -f webhook-client.crt ]]; then
      make_ca webhook-client-ca kube-lighthouse-webhook-client-ca
      sign webhook-client kube-apiserver-webhook-client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth" webhook-client-ca
    fi
  )
}

# The admission configuration: both webhook admission plugins present the webhook client
# certificate to every webhook ("*"); a webhook that does not ask for one ignores it.
write_admission_config() {
  local pki=$STATE_DIR/pki plugin
  cat >"$STATE_DIR/webhook-client.kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate: $pki/webhook-client.crt
    client-key: $pki/webhook-client.key
EOF
  {
    echo "apiVersion: apiserver.config.k8s.io/v1"
    echo "kind: AdmissionConfiguration"
    echo "plugins:"
    for plugin in ValidatingAdmissionWebhook MutatingAdmissionWebhook; do
      echo "- name: $plugin"
      echo "  configuration:"
      echo "    apiVersion: apiserver.config.k8s.io/v1"
      echo "    kind: WebhookAdmissionConfiguration"
      echo "    kubeConfigFile: $STATE_DIR/webhook-client.kubeconfig"
    done
  } >"$STATE_DIR/admission-config.yaml"
}

write_kubeconfig() {
  local port=$1 token=$2 # port: HOST:PORT
  local ca
  ca=$(base64 -w0 <"$STATE_DIR/pki/ca.crt")
  cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://$port
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

# start NAME COMMAND...: runs COMMAND in the background, logging to logs/NAME.log; the command
# line is kept (NUL-separated) in NAME.cmd so that `restart` runs exactly the same again.
start() {
  local name=$1
  shift
  printf '%s\0' "$@" >"$STATE_DIR/$name.cmd"
  "$@" >"$STATE_DIR/logs/$name.log" 2>&1 &
  echo $! >"$STATE_DIR/$name.pid"
}

wait_for() {
  local what=$1 tries=$2
  shift 2
  for ((i = 0; i < tries; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    pid_alive "$what" || break
    sleep 0.5
  done
  log "$what did not become ready; last log lines:"
  tail -n 30 "$STATE_DIR/logs/$what.log" >&2 || true
  return 1
}

build_issuer() {
  if [[ -n ${KL_TOKEN_ISSUER:-} ]]; then
    [[ -x $KL_TOKEN_ISSUER ]] || die "KL_TOKEN_ISSUER=$KL_TOKEN_ISSUER is not executable"
    return
  fi
  command -v cargo >/dev/null || die "cargo is not on PATH (or set KL_TOKEN_ISSUER)"
  log "building kl-token-issuer"
  (cd "$ROOT" && cargo build --quiet -p kl-token-issuer) || die "cargo build -p kl-token-issuer failed"
  [[ -x $ISSUER_BIN ]] || die "no $ISSUER_BIN after the build (CARGO_TARGET_DIR?)"
}

issuer_url() { jq -r .url "$STATE_DIR/issuers/$1/issuer.json"; }
issuer_port() { issuer_url "$1" | sed -E 's#^https://127\.0\.0\.1:([0-9]+)/.*#\1#'; }

# Initialises an issuer's directory once; its URL (and so its port) is part of its identity,
# so the port chosen at the first init is kept, unless another process took it meanwhile.
init_issuer() {
  local name=$1 tenant=$2 dir=$STATE_DIR/issuers/$1 port out
  if [[ -f $dir/issuer.json ]]; then
    port=$(issuer_port "$name")
    if [[ $(jq -r .tenant "$dir/issuer.json") == "$tenant" &&
      $(jq -r .audience "$dir/issuer.json") == "$ISSUER_AUDIENCE" &&
      $(issuer_url "$name") == "https://127.0.0.1:$port/$tenant/v2.0" ]] && port_free "$port"; then
      return
    fi
    log "issuer $name: port $port taken or configuration changed; initialising it anew"
  fi
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  port=$(free_port)
  out=$("$ISSUER_BIN" init --dir "$dir" --tenant "$tenant" --url "https://127.0.0.1:$port/$tenant/v2.0" \
    --audience "$ISSUER_AUDIENCE" 2>&1) || { printf '%s\n' "$out" >&2; die "kl-token-issuer init for $name failed"; }
}

start_issuers() {
  local entry name tenant
  for entry in "${ISSUERS[@]}"; do
    name=${entry%%:*} tenant=${entry#*:}
    init_issuer "$name" "$tenant"
    start "issuer-$name" "$ISSUER_BIN" serve --dir "$STATE_DIR/issuers/$name"
  done
  for entry in "${ISSUERS[@]}"; do
    name=${entry%%:*}
    wait_for "issuer-$name" 60 curl -fsS --cacert "$STATE_DIR/issuers/$name/ca.crt" \
      "$(issuer_url "$name")/.well-known/openid-configuration"
  done
}

# One JWT authenticator per managing tenant, with the claim mappings of SPEC §2. `claims` is a
# map(string, any), and CEL (k8s 1.37) refuses to range over an `any`: `claims.groups.map(…)`
# does not compile ("expression of type 'any' cannot be range of a comprehension"), so the
# groups mapping goes through dyn(). An absent claim yields [] (no groups, no extra).
write_authentication_config() {
  local api_version=apiserver.config.k8s.io/v1 entry name tenant dir
  [[ $KUBE_MINOR == 1.33 ]] && api_version=apiserver.config.k8s.io/v1beta1
  {
    echo "apiVersion: $api_version"
    echo "kind: AuthenticationConfiguration"
    echo "jwt:"
    for entry in "${ISSUERS[@]}"; do
      name=${entry%%:*} tenant=${entry#*:} dir=$STATE_DIR/issuers/$name
      cat <<EOF
# $name
- issuer:
    url: $(issuer_url "$name")
    audiences: ["$ISSUER_AUDIENCE"]
    certificateAuthority: |
$(sed 's/^/      /' "$dir/ca.crt")
  claimValidationRules:
  - expression: 'claims.tid == "$tenant"'
    message: this issuer speaks for tenant $tenant only
  claimMappings:
    username:
      expression: 'claims.tid + ":" + claims.oid'
    groups:
      expression: 'has(claims.groups) ? dyn(claims.groups).map(g, claims.tid + ":" + g) : []'
    uid:
      expression: 'claims.tid + ":" + claims.oid'
    extra:
    - key: kubelighthouse.io/amr
      valueExpression: 'has(claims.amr) ? claims.amr : []'
EOF
    done
  } >"$STATE_DIR/authentication-config.yaml"
}

# The JWT authenticators load discovery asynchronously: ready once a token of each issuer
# passes a SelfSubjectReview.
issuers_accepted() {
  local port=$1 entry name token # port: HOST:PORT
  for entry in "${ISSUERS[@]}"; do
    name=${entry%%:*}
    token=$("$ISSUER_BIN" token --dir "$STATE_DIR/issuers/$name" --oid 00000000-0000-0000-0000-000000000000) ||
      return 1
    curl -fsS --cacert "$STATE_DIR/pki/ca.crt" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -X POST \
      -d '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}' \
      "https://$port/apis/authentication.k8s.io/v1/selfsubjectreviews" >/dev/null || return 1
  done
}

# ---------------------------------------------------------------------------------------
# federation mode: the API server trusts the broker only
# ---------------------------------------------------------------------------------------

federation_issuers() {
  printf '%s\n' "${ISSUERS[@]}" "$FEDERATION_EXTRA_ISSUER"
}

# Three Entra-shaped issuers on one port (https://127.0.0.1:PORT/<tenant>/v2.0, so the broker
# finds each with one authority template) with one CA, served by one kl-token-issuer.
start_federation_issuers() {
  local dir=$FEDERATION_DIR/issuers port entry name tenant first="" out
  rm -rf "$dir"
  mkdir -p "$dir"
  port=$(free_port)
  for entry in $(federation_issuers); do
    name=${entry%%:*} tenant=${entry#*:}
    out=$("$ISSUER_BIN" init --dir "$dir/$name" --tenant "$tenant" --url "https://127.0.0.1:$port/$tenant/v2.0" \
      --audience "$ISSUER_AUDIENCE" 2>&1) || { printf '%s\n' "$out" >&2; die "kl-token-issuer init for $name failed"; }
    if [[ -z $first ]]; then
      first=$name
    else
      cp "$dir/$first"/{ca.crt,ca.key,tls.crt,tls.key} "$dir/$name/"
    fi
  done
  local dirs=()
  for entry in $(federation_issuers); do dirs+=(--dir "$dir/${entry%%:*}"); done
  start issuers-federation "$ISSUER_BIN" serve-all "${dirs[@]}"
  for entry in $(federation_issuers); do
    wait_for issuers-federation 60 curl -fsS --cacert "$dir/$first/ca.crt" \
      "https://127.0.0.1:$port/${entry#*:}/v2.0/.well-known/openid-configuration"
  done
  cp "$dir/$first/ca.crt" "$FEDERATION_DIR/authority-ca.crt"
  echo "$port" >"$FEDERATION_DIR/issuers.port"
}

# The broker's serving certificate and the port it must listen on, fixed before the API
# server starts so that its AuthenticationConfiguration can name them.
make_broker_pki() {
  local dir=$FEDERATION_DIR/broker port
  rm -rf "$dir"
  mkdir -p "$dir"
  # Also the views' Service name of the tests (tests/common/views.rs), so that the broker's
  # port serves the views' APIService too.
  (
    cd "$dir"
    make_ca ca kube-lighthouse-broker-ca
    sign tls kube-lighthouse "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kube-lighthouse-views.kube-lighthouse-views-test.svc"
  )
  port=$(free_port)
  jq -n --arg issuer "https://127.0.0.1:$port/federation" --argjson port "$port" \
    --arg authority "https://127.0.0.1:$(cat "$FEDERATION_DIR/issuers.port")/{tenantId}/v2.0" \
    --arg subject_audience "$ISSUER_AUDIENCE" --arg audience "$BROKER_AUDIENCE" \
    --arg authority_ca "$FEDERATION_DIR/authority-ca.crt" --arg dir "$dir" \
    --arg issuers "$FEDERATION_DIR/issuers" \
    '{issuer: $issuer, port: $port, authority: $authority, subject_audience: $subject_audience,
      audience: $audience, authority_ca: $authority_ca, ca: ($dir + "/ca.crt"),
      cert: ($dir + "/tls.crt"), key: ($dir + "/tls.key"), issuers: $issuers}' >"$FEDERATION_DIR/broker.json"
}

# One JWT authenticator: the broker, for every managing tenant, with the same claim mappings
# as direct sign-in (so RBAC names do not change).
write_federation_authentication_config() {
  local api_version=apiserver.config.k8s.io/v1
  [[ $KUBE_MINOR == 1.33 ]] && api_version=apiserver.config.k8s.io/v1beta1
  cat >"$STATE_DIR/authentication-config.yaml" <<EOF
apiVersion: $api_version
kind: AuthenticationConfiguration
jwt:
# kube-lighthouse's sign-in broker: the one issuer this API server trusts
- issuer:
    url: $(jq -r .issuer "$FEDERATION_DIR/broker.json")
    audiences: ["$BROKER_AUDIENCE"]
    certificateAuthority: |
$(sed 's/^/      /' "$FEDERATION_DIR/broker/ca.crt")
  claimValidationRules:
  - expression: 'has(claims.tid) && has(claims.oid)'
    message: a token of the broker names its tenant and object ID
  claimMappings:
    username:
      expression: 'claims.tid + ":" + claims.oid'
    groups:
      expression: 'has(claims.groups) ? dyn(claims.groups).map(g, claims.tid + ":" + g) : []'
    uid:
      expression: 'claims.tid + ":" + claims.oid'
    extra:
    - key: kubelighthouse.io/amr
      valueExpression: 'has(claims.amr) ? claims.amr : []'
EOF
}

cmd_up() {
  if cmd_status >/dev/null 2>&1; then
    if [[ $(cat "$STATE_DIR/version" 2>/dev/null) == "$K8S_VERSION" &&
      $([[ -f $STATE_DIR/node-mode ]] && echo 1 || echo 0) == "$NODE" &&
      $([[ -f $STATE_DIR/federation-mode ]] && echo 1 || echo 0) == "$FEDERATION" ]]; then
      log "already up (v$K8S_VERSION); KUBECONFIG=$KUBECONFIG_FILE"
      return
    fi
    log "running v$(cat "$STATE_DIR/version" 2>/dev/null) but v$K8S_VERSION is selected: restarting"
  fi
  cmd_down >/dev/null 2>&1 || true
  cmd_install
  build_issuer
  mkdir -p "$STATE_DIR/logs" "$STATE_DIR/etcd"
  # The node's bridge first: in node mode the API server listens on it.
  [[ $NODE == 1 ]] && node_sh network-up
  make_pki
  local pki=$STATE_DIR/pki etcd_port etcd_peer api_port token
  if [[ $FEDERATION == 1 ]]; then
    # The direct issuers' directories would let a test mint tokens this API server refuses.
    rm -rf "$STATE_DIR/issuers"
    mkdir -p "$FEDERATION_DIR"
    start_federation_issuers
    make_broker_pki
    write_federation_authentication_config
    touch "$STATE_DIR/federation-mode"
  else
    start_issuers
    write_authentication_config
  fi
  write_admission_config
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

  start etcd "$ETCD_BIN_DIR/etcd" --name local --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "local=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync
  echo "$etcd_port" >"$STATE_DIR/etcd.port"
  wait_for etcd 60 curl -fsS "http://127.0.0.1:$etcd_port/health"

  # --endpoint-reconciler-type none: 1.37 refuses a loopback advertise address for the
  # `kubernetes` Service's endpoints, and there is no Service network to reach them anyway.
  # Aggregation: no --enable-aggregator-routing. With no Service network, an APIService is
  # served through a Service of type ExternalName (e.g. localhost), which only the default
  # cluster-IP routing resolves (endpoint routing rejects ExternalName Services).
  # Node mode: the API server listens on the node's bridge only (the host reaches it there
  # too), advertises that address in the `kubernetes` Service's endpoints (lease reconciler),
  # and serves Services from the node's range; kubelet is authorized by the Node authorizer.
  local listen=(--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --endpoint-reconciler-type none)
  local services=10.0.0.0/24 authz=(--authorization-mode RBAC) api_host=127.0.0.1
  if [[ $NODE == 1 ]]; then
    listen=(--bind-address "$NODE_IP" --advertise-address "$NODE_IP"
      --kubelet-client-certificate "$pki/kubelet-client.crt" --kubelet-client-key "$pki/kubelet-client.key"
      --kubelet-preferred-address-types InternalIP)
    services=$NODE_SERVICE_CIDR api_host=$NODE_IP
    authz=(--authorization-mode "Node,RBAC" --enable-admission-plugins NodeRestriction)
  fi
  start kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    "${listen[@]}" --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    "${authz[@]}" --token-auth-file "$STATE_DIR/tokens.csv" \
    --authentication-config "$STATE_DIR/authentication-config.yaml" \
    --admission-control-config-file "$STATE_DIR/admission-config.yaml" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range "$services" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User \
    --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" \
    --proxy-client-key-file "$pki/front-proxy-client.key" \
    --audit-policy-file "$STATE_DIR/audit-policy.yaml" --audit-log-path "$STATE_DIR/logs/audit.log" \
    --audit-log-maxsize "${KL_AUDIT_MAXSIZE_MB:-100}" --audit-log-maxbackup 1
  write_kubeconfig "$api_host:$api_port" "$token"
  echo "$K8S_VERSION" >"$STATE_DIR/version"
  wait_for kube-apiserver 240 curl -fsS --cacert "$pki/ca.crt" \
    -H "Authorization: Bearer $token" "https://$api_host:$api_port/readyz"
  # In federation mode the broker is not running yet: its authenticator starts once it is.
  [[ $FEDERATION == 1 ]] || wait_for kube-apiserver 120 issuers_accepted "$api_host:$api_port"

  # A node runs Deployments, ReplicaSets, EndpointSlices, PodDisruptionBudgets…: every
  # controller that is on by default.
  local controllers=$DEFAULT_CONTROLLERS
  [[ $NODE == 1 ]] && controllers='*'
  # Its client's default rate (20 requests/s, bursts of 30) is a production cluster's
  # courtesy to a shared API server. Here it is the bottleneck: deleting a namespace costs
  # about two requests per namespaced resource type (some 100), so the 1,000 namespaces of the
  # onboarding suite took the namespace controller over an hour, and every later suite's
  # namespace deletion queued behind them.
  start kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig "$KUBECONFIG_FILE" --leader-elect=false --secure-port 0 \
    --kube-api-qps 500 --kube-api-burst 1000 \
    --controllers "${KL_KCM_CONTROLLERS:-$controllers}" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=false
  # `view`/`edit`/`admin` only get rules once the aggregation controller ran.
  wait_for kube-controller-manager 120 bash -c \
    "KUBECONFIG='$KUBECONFIG_FILE' kubectl get clusterrole view -o jsonpath='{.rules[0].verbs}' | grep -q get"
  if [[ $NODE == 1 ]]; then
    node_sh up
    touch "$STATE_DIR/node-mode"
  fi
  log "up (v$K8S_VERSION$([[ $NODE == 1 ]] && echo ", node kl-node")$([[ $FEDERATION == 1 ]] && echo ", federation: the API server trusts only the broker at $(jq -r .issuer "$FEDERATION_DIR/broker.json")")): export KUBECONFIG=$KUBECONFIG_FILE"
}

all_processes() {
  local entry
  echo kube-controller-manager kube-apiserver etcd
  if [[ -f $STATE_DIR/federation-mode ]]; then
    echo issuers-federation
  else
    for entry in "${ISSUERS[@]}"; do echo "issuer-${entry%%:*}"; done
  fi
}

node_sh() { KL_STATE_DIR=$STATE_DIR KL_CACHE_DIR=$CACHE_DIR KL_KUBE_VERSION=$KUBE_MINOR "$NODE_SH" "$@"; }

cmd_down() {
  local name
  # The node first, while the API server can still tell kubelet to stop the pods.
  if [[ -d $STATE_DIR/node ]]; then node_sh down; fi
  rm -f "$STATE_DIR/node-mode"
  # Whatever mode ran last: every process either mode starts.
  for name in kube-controller-manager kube-apiserver etcd issuers-federation $(printf 'issuer-%s ' "${ISSUERS[@]%%:*}"); do
    if pid_alive "$name"; then
      kill "$(cat "$STATE_DIR/$name.pid")" 2>/dev/null || true
      for _ in $(seq 1 40); do pid_alive "$name" || break; sleep 0.25; done
      if pid_alive "$name"; then kill -9 "$(cat "$STATE_DIR/$name.pid")" 2>/dev/null || true; fi
    fi
    rm -f "$STATE_DIR/$name.pid"
  done
  rm -rf "$STATE_DIR/etcd" "$STATE_DIR/version" "$STATE_DIR"/*.cmd "$STATE_DIR/etcd.port" "$STATE_DIR/federation-mode"
  log "down"
}

cmd_status() {
  local name
  [[ -f $KUBECONFIG_FILE ]] || return 1
  for name in $(all_processes); do pid_alive "$name" || return 1; done
  if [[ ! -f $STATE_DIR/federation-mode ]]; then
    for name in "${ISSUERS[@]}"; do
      name=${name%%:*}
      curl -fsS --cacert "$STATE_DIR/issuers/$name/ca.crt" \
        "$(issuer_url "$name")/.well-known/openid-configuration" >/dev/null || return 1
    done
  fi
  KUBECONFIG=$KUBECONFIG_FILE kubectl get --raw /readyz >/dev/null
  if [[ -f $STATE_DIR/node-mode ]]; then node_sh status >/dev/null; fi
}

api_ready() {
  curl -fsS --cacert "$STATE_DIR/pki/ca.crt" -H "Authorization: Bearer $(cat "$ADMIN_TOKEN_FILE")" \
    "$(awk '/server:/ {print $2; exit}' "$KUBECONFIG_FILE")/readyz"
}

# restart apiserver|etcd [SECONDS]: a crash and a restart of one process of a running control
# plane (SIGKILL, down for SECONDS, the same command line again), for the chaos suite. The
# port, the certificates and etcd's data stay, so clients reconnect to the same address.
cmd_restart() {
  local name down=${2:-0} pid
  case ${1:-} in
    apiserver | kube-apiserver) name=kube-apiserver ;;
    etcd) name=etcd ;;
    *) die "restart: which process? apiserver or etcd" ;;
  esac
  [[ $down =~ ^[0-9]+([.][0-9]+)?$ ]] || die "restart: SECONDS must be a number, not $down"
  [[ -f $STATE_DIR/$name.cmd ]] && pid_alive "$name" || die "restart: $name is not running under $STATE_DIR (up first)"
  pid=$(cat "$STATE_DIR/$name.pid")
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  log "$name killed (SIGKILL); down for ${down}s"
  sleep "$down"
  mv -f "$STATE_DIR/logs/$name.log" "$STATE_DIR/logs/$name.log.prev" 2>/dev/null || true
  local args=()
  mapfile -d '' args <"$STATE_DIR/$name.cmd"
  [[ ${args[0]} == setsid ]] && args=("${args[@]:1}")
  # In a session of its own: the restarted process must not belong to the caller's process
  # group (a test run), or a signal to that group (Ctrl-C, a timeout) would take it down.
  start "$name" setsid "${args[@]}"
  if [[ $name == etcd ]]; then
    wait_for etcd 120 curl -fsS "http://127.0.0.1:$(cat "$STATE_DIR/etcd.port")/health"
  fi
  # kube-apiserver answers /readyz once etcd is back and its post-start hooks ran.
  wait_for kube-apiserver 480 api_ready
  log "$name restarted"
}

[[ ${2:-} == --node ]] && NODE=1
[[ ${2:-} == --federation ]] && FEDERATION=1
if [[ $NODE == 1 && $FEDERATION == 1 ]]; then die "--node and --federation do not combine"; fi

case ${1:-} in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  restart) cmd_restart "${2:-}" "${3:-}" ;;
  status) if cmd_status; then echo "up: KUBECONFIG=$KUBECONFIG_FILE"; else echo "down"; exit 1; fi ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_FILE" ;;
  version) echo "v$K8S_VERSION" ;;
  *) echo "usage: $0 install|up [--node|--federation]|down|restart apiserver|etcd [SECONDS]|status|env|version" >&2; exit 2 ;;
esac
