#!/usr/bin/env bash
# The quickstart demo: a real control plane, the CRDs and role catalog, the controller, the
# example delegation of examples/quickstart/, and the effective access it grants: real
# requests made by managing-tenant users signed in with tokens of their own tenant's issuer.
# It ends with "My customers" as the Contoso engineer sees it: the views API through the
# aggregation layer, and `kubectl lighthouse customers`.
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
  # The views' APIService first: with its server gone it would fail discovery.
  KUBECONFIG=$STATE_DIR/kubeconfig kubectl delete apiservice v1alpha1.view.kubelighthouse.io \
    --ignore-not-found >/dev/null 2>&1 || true
  stop_controller
  hack/control-plane.sh down
  exit 0
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Local control plane (etcd + kube-apiserver with RBAC + kube-controller-manager)"
hack/control-plane.sh up
export KUBECONFIG=$STATE_DIR/kubeconfig

say "Building the controller and the kubectl plugin"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
cargo build --quiet -p kube-lighthouse --bin kube-lighthouse -p kubectl-lighthouse --bin kubectl-lighthouse

say "Installing the CRDs and the role catalog"
kubectl apply --server-side --force-conflicts -f crds/ -f charts/kube-lighthouse/files/catalog.yaml \
  -f charts/kube-lighthouse/files/guardrail-policy.yaml -f charts/kube-lighthouse/files/tenancy-labels-policy.yaml
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null

# The views API (kubectl get customers): the controller's TLS server, registered with the
# aggregation layer. No Service network here: an ExternalName Service for localhost, and a
# serving certificate valid for the name the aggregator checks, <service>.<namespace>.svc.
VIEWS_NS=kube-lighthouse-demo
VIEWS_SVC=kube-lighthouse-views
VIEWS_DIR=$STATE_DIR/views
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
VIEWS_PORT=$(free_port)
if [[ ! -f $VIEWS_DIR/tls.crt ]]; then
  mkdir -p "$VIEWS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=kube-lighthouse-views-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    -keyout "$VIEWS_DIR/ca.key" -out "$VIEWS_DIR/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$VIEWS_SVC.$VIEWS_NS.svc" \
    -keyout "$VIEWS_DIR/tls.key" -out "$VIEWS_DIR/tls.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n' \
    "$VIEWS_SVC.$VIEWS_NS.svc" >"$VIEWS_DIR/tls.ext"
  openssl x509 -req -days 365 -in "$VIEWS_DIR/tls.csr" -CA "$VIEWS_DIR/ca.crt" -CAkey "$VIEWS_DIR/ca.key" \
    -CAcreateserial -extfile "$VIEWS_DIR/tls.ext" -out "$VIEWS_DIR/tls.crt" 2>/dev/null
fi

say "Starting the controller (log: $STATE_DIR/logs/controller.log)"
stop_controller
mkdir -p "$STATE_DIR/logs"
# Free ports for metrics and health too: 8080 and 8081, the defaults, are often taken (another
# demo, another program), and the controller refuses to start on a taken port.
./target/debug/kube-lighthouse --webhook-port "$VIEWS_PORT" --metrics-port "$(free_port)" --health-port "$(free_port)" \
  --webhook-cert "$VIEWS_DIR/tls.crt" --webhook-key "$VIEWS_DIR/tls.key" >"$STATE_DIR/logs/controller.log" 2>&1 &
echo $! >"$PID_FILE"

say "Registering the views API (APIService v1alpha1.view.kubelighthouse.io)"
kubectl apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $VIEWS_NS}
---
apiVersion: v1
kind: Service
metadata: {name: $VIEWS_SVC, namespace: $VIEWS_NS}
spec: {type: ExternalName, externalName: localhost}
---
# As the chart: everyone signed in may get and list the views, each answer filtered to them.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kube-lighthouse-views-reader}
rules:
- {apiGroups: [view.kubelighthouse.io], resources: [customers, delegations], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kube-lighthouse-views-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kube-lighthouse-views-reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:authenticated"}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.view.kubelighthouse.io}
spec:
  group: view.kubelighthouse.io
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 15
  service: {name: $VIEWS_SVC, namespace: $VIEWS_NS, port: $VIEWS_PORT}
  caBundle: $(base64 -w0 <"$VIEWS_DIR/ca.crt")
EOF
if ! kubectl wait --for=condition=Available --timeout=90s apiservice/v1alpha1.view.kubelighthouse.io; then
  kill -0 "$(cat "$PID_FILE")" 2>/dev/null || echo "the controller exited:" >&2
  tail -n 5 "$STATE_DIR/logs/controller.log" | cut -c1-600 >&2
  exit 1
fi

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
ENGINEERS=00000000-0000-0000-0000-0000000000a1
ENGINEER=00000000-0000-0000-0000-00000000e001
ON_CALL=00000000-0000-0000-0000-0000000000b2
ISSUER=./target/debug/kl-token-issuer
CONTOSO=$STATE_DIR/issuers/contoso     # the issuer of tenant fbcdd0f3… (Contoso, the MSP)
FABRIKAM=$STATE_DIR/issuers/fabrikam   # the issuer of tenant aaaaaaaa… (another managing tenant)

# Each identity signs in with a token of its own tenant's issuer (Entra-ID-shaped claims:
# tid, oid, groups, amr), exactly as `kubectl --token` would: no impersonation anywhere.
# identity label | issuer directory | oid | group (may be empty)
identities=(
  "Contoso engineer (group: Reader)|$CONTOSO|$ENGINEER|$ENGINEERS"
  "Contoso on-call (user: Contributor)|$CONTOSO|$ON_CALL|"
  "Same IDs, other tenant's token|$FABRIKAM|$ENGINEER|$ENGINEERS"
)
# action label | kubectl arguments of a real request (writes are server-side dry runs: the
# API server authorizes them exactly like real ones, and nothing is changed)
actions=(
  "list pods in customer-a|get pods -n customer-a"
  "list pods in customer-a-web|get pods -n customer-a-web"
  "create deployments in customer-a-web|create deployment demo --image=registry.k8s.io/pause:3.10 -n customer-a-web --dry-run=server"
  "get secrets in customer-a|get secrets -n customer-a"
  "exec into pods in customer-a|create --raw /api/v1/namespaces/customer-a/pods/web/exec?command=true -f /dev/null"
  "create rolebindings in customer-a|create rolebinding demo --clusterrole=view --user=someone -n customer-a --dry-run=server"
  "list pods in customer-b (not delegated)|get pods -n customer-b"
  "delete its assignment contoso-msp|delete registrationassignments contoso-msp -n customer-a --dry-run=server"
)

# The API server's answer to one request: allowed (2xx, or 404 for a pod that does not exist:
# authorization came first), forbidden (403) or unauthenticated (401).
verdict() {
  local out
  if out=$(kubectl --token "$1" "${@:2}" 2>&1 >/dev/null); then
    echo "yes (allowed)"
  elif grep -qi forbidden <<<"$out"; then
    echo "no (403 Forbidden)"
  elif grep -qi unauthorized <<<"$out"; then
    echo "no (401 Unauthorized)"
  elif grep -qi "notfound\|not found" <<<"$out"; then
    echo "yes (allowed; 404)"
  else
    echo "error: ${out:0:40}"
  fi
}

tokens=()
for id in "${identities[@]}"; do
  IFS='|' read -r _ dir oid group <<<"$id"
  flags=(token --dir "$dir" --oid "$oid" --amr pwd --amr mfa)
  [[ -n $group ]] && flags+=(--group "$group")
  tokens+=("$("$ISSUER" "${flags[@]}")")
done

say "Who the API server says each token is (kubectl auth whoami --token …)"
for i in "${!identities[@]}"; do
  printf '%-38s -> %s\n' "${identities[$i]%%|*}" \
    "$(kubectl --token "${tokens[$i]}" auth whoami -o jsonpath='{.status.userInfo.username} {.status.userInfo.groups}')"
done

say "Effective access: real requests, each made with that identity's own token"
printf '%-42s' "action"
for id in "${identities[@]}"; do printf '| %-36s' "${id%%|*}"; done
printf '\n'
for action in "${actions[@]}"; do
  label=${action%%|*}
  read -r -a args <<<"${action#*|}"
  printf '%-42s' "$label"
  for i in "${!identities[@]}"; do
    printf '| %-36s' "$(verdict "${tokens[$i]}" "${args[@]}")"
  done
  printf '\n'
done
printf '%-42s' "a token that expired an hour ago"
printf '| %-36s\n' "$(verdict "$("$ISSUER" token --dir "$CONTOSO" --oid "$ENGINEER" --group "$ENGINEERS" --expired)" get pods -n customer-a)"

say "My customers, as the Contoso engineer with their own token (the views API)"
kubectl --token "${tokens[0]}" get customers
echo
kubectl --token "${tokens[0]}" get delegations
echo
echo "The other tenant's engineer (the same object IDs, Fabrikam's token) sees none of them:"
kubectl --token "${tokens[2]}" get delegations
ENGINEER_KUBECONFIG=$STATE_DIR/contoso-engineer.kubeconfig
cp "$KUBECONFIG" "$ENGINEER_KUBECONFIG"
KUBECONFIG=$ENGINEER_KUBECONFIG kubectl config set-credentials admin --token="${tokens[0]}" >/dev/null
echo
echo "kubectl lighthouse customers   (the plugin, as the Contoso engineer)"
PATH=$PWD/target/debug:$PATH KUBECONFIG=$ENGINEER_KUBECONFIG kubectl lighthouse customers

say "Done"
echo "The control plane and controller keep running: export KUBECONFIG=$KUBECONFIG"
echo "Mint a token yourself: $ISSUER token --dir $CONTOSO --oid $ENGINEER --group $ENGINEERS"
echo "Try: kubectl -n customer-a delete regassign contoso-msp   (access is revoked at once)"
echo "As the Contoso engineer: KUBECONFIG=$ENGINEER_KUBECONFIG kubectl lighthouse delegations"
echo "Stop everything: KL_STATE_DIR=$STATE_DIR hack/demo.sh down"
