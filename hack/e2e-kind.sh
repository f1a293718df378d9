#!/usr/bin/env bash
# The e2e suites on a real cluster with the controller deployed by the chart, for users with
# Docker: a kind cluster, the image built from this repo's Dockerfile and loaded into it, the
# chart installed, then the e2e, delegation and lifecycle suites run against it with
# KL_TEST_EXTERNAL_CONTROLLER=1 (the tests start no controller of their own).
#
#   hack/e2e-kind.sh          create the cluster (reused when it exists), build, load, install, test
#   hack/e2e-kind.sh down     delete the cluster
#
# Needs docker (daemon running), kind, kubectl and cargo; helm is taken from PATH, else
# installed by hack/install-helm.sh (Linux x86_64). Your ~/.kube/config is not touched: the
# cluster's kubeconfig is written to $KL_E2E_KUBECONFIG.
#
# Environment:
#   KL_E2E_CLUSTER      kind cluster name                     (default kube-lighthouse-e2e)
#   KL_E2E_KUBECONFIG   kubeconfig written for that cluster    (default ~/.cache/kube-lighthouse/kind-e2e.kubeconfig)
#   KL_E2E_NODE_IMAGE   kind node image, e.g. kindest/node:v1.31.0 (default: kind's own)
#   KL_TEST_THREADS     test threads                           (default 2)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLUSTER=${KL_E2E_CLUSTER:-kube-lighthouse-e2e}
KUBECONFIG_FILE=${KL_E2E_KUBECONFIG:-${KL_CACHE_DIR:-$HOME/.cache/kube-lighthouse}/kind-e2e.kubeconfig}
NODE_IMAGE=${KL_E2E_NODE_IMAGE:-}
IMAGE_REPOSITORY=kube-lighthouse
IMAGE_TAG=e2e
IMAGE=$IMAGE_REPOSITORY:$IMAGE_TAG
RELEASE=kube-lighthouse
RELEASE_NAMESPACE=kube-lighthouse

log() { printf '[e2e-kind] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

need_docker() {
  command -v docker >/dev/null 2>&1 \
    || die "docker not found. Install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop."
  docker info >/dev/null 2>&1 \
    || die "docker is installed but its daemon does not answer (is it running? may this user use it?)"
}

need_kind() {
  command -v kind >/dev/null 2>&1 || die "kind not found. Install it from https://kind.sigs.k8s.io/docs/user/quick-start/#installation
  (a release binary, or: go install sigs.k8s.io/kind@latest)"
}

need_tools() {
  need_docker
  need_kind
  command -v kubectl >/dev/null 2>&1 \
    || die "kubectl not found. Install it from https://kubernetes.io/docs/tasks/tools/"
  command -v cargo >/dev/null 2>&1 \
    || die "cargo not found. Install a Rust toolchain from https://rustup.rs/"
}

cluster_exists() {
  kind get clusters 2>/dev/null | grep -qx -- "$CLUSTER"
}

# What the controller pod does, when the install or a test fails.
diagnose() {
  log "controller state (namespace $RELEASE_NAMESPACE):"
  kubectl -n "$RELEASE_NAMESPACE" get deployments,pods -o wide >&2 || true
  kubectl -n "$RELEASE_NAMESPACE" describe pods >&2 || true
  kubectl -n "$RELEASE_NAMESPACE" logs "deployment/$RELEASE" --tail=200 >&2 || true
}

cmd_down() {
  need_kind
  if cluster_exists; then
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER"
  else
    log "no kind cluster $CLUSTER"
  fi
  rm -f "$KUBECONFIG_FILE"
}

cmd_up() {
  need_tools
  mkdir -p "$(dirname "$KUBECONFIG_FILE")"

  # 1. The cluster: one control-plane node, nothing special.
  if cluster_exists; then
    log "reusing kind cluster $CLUSTER"
    kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"
  else
    log "creating kind cluster $CLUSTER"
    local config
    config=$(mktemp)
    cat >"$config" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
EOF
    local image_args=()
    [[ -n $NODE_IMAGE ]] && image_args=(--image "$NODE_IMAGE")
    if ! kind create cluster --name "$CLUSTER" --config "$config" --kubeconfig "$KUBECONFIG_FILE" \
      --wait 180s ${image_args[@]+"${image_args[@]}"}; then
      rm -f "$config"
      die "kind create cluster failed"
    fi
    rm -f "$config"
  fi
  export KUBECONFIG=$KUBECONFIG_FILE
  kubectl cluster-info >/dev/null || die "the kind cluster does not answer"

  # 2. The image, built from the repository's Dockerfile (BuildKit: it uses cache mounts).
  log "building $IMAGE"
  DOCKER_BUILDKIT=1 docker build -t "$IMAGE" .
  log "loading $IMAGE into $CLUSTER"
  kind load docker-image "$IMAGE" --name "$CLUSTER"
  # The tag is always `e2e`: the image ID as a pod annotation makes a rebuilt image roll out.
  local image_id
  image_id=$(docker image inspect --format '{{.Id}}' "$IMAGE")

  # 3. The chart.
  local helm
  if helm=$(command -v helm); then
    log "using $helm"
  else
    helm=$(hack/install-helm.sh) || die "no helm on PATH and hack/install-helm.sh failed; install helm (https://helm.sh/docs/intro/install/)"
  fi
  log "installing the chart (release $RELEASE, namespace $RELEASE_NAMESPACE)"
  if ! "$helm" upgrade --install "$RELEASE" charts/kube-lighthouse \
    -n "$RELEASE_NAMESPACE" --create-namespace \
    --set image.repository="$IMAGE_REPOSITORY" \
    --set image.tag="$IMAGE_TAG" \
    --set image.pullPolicy=Never \
    --set-string podAnnotations.e2e-image-id="$image_id" \
    --wait --timeout 5m; then
    diagnose
    die "helm upgrade --install failed"
  fi

  # 4. The suites, against the deployed controller.
  log "running the e2e and lifecycle suites against $CLUSTER"
  # --include-ignored: the cluster tests (ignored by a plain `cargo test`); CI: the real
  # sign-in half of the checks must find its issuers or fail. tests/delegation.rs and the
  # skipped lifecycle test apply what the chart's webhook refuses, to prove the controller's
  # own checks: they run with hack/test.sh's in-process controller only.
  if ! KL_TEST_KUBECONFIG=$KUBECONFIG_FILE KL_TEST_EXTERNAL_CONTROLLER=1 CI=${CI:-1} \
    cargo test --test e2e --test lifecycle -- --include-ignored \
      --skip a_second_assignment_of_one_definition_at_one_scope_fails_until_the_first_goes \
      --test-threads "${KL_TEST_THREADS:-2}"; then
    diagnose
    die "tests failed; the cluster is kept for inspection (KUBECONFIG=$KUBECONFIG_FILE); hack/e2e-kind.sh down deletes it"
  fi
  log "passed. The cluster is kept (KUBECONFIG=$KUBECONFIG_FILE); hack/e2e-kind.sh down deletes it"
}

case ${1:-up} in
  up) cmd_up ;;
  down) cmd_down ;;
  -h | --help | help) usage ;;
  *) log "unknown command: $1"; usage ;;
esac
