#!/usr/bin/env bash
# End to end on a real kind cluster (machines with docker; not run in CI, which has no cluster):
# brings the cluster up (kind-up.sh), then through the REST API creates an agent and a session,
# sends a message, waits for the answer, and checks the SandboxClaim behind the session is Ready
# and goes away with the session.
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/kind/kind-up.sh
export KUBECONFIG=${KIND_KUBECONFIG:-$HOME/.kube/paddock-kind}
kubectl -n paddock port-forward svc/paddock 13000:3000 >/tmp/paddock-e2e-forward.log 2>&1 &
forward=$!
trap 'kill $forward 2>/dev/null || true' EXIT
api=http://127.0.0.1:13000
for _ in $(seq 60); do curl -fsS "$api/readyz" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "$api/readyz"

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
key=$(kubectl -n paddock get secret paddock-admin -o jsonpath='{.data.PADDOCK_ADMIN_KEY}' | base64 -d)
auth="Authorization: Bearer $key"
# Without the key nothing is answered.
[ "$(curl -s -o /dev/null -w '%{http_code}' "$api/api/agents")" = 401 ]
agent=$(curl -fsS -X POST "$api/api/agents" -H "$auth" -H 'Content-Type: application/json' \
  -d '{"name":"e2e","harness":"shell"}' | json '["id"]')
session=$(curl -fsS -X POST "$api/api/sessions" -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"agent_id\":\"$agent\"}" | json '["id"]')
curl -fsS -X POST "$api/api/sessions/$session/messages" -H "$auth" -H 'Content-Type: application/json' \
  -d '{"content":"echo hello from kind > /workspace/hi.txt; cat /workspace/hi.txt"}' >/dev/null
for _ in $(seq 180); do
  reply=$(curl -fsS -H "$auth" "$api/api/sessions/$session/messages" | python3 -c \
    "import json,sys; m=json.load(sys.stdin)['messages']; print(m[-1]['content'] if m and m[-1]['role']=='assistant' else '')")
  [ -n "$reply" ] && break
  sleep 1
done
echo "reply: $reply"
grep -q "hello from kind" <<<"$reply"
claims=$(kubectl -n paddock get sandboxclaims -l "paddock.dev/session=$session" -o name)
[ -n "$claims" ] || { echo "e2e: no SandboxClaim for session $session" >&2; exit 1; }
kubectl -n paddock wait --for=condition=Ready $claims --timeout=60s
curl -fsS -H "$auth" -X DELETE "$api/api/sessions/$session" >/dev/null
for _ in $(seq 120); do
  [ -z "$(kubectl -n paddock get sandboxclaims -l "paddock.dev/session=$session" -o name)" ] && break
  sleep 1
done
[ -z "$(kubectl -n paddock get sandboxclaims -l "paddock.dev/session=$session" -o name)" ]
echo "e2e: ok"
