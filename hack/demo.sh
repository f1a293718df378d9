#!/usr/bin/env bash
# The quickstart demo: a real control plane, the CRDs and role catalog, the controller, the
# example delegation of examples/quickstart/, and the effective access it grants, read from
# the API server's own authorizer (`kubectl auth can-i`, i.e. SubjectAccessReviews).
#
#   hack/demo.sh          run the demo (leaves the control plane and controller running)
#   hack/demo.sh down     stop the controller and the control plane
set -euo pipefail
cd "$(dirname "$0")/.."
STATE_DIR=${KL_STATE_DIR:-/tmp/kube-lighthouse-cp}
PID_FILE=$STATE_DIR/controller.pid

stop_controller() {
  if [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    kill "$(cat "$PID_FILE")"
  fi
  rm -f "$PID_FILE"
}

if [[ ${1:-} == down ]]; then
  stop_controller
  hack/control-plane.sh down
  exit 0
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Local control plane (etcd + kube-apiserver with RBAC + kube-controller-manager)"
hack/control-plane.sh up
export KUBECONFIG=$STATE_DIR/kubeconfig

say "Building the controller"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
cargo build --quiet --bin kube-lighthouse

say "Installing the CRDs and the role catalog"
kubectl apply --server-side --force-conflicts -f crds/ -f charts/kube-lighthouse/files/catalog.yaml
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null

say "Starting the controller (log: $STATE_DIR/logs/controller.log)"
stop_controller
mkdir -p "$STATE_DIR/logs"
./target/debug/kube-lighthouse >"$STATE_DIR/logs/controller.log" 2>&1 &
echo $! >"$PID_FILE"

say "Applying the example delegation (examples/quickstart/)"
kubectl apply -f examples/quickstart/
if ! kubectl -n customer-a wait regassign/contoso-msp --for=jsonpath='{.status.provisioningState}'=Succeeded --timeout=60s; then
  kubectl -n customer-a get regassign contoso-msp -o yaml
  tail -n 5 "$STATE_DIR/logs/controller.log" | cut -c1-600
  exit 1
fi
kubectl get lighthouse -A
echo
kubectl get roles,rolebindings -A -l app.kubernetes.io/managed-by=kube-lighthouse

MSP=fbcdd0f3-dc82-4cee-bcde-7301d24e9bf6
OTHER=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee
ENGINEERS=00000000-0000-0000-0000-0000000000a1
ON_CALL=00000000-0000-0000-0000-0000000000b2

# identity label | --as | --as-group (may be empty)
identities=(
  "Contoso Engineers (group, Reader)|engineer@contoso|$MSP:$ENGINEERS"
  "Contoso On-Call (user, Contributor)|$MSP:$ON_CALL|"
  "Same group ID, other tenant|engineer@other|$OTHER:$ENGINEERS"
)
# action label | kubectl auth can-i arguments
actions=(
  "list pods in customer-a|list pods -n customer-a"
  "list pods in customer-a-web|list pods -n customer-a-web"
  "create deployments in customer-a-web|create deployments.apps -n customer-a-web"
  "get secrets in customer-a|get secrets -n customer-a"
  "exec into pods in customer-a|create pods --subresource=exec -n customer-a"
  "create rolebindings in customer-a|create rolebindings.rbac.authorization.k8s.io -n customer-a"
  "list pods in customer-b (not delegated)|list pods -n customer-b"
  "delete its assignment contoso-msp|delete registrationassignments.managedservices.kubelighthouse.io/contoso-msp -n customer-a"
)

say "Effective access (kubectl auth can-i --as … --as-group …, answered by the API server's RBAC authorizer)"
printf '%-42s' "action"
for id in "${identities[@]}"; do printf '| %-36s' "${id%%|*}"; done
printf '\n'
for action in "${actions[@]}"; do
  label=${action%%|*}
  read -r -a args <<<"${action#*|}"
  printf '%-42s' "$label"
  for id in "${identities[@]}"; do
    rest=${id#*|}
    user=${rest%%|*}
    group=${rest#*|}
    flags=(--as "$user")
    [[ -n $group ]] && flags+=(--as-group "$group")
    answer=$(kubectl auth can-i "${args[@]}" "${flags[@]}" 2>/dev/null || true)
    printf '| %-36s' "${answer:-no}"
  done
  printf '\n'
done

say "Done"
echo "The control plane and controller keep running: export KUBECONFIG=$KUBECONFIG"
echo "Try: kubectl -n customer-a delete regassign contoso-msp   (access is revoked at once)"
echo "Stop everything: hack/demo.sh down"
