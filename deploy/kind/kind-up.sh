#!/usr/bin/env bash
# A local Kubernetes cluster for Paddock, idempotent: creates the kind cluster (unless it
# exists), installs the agent-sandbox controller and CRDs from its release manifest, builds the
# control-plane and sandbox images and loads them into the cluster, and writes the cluster's
# kubeconfig, and runs Paddock in the cluster (deploy/overlays/kind: web, worker, Postgres, the
# migration Job, a warm pool of one). Last it prints the [sandbox] section for a Paddock on this
# machine (config/kind.toml: sandbox.kind, which needs no route to the pod network). Needs docker (or podman), kind and kubectl, and the
# network (images, the agent-sandbox release).
#
#   deploy/kind/kind-up.sh            # cluster "paddock", agent-sandbox v0.5.6
#   KIND_CLUSTER=dev AGENT_SANDBOX_VERSION=v0.5.6 deploy/kind/kind-up.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

cluster=${KIND_CLUSTER:-paddock}
version=${AGENT_SANDBOX_VERSION:-v0.5.6}
manifest=${AGENT_SANDBOX_MANIFEST:-https://github.com/kubernetes-sigs/agent-sandbox/releases/download/${version}/sandbox-with-extensions.yaml}
kubeconfig=${KIND_KUBECONFIG:-$HOME/.kube/paddock-kind}
engine=${CONTAINER_ENGINE:-docker}

for tool in kind kubectl "$engine"; do
  command -v "$tool" >/dev/null || { echo "kind-up: '$tool' is not installed" >&2; exit 1; }
done

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  echo "kind-up: cluster '$cluster' exists"
else
  kind create cluster --name "$cluster" --config deploy/kind/kind-config.yaml --wait 120s
fi
mkdir -p "$(dirname "$kubeconfig")"
kind get kubeconfig --name "$cluster" >"$kubeconfig"
export KUBECONFIG=$kubeconfig

echo "kind-up: agent-sandbox controller $version"
kubectl apply --server-side -f "$manifest"
kubectl -n agent-sandbox-system rollout status deployment/agent-sandbox-controller --timeout=180s
for crd in sandboxes.agents.x-k8s.io sandboxclaims.extensions.agents.x-k8s.io \
           sandboxtemplates.extensions.agents.x-k8s.io sandboxwarmpools.extensions.agents.x-k8s.io; do
  kubectl wait --for=condition=Established "crd/$crd" --timeout=60s
done

echo "kind-up: building images"
"$engine" build -f deploy/docker/control-plane.Dockerfile -t paddock:dev .
"$engine" build -f deploy/docker/sandbox.Dockerfile -t paddock-sandbox:dev .
kind load docker-image --name "$cluster" paddock:dev paddock-sandbox:dev

# The keys the workers and the egress proxy share (the vault's CA, its placeholder key, the
# egress pass key), made once by the image's own paddock.
if ! kubectl -n paddock get secret paddock-vault >/dev/null 2>&1; then
  keys=$(mktemp -d)
  "$engine" run --rm -v "$keys:/keys" --user "$(id -u)" paddock:dev admin vault-keys --dir /keys/vault
  kubectl create namespace paddock --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n paddock create secret generic paddock-vault --from-file="$keys/vault"
  rm -rf "$keys"
fi

# Paddock (the pool token Secret is made by the first Paddock process that needs it).
kubectl apply -k deploy/overlays/kind
kubectl -n paddock wait --for=condition=complete job/paddock-migrate --timeout=300s
kubectl -n paddock rollout status deployment/paddock-web --timeout=300s
kubectl -n paddock rollout status deployment/paddock-worker --timeout=300s
kubectl -n paddock rollout status deployment/paddock-egress --timeout=300s
# A Paddock on this machine reaches the sandboxes through the API server (sandbox.kind's
# runtime_access = "apiserver"): no route to the pod network.
echo "kind-up: ready. KUBECONFIG=$kubeconfig"
echo "  in the cluster:  kubectl -n paddock port-forward svc/paddock 3000:3000"
echo "  on this machine: paddock serve --config config/kind.toml, whose [sandbox] section is:"
cat <<CONFIG
    [sandbox]
    type = "kind"
    [sandbox.config]
    cluster = "$cluster"
    namespace = "paddock"
    mode = "claim"
CONFIG
