#!/usr/bin/env bash
# One Kubernetes node on this machine for the control plane of hack/control-plane.sh, without
# Docker: containerd 2.x with its runc shim and Debian's runc, the CNI plugins (bridge,
# host-local, loopback, portmap), kubelet and kube-proxy, plus kube-scheduler (the control
# plane has none). `hack/control-plane.sh up --node` calls this; use it directly only for
# `install` and `status`.
#
#   hack/node.sh install       build (cached per version) kubelet, kube-proxy, kube-scheduler
#                              (same module graph as the API server: hack/k8s/<minor>),
#                              containerd (hack/k8s/containerd), the CNI plugins
#                              (hack/k8s/cni) and the pause image (hack/node/pause.c)
#   hack/node.sh network-up    the node's bridge, routes, traffic guard (before the API server:
#                              it listens on the bridge)
#   hack/node.sh up            start containerd, kube-scheduler, kubelet, kube-proxy; wait for
#                              the Node to be Ready
#   hack/node.sh down          stop all of it and remove every trace: pods, processes, mounts,
#                              network namespaces, cgroups, the bridge, iptables rules, sysctls
#   hack/node.sh status        exit 0 when the Node is Ready
#   hack/node.sh import FILE   load an OCI/Docker image archive into the node's containerd
#   hack/node.sh kill-container ID   SIGKILL a container (containerd://ID, as a pod's status
#                              names it): a crash, for tests/node_e2e.rs
#
# Network (all of it on this machine): the bridge kl-br0 holds $NODE_IP (10.244.0.1/24), the
# node's address, where the API server also listens. Pods get 10.244.0.0/24 addresses on it
# and routes to the pod range and the Service range only: no default route. Services are
# 10.96.0.0/24 (kube-proxy, iptables mode). A guard in the raw table drops any packet from a
# pod to anything but pods, Services and the node, and any packet arriving from another
# interface for the pod or Service ranges; the filter table's FORWARD only forwards from the
# bridge to the bridge. Nothing is routed off the machine.
#
# cgroups: this works on cgroup v1 (and hybrid) hosts: kubelet runs with failCgroupV1: false,
# the cgroupfs driver and its own cgroup root /kl-node in each hierarchy.
#
# Measured (2 cores shared with five other builds, load 10-20, every build at nice 19, Go
# modules already downloaded): the CNI plugins 116 s, containerd 397 s, kubelet + kube-proxy +
# kube-scheduler 1394 s; 32 minutes in all, 12 CPU-minutes (so about 6-7 minutes on idle
# cores). With the caches, `hack/control-plane.sh up --node` takes 14-17 s (the node is Ready
# about 5 s after the control plane) and `down` 30-45 s (it lets kubelet stop the pods).
#
# Environment (set by hack/control-plane.sh): KL_STATE_DIR, KL_CACHE_DIR, KL_KUBE_VERSION.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${KL_CACHE_DIR:-$HOME/.cache/kube-lighthouse}
STATE_DIR=${KL_STATE_DIR:-/tmp/kube-lighthouse-cp}
KUBE_MINOR=${KL_KUBE_VERSION:-1.37}
case $KUBE_MINOR in
  1.37 | 1.37.2 | v1.37.2) KUBE_MINOR=1.37 K8S_VERSION=1.37.2 ;;
  *) K8S_VERSION=unsupported ;;
esac

NODE_NAME=kl-node
BRIDGE=kl-br0
NODE_IP=10.244.0.1
NODE_SUBNET=10.244.0.0/24
POD_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/24
CGROUP_ROOT=kl-node
PAUSE_IMAGE=localhost/kube-lighthouse/pause:3.10

# Bump when a build recipe changes, so that a cached binary of an older recipe is not reused.
NODE_BUILD_REVISION=1
# version_of MODULE_DIR MODULE: the version hack/k8s/MODULE_DIR/go.mod requires.
version_of() {
  awk -v m="$2" '$1 == m {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' \
    "$ROOT/hack/k8s/$1/go.mod" | sed 's/^v//'
}
CONTAINERD_VERSION=$(version_of containerd github.com/containerd/containerd/v2)
CNI_VERSION=$(version_of cni github.com/containernetworking/plugins)
KUBE_NODE_BIN=$CACHE_DIR/kubernetes-$K8S_VERSION-node-r$NODE_BUILD_REVISION/bin
CONTAINERD_BIN=$CACHE_DIR/containerd-$CONTAINERD_VERSION-r$NODE_BUILD_REVISION/bin
CNI_BIN=$CACHE_DIR/cni-plugins-$CNI_VERSION-r$NODE_BUILD_REVISION/bin
PAUSE_DIR=$CACHE_DIR/pause-r$NODE_BUILD_REVISION

N=$STATE_DIR/node
PKI=$STATE_DIR/pki
CONTAINERD_SOCK=$N/containerd/containerd.sock
# Kernel settings the node changes (kubelet, the bridge plugin, kube-proxy); `down` restores
# the values they had before `network-up`.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory vm.panic_on_oom
  kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

HOST_PATHS=(/run/containerd /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /var/run/nri /etc/cni /opt/cni)

log() { printf '[node] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"


# go_build MODULE_DIR OUT_DIR LDFLAGS PACKAGE...: as hack/control-plane.sh builds (shared module
# cache, throwaway build cache, static binaries), at the lowest CPU priority.
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
    nice -n 19 "$go" build -trimpath -ldflags "$ldflags" -o "$out/" "$@"
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

# build DIR LOCKNAME WHAT MODULE LDFLAGS PACKAGE...: one build per cache entry at a time.
build() {
  local dir=$1 lock=$2 what=$3 module=$4 ldflags=$5
  shift 5
  local bins=() p
  for p in "$@"; do bins+=("${p##*/}"); done
  (
    flock 9
    have_bins "$dir" "${bins[@]}" && exit 0
    local started=$SECONDS
    log "building $what"
    go_build "$ROOT/hack/k8s/$module" "$dir.tmp" "$ldflags" "$@"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    log "built $what in $((SECONDS - started))s; cached in $dir"
  ) 9>"$CACHE_DIR/$lock.lock"
}

build_pause() {
  (
    flock 9
    [[ -s $PAUSE_DIR/pause.tar ]] && exit 0
    mkdir -p "$PAUSE_DIR.tmp"
    musl-gcc -static -Os -Wall -Wextra -o "$PAUSE_DIR.tmp/pause" "$ROOT/hack/node/pause.c"
    strip "$PAUSE_DIR.tmp/pause"
    python3 "$ROOT/hack/oci-image.py" --out "$PAUSE_DIR.tmp/pause.tar" --ref "$PAUSE_IMAGE" \
      --file "$PAUSE_DIR.tmp/pause:/pause:0755" --user 65535:65535 --entrypoint '["/pause"]' >/dev/null
    rm -rf "$PAUSE_DIR"
    mv "$PAUSE_DIR.tmp" "$PAUSE_DIR"
    log "built the pause image; cached in $PAUSE_DIR"
  ) 9>"$CACHE_DIR/pause.lock"
}

cmd_install() {
  [[ $K8S_VERSION != unsupported ]] || die "the node is built for Kubernetes 1.37 only, not KL_KUBE_VERSION=$KUBE_MINOR"
  apt_install runc iptables conntrack musl-tools ca-certificates iproute2 util-linux
  mkdir -p "$CACHE_DIR"
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${KUBE_MINOR#1.}"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  build_pause
  build "$CNI_BIN" "cni-plugins-$CNI_VERSION" "the CNI plugins v$CNI_VERSION" cni "-s -w" \
    github.com/containernetworking/plugins/plugins/main/bridge \
    github.com/containernetworking/plugins/plugins/ipam/host-local \
    github.com/containernetworking/plugins/plugins/main/loopback \
    github.com/containernetworking/plugins/plugins/meta/portmap
  build "$CONTAINERD_BIN" "containerd-$CONTAINERD_VERSION" "containerd v$CONTAINERD_VERSION" containerd \
    "-s -w -X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION" \
    github.com/containerd/containerd/v2/cmd/containerd \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
    github.com/containerd/containerd/v2/cmd/ctr
  build "$KUBE_NODE_BIN" "kubernetes-$K8S_VERSION-node" "kubelet, kube-proxy and kube-scheduler v$K8S_VERSION" \
    "$KUBE_MINOR" "$ldflags" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kube-scheduler
}

# ---------------------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------------------

# The guard: raw PREROUTING sees every packet a pod sends before any NAT, and every packet
# arriving from elsewhere. Pods may reach pods, Services and the node; nothing else.
guard_rules() {
  cat <<EOF
-s $POD_CIDR -d $POD_CIDR -j RETURN
-s $POD_CIDR -d $SERVICE_CIDR -j RETURN
-s $POD_CIDR -j DROP
! -i $BRIDGE -d $POD_CIDR -j DROP
! -i $BRIDGE -d $SERVICE_CIDR -j DROP
EOF
}

cmd_network_up() {
  mkdir -p "$N"
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    [[ -f $N/network ]] || die "the bridge $BRIDGE exists but not for $STATE_DIR: another node is up (its down first)"
    return
  fi
  local key
  : >"$N/sysctls"
  for key in "${SYSCTLS[@]}"; do
    echo "$key=$(sysctl -n "$key")" >>"$N/sysctls"
  done
  touch "$N/network"
  # Host paths that some part writes whatever its configuration says (the shims' sockets in
  # /run/containerd/s, libcni's cache, kubelet's log links): down removes those it made.
  local path
  for path in "${HOST_PATHS[@]}"; do
    [[ -e $path ]] || echo "$path" >>"$N/made-paths"
  done
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # The host reaches Services through the bridge, never through its default route.
  ip route add "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
  iptables -t raw -N KL-NODE-GUARD
  local rule
  while read -r rule; do
    # shellcheck disable=SC2086
    iptables -t raw -A KL-NODE-GUARD $rule
  done < <(guard_rules)
  iptables -t raw -I PREROUTING 1 -j KL-NODE-GUARD
  iptables -t filter -N KL-NODE-FORWARD
  iptables -t filter -A KL-NODE-FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  iptables -t filter -A KL-NODE-FORWARD -i "$BRIDGE" -j DROP
  iptables -t filter -A KL-NODE-FORWARD -o "$BRIDGE" -j DROP
  # The host forwarded nothing before (ip_forward was 0): it still forwards nothing else.
  if grep -qx 'net.ipv4.ip_forward=0' "$N/sysctls"; then
    iptables -t filter -A KL-NODE-FORWARD -j DROP
  fi
  iptables -t filter -I FORWARD 1 -j KL-NODE-FORWARD
  # Pod to Service to a pod on the same bridge goes through iptables only with these.
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.ipv4.ip_forward=1
  log "network up: $BRIDGE $NODE_IP/24, pods $NODE_SUBNET, Services $SERVICE_CIDR"
}

network_down() {
  local link
  while iptables -t raw -D PREROUTING -j KL-NODE-GUARD 2>/dev/null; do :; done
  iptables -t raw -F KL-NODE-GUARD 2>/dev/null && iptables -t raw -X KL-NODE-GUARD
  while iptables -t filter -D FORWARD -j KL-NODE-FORWARD 2>/dev/null; do :; done
  iptables -t filter -F KL-NODE-FORWARD 2>/dev/null && iptables -t filter -X KL-NODE-FORWARD
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    for link in $(ip -o link show master "$BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link del "$link" 2>/dev/null || true
    done
    ip link del "$BRIDGE"
  fi
  if [[ -f $N/sysctls ]]; then
    local setting
    while read -r setting; do sysctl -qw "$setting" || true; done <"$N/sysctls"
  fi
  rm -f "$N/network" "$N/sysctls"
}

# ---------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------

api_url() { awk '/server:/ {print $2; exit}' "$STATE_DIR/kubeconfig"; }

# node_cert NAME CN [O]: a client certificate signed by the control plane's CA, and a
# kubeconfig NAME.kubeconfig that uses it.
node_cert() {
  local name=$1 cn=$2 org=${3:-} subj
  subj="/CN=$cn"
  [[ -n $org ]] && subj="/O=$org/CN=$cn"
  (
    cd "$PKI"
    if [[ ! -f $name.crt ]]; then
      openssl req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$name.key" -out "$name.csr" 2>/dev/null
      printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$name.ext"
      openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$name.ext" -out "$name.crt" 2>/dev/null
      rm -f "$name.csr" "$name.ext"
    fi
  )
  cat >"$N/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$(api_url)", certificate-authority: "$PKI/ca.crt"}
users:
- name: $name
  user: {client-certificate: "$PKI/$name.crt", client-key: "$PKI/$name.key"}
contexts:
- name: local
  context: {cluster: local, user: $name}
current-context: local
EOF
}

pid_alive() { [[ -f $N/$1.pid ]] && kill -0 "$(cat "$N/$1.pid")" 2>/dev/null; }

start() {
  local name=$1
  shift
  "$@" >"$STATE_DIR/logs/$name.log" 2>&1 &
  echo $! >"$N/$name.pid"
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

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

ctr_() { "$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# true when this process may not lower an oom_score_adj (no CAP_SYS_RESOURCE).
restrict_oom_score_adj() {
  if sh -c 'echo -1 >/proc/self/oom_score_adj' 2>/dev/null; then echo false; else echo true; fi
}

write_containerd_config() {
  mkdir -p "$N/containerd" "$N/cni/net.d" "$N/cni/ipam"
  cat >"$N/containerd/config.toml" <<EOF
version = 3
root = "$N/containerd/root"
state = "$N/containerd/state"

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$N/containerd/containerd.sock.ttrpc"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
  # Every registry resolves to 127.0.0.1:9, where nothing listens: an image that was not
  # imported fails to pull at once (ErrImagePull) and nothing leaves the machine.
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$N/containerd/certs.d"

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # Pod network namespaces under the state dir, so that down finds exactly this node's.
  netns_mounts_under_state_dir = true
  # Without CAP_SYS_RESOURCE (a sandboxed VM) no process may lower its oom_score_adj, and
  # kubelet asks -998 for every pod sandbox: keep it at containerd's own instead.
  restrict_oom_score_adj = $(restrict_oom_score_adj)
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$N/containerd/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$CNI_BIN"]
    conf_dir = "$N/cni/net.d"
    max_conf_num = 1

[plugins.'io.containerd.internal.v1.opt']
  path = "$N/containerd/opt"

# NRI would listen on /var/run/nri/nri.sock, outside the state dir; nothing here uses it.
[plugins.'io.containerd.nri.v1.nri']
  disable = true
EOF
  mkdir -p "$N/containerd/certs.d/_default"
  printf 'server = "http://127.0.0.1:9"\n' >"$N/containerd/certs.d/_default/hosts.toml"
  # A bridge without a default gateway: pods get routes to the pod and Service ranges only.
  cat >"$N/cni/net.d/10-kl-node.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kl-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$N/cni/ipam",
        "ranges": [[{"subnet": "$NODE_SUBNET", "gateway": "$NODE_IP", "rangeStart": "10.244.0.10"}]],
        "routes": [{"dst": "$POD_CIDR", "gw": "$NODE_IP"}, {"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# kubelet wants its cgroup root to exist in every hierarchy it uses.
make_cgroup_root() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ $(basename "$h") == unified ]] && continue
    mountpoint -q "$h" || continue
    mkdir -p "$h$CGROUP_ROOT"
  done
  # A new v1 cpuset has no CPUs and no memory nodes: nothing could run in it.
  if [[ -f /sys/fs/cgroup/cpuset/cpuset.cpus ]]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.mems"
  fi
}

write_kubelet_config() {
  local kubelet_port=$1 healthz_port=$2
  mkdir -p "$N/kubelet" "$N/pod-logs"
  # No cluster DNS: pods resolve nothing outside (an empty resolv.conf), and reach the API
  # server through KUBERNETES_SERVICE_HOST.
  : >"$N/resolv.conf"
  cat >"$N/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
clusterDomain: cluster.local
resolvConf: $N/resolv.conf
podLogsDir: $N/pod-logs
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
EOF
}

write_kube_proxy_config() {
  local metrics_port=$1 healthz_port=$2
  cat >"$N/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $N/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
metricsBindAddress: 127.0.0.1:$metrics_port
healthzBindAddress: 127.0.0.1:$healthz_port
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  localhostNodePorts: false
  masqueradeAll: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

node_ready() {
  [[ $(kubectl --kubeconfig "$STATE_DIR/kubeconfig" get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

cmd_up() {
  [[ -f $STATE_DIR/kubeconfig ]] || die "no control plane under $STATE_DIR (hack/control-plane.sh up --node)"
  [[ -f $N/network ]] || die "the node's network is not up (hack/control-plane.sh up --node)"
  cmd_install
  mkdir -p "$STATE_DIR/logs"
  node_cert kubelet "system:node:$NODE_NAME" system:nodes
  node_cert kube-proxy system:kube-proxy
  node_cert kube-scheduler system:kube-scheduler
  write_containerd_config
  make_cgroup_root

  PATH=$CONTAINERD_BIN:$PATH start containerd "$CONTAINERD_BIN/containerd" --config "$N/containerd/config.toml"
  wait_for containerd 120 ctr_ version
  # (ctr warns on stderr that cgroup v1 is deprecated, at every call.)
  ctr_ images import "$PAUSE_DIR/pause.tar" >/dev/null 2>&1 || die "ctr images import $PAUSE_DIR/pause.tar failed"
  # A pinned sandbox image is never garbage-collected by kubelet.
  ctr_ images label "$PAUSE_IMAGE" io.cri-containerd.pinned=pinned >/dev/null 2>&1

  start kube-scheduler "$KUBE_NODE_BIN/kube-scheduler" --kubeconfig "$N/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$N/kube-scheduler.kubeconfig" --authorization-kubeconfig "$N/kube-scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port "$(free_port)"

  write_kubelet_config "$(free_port)" "$(free_port)"
  start kubelet "$KUBE_NODE_BIN/kubelet" --config "$N/kubelet.yaml" --kubeconfig "$N/kubelet.kubeconfig" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --root-dir "$N/kubelet" --cert-dir "$N/kubelet/pki"

  write_kube_proxy_config "$(free_port)" "$(free_port)"
  start kube-proxy "$KUBE_NODE_BIN/kube-proxy" --config "$N/kube-proxy.yaml"

  wait_for kubelet 240 node_ready
  log "node $NODE_NAME Ready ($NODE_IP); image archives: hack/node.sh import FILE"
}

cmd_import() {
  local file=${1:?import: which image archive?}
  [[ -S $CONTAINERD_SOCK ]] || die "the node's containerd is not running (hack/control-plane.sh up --node)"
  # ctr's stderr is a cgroup v1 deprecation warning at every call here; its stdout says what
  # was imported.
  ctr_ images import --platform linux/amd64 "$file" 2>/dev/null || die "ctr images import $file failed"
}

# ---------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------

stop_process() {
  local name=$1 pid
  pid_alive "$name" || { rm -f "$N/$name.pid"; return 0; }
  pid=$(cat "$N/$name.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$N/$name.pid"
}

# The shims this node's containerd started: their command line names its socket.
shim_pids() {
  local p
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "-address $CONTAINERD_SOCK " && basename "$p"
  done
  return 0
}

cgroup_pids() {
  local h
  for h in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    [[ -d $h ]] && find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
}

cmd_down() {
  # Without its state dir this is not the node that owns the bridge (if any): leave it.
  [[ -d $N ]] || return 0
  local kc=$STATE_DIR/kubeconfig pid task
  # With the API server still there, let kubelet stop the pods (CNI DEL, netns, cgroups).
  if [[ -f $kc ]] && pid_alive kubelet && kubectl --kubeconfig "$kc" get node "$NODE_NAME" >/dev/null 2>&1; then
    kubectl --kubeconfig "$kc" cordon "$NODE_NAME" >/dev/null 2>&1 || true
    kubectl --kubeconfig "$kc" delete pods -A --field-selector "spec.nodeName=$NODE_NAME" \
      --grace-period=1 --wait=false >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do
      [[ -z $(ctr_ tasks ls -q 2>/dev/null) ]] && break
      sleep 0.5
    done
  fi
  stop_process kube-proxy
  stop_process kubelet
  stop_process kube-scheduler
  if pid_alive containerd; then
    for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL -a "$task" >/dev/null 2>&1 || true; done
    sleep 1
    for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$task" >/dev/null 2>&1 || true; done
  fi
  stop_process containerd
  for pid in $(shim_pids) $(cgroup_pids); do kill -9 "$pid" 2>/dev/null || true; done
  sleep 0.5
  # kube-proxy's and the CNI plugins' iptables rules (kubelet makes none: makeIPTablesUtilChains
  # is off).
  if [[ -x $KUBE_NODE_BIN/kube-proxy ]]; then
    "$KUBE_NODE_BIN/kube-proxy" --cleanup --proxy-mode iptables >/dev/null 2>&1 || true
  fi
  remove_chains CNI-
  remove_chains KUBE-
  # Mounts under the node's state dir (netns, volumes, overlay rootfs, kubelet's own), deepest first.
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$N/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  for m in /var/log/containers/*.log; do
    [[ -L $m && $(readlink "$m") == "$N/"* ]] && rm -f "$m"
  done
  local h
  for h in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    [[ -d $h ]] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  network_down
  if [[ -f $N/made-paths ]]; then
    while read -r m; do rm -rf "$m"; done <"$N/made-paths"
  fi
  rm -rf "$N"
  log "down"
}

# remove_chains PREFIX: every chain with that prefix in each table, and the jumps to it.
remove_chains() {
  local prefix=$1 table chain rule
  for table in raw mangle nat filter; do
    # Jumps from the built-in chains; `-S` quotes as the shell does, hence eval.
    while read -r rule; do
      if [[ -n $rule ]]; then eval "iptables -t $table -D ${rule#-A }" 2>/dev/null || true; fi
    done < <(iptables -t "$table" -S 2>/dev/null | grep -E -- "^-A [A-Z]+ .*-j $prefix" | grep -Ev -- "^-A $prefix" || true)
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk -v p="$prefix" '$1 == "-N" && index($2, p) == 1 {print $2}'); do
      iptables -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk -v p="$prefix" '$1 == "-N" && index($2, p) == 1 {print $2}'); do
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

cmd_status() { node_ready; }

# SIGKILL a container's task, as a crash or the kernel's OOM killer would end it (the pod
# stays; kubelet restarts the container). tests/node_e2e.rs kills the leader with it.
cmd_kill_container() {
  local id=${1:?kill-container: which container ID (containerd://ID or ID)?}
  [[ -S $CONTAINERD_SOCK ]] || die "the node's containerd is not running (hack/control-plane.sh up --node)"
  ctr_ tasks kill --signal SIGKILL "${id#containerd://}" 2>/dev/null || die "ctr tasks kill ${id#containerd://} failed"
}

case ${1:-} in
  install) cmd_install ;;
  network-up) cmd_network_up ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) if cmd_status; then echo "node $NODE_NAME Ready"; else echo "node $NODE_NAME not Ready"; exit 1; fi ;;
  import) cmd_import "${2:-}" ;;
  kill-container) cmd_kill_container "${2:-}" ;;
  *) echo "usage: $0 install|network-up|up|down|status|import FILE|kill-container ID" >&2; exit 2 ;;
esac
