#!/usr/bin/env python3
"""Renders every kustomize overlay under deploy/overlays with `kubectl kustomize` and checks the
output: it parses, every object names a kind the target cluster knows (built-in kinds, the
agent-sandbox CRDs, and in production the Prometheus Operator's), every workload's image is one
the project builds, probes hit /healthz and /readyz, the alert rules pass `promtool check rules`,
and the Grafana dashboard has the panels the operator needs."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = sys.argv[1]
BUILTIN = {
    ("v1", "Namespace"), ("v1", "ServiceAccount"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"),
    ("apps/v1", "Deployment"), ("batch/v1", "Job"), ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"), ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
}
AGENT_SANDBOX = {("extensions.agents.x-k8s.io/v1beta1", "SandboxTemplate"),
                 ("extensions.agents.x-k8s.io/v1beta1", "SandboxWarmPool")}
OPERATOR = {("monitoring.coreos.com/v1", "PodMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
KNOWN = {"kind": BUILTIN | AGENT_SANDBOX, "production": BUILTIN | AGENT_SANDBOX | OPERATOR}
failures = []


def fail(msg):
    failures.append(msg)


def render(overlay):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "deploy/overlays", overlay)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"{overlay}: kubectl kustomize failed: {out.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(out.stdout) if d]


overlays = sorted(os.listdir(os.path.join(ROOT, "deploy/overlays")))
if set(overlays) != set(KNOWN):
    fail(f"overlays are {overlays}; this check knows {sorted(KNOWN)}")
for overlay in overlays:
    docs = render(overlay)
    if not docs:
        fail(f"{overlay}: rendered nothing")
        continue
    kinds = {(d.get("apiVersion"), d.get("kind")) for d in docs}
    for api, kind in sorted(kinds - KNOWN.get(overlay, set())):
        fail(f"{overlay}: {api} {kind} is not a kind this cluster knows")
    for d in docs:
        meta = d.get("metadata", {})
        if d["kind"] != "Namespace" and meta.get("namespace") != "paddock":
            fail(f"{overlay}: {d['kind']} {meta.get('name')} is not in namespace paddock")
        if d["kind"] == "Deployment":
            c = d["spec"]["template"]["spec"]["containers"][0]
            if meta["name"] in ("paddock-web", "paddock-worker", "paddock-egress"):
                if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                    fail(f"{overlay}: {meta['name']} has no readiness probe on /readyz")
                if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                    fail(f"{overlay}: {meta['name']} has no liveness probe on /healthz")
        if d["kind"] == "Role":
            verbs = {(r["apiGroups"][0], res): set(r["verbs"]) for r in d["rules"] for res in r["resources"]}
            if "*" in str(verbs):
                fail(f"{overlay}: Role {meta['name']} uses a wildcard")
        if d["kind"] == "SandboxWarmPool":
            names = {x["metadata"]["name"] for x in docs if x["kind"] == "SandboxTemplate"}
            if d["spec"]["sandboxTemplateRef"]["name"] not in names:
                fail(f"{overlay}: SandboxWarmPool {meta['name']} names a template that is not deployed")
        if d["kind"] == "PrometheusRule":
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
                yaml.safe_dump({"groups": d["spec"]["groups"]}, f)
            out = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
            os.unlink(f.name)
            if out.returncode != 0:
                fail(f"{overlay}: promtool check rules: {out.stdout}{out.stderr}")
    # Sandboxes go out through the egress proxy's pods only: no DNS, no other peer.
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    sandbox_out = [d for d in policies.values() if "Egress" in d["spec"].get("policyTypes", []) and
                   d["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "paddock-sandbox"]
    if not sandbox_out:
        fail(f"{overlay}: no egress policy for the sandbox pods")
    for d in sandbox_out:
        for rule in d["spec"].get("egress", []):
            peers = rule.get("to", [])
            if not peers or any(p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                                != "paddock-egress" for p in peers):
                fail(f"{overlay}: NetworkPolicy {d['metadata']['name']} lets sandboxes reach more than the egress proxy")
    if "paddock-egress" not in {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}:
        fail(f"{overlay}: no Service paddock-egress for the sandboxes' proxy")
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    if overlay == "kind" and "paddock-postgres" not in secrets:
        fail("kind: no Secret paddock-postgres for the Deployments")
    print(f"{overlay}: {len(docs)} objects, kinds: {', '.join(sorted(k for _, k in kinds))}")

# Components: each renders on top of base (through an overlay made beside them, since kustomize
# takes no absolute paths), and what it grants is named, not wildcarded.
for component in sorted(os.listdir(os.path.join(ROOT, "deploy/components"))):
    scratch = tempfile.mkdtemp(prefix=".check-", dir=os.path.join(ROOT, "deploy"))
    try:
        with open(os.path.join(scratch, "kustomization.yaml"), "w") as f:
            f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                    f"resources: [../base]\ncomponents: [../components/{component}]\n")
        out = subprocess.run(["kubectl", "kustomize", scratch], capture_output=True, text=True)
    finally:
        shutil.rmtree(scratch)
    if out.returncode != 0:
        fail(f"component {component}: kubectl kustomize failed: {out.stderr.strip()}")
        continue
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    extra = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for d in extra:
        if "*" in json.dumps(d.get("rules", [])):
            fail(f"component {component}: {d['kind']} {d['metadata']['name']} uses a wildcard")
        if d["kind"] == "ClusterRoleBinding":
            for subject in d["subjects"]:
                if subject.get("namespace") != "paddock":
                    fail(f"component {component}: binding {d['metadata']['name']} names a subject outside paddock")
    if component == "namespace-per-team":
        rules = {(r["apiGroups"][0], res): set(r["verbs"]) for d in extra if d["kind"] == "ClusterRole"
                 for r in d["rules"] for res in r["resources"]}
        # What sandbox.k8s calls on a team's namespace: GET, list, POST and PUT of its policies.
        if rules.get(("networking.k8s.io", "networkpolicies")) != {"get", "list", "create", "update"}:
            fail(f"component {component}: networkpolicies verbs are {rules.get(('networking.k8s.io', 'networkpolicies'))}")
    print(f"component {component}: {len(docs)} objects, {len(extra)} cluster-wide")

dash = json.load(open(os.path.join(ROOT, "deploy/base/grafana/paddock.json")))
titles = " | ".join(p["title"] for p in dash["panels"])
for want in ["Sessions by status", "Runs by outcome", "provision latency", "Warm-pool hit rate", "API latency",
             "API errors"]:
    if want not in titles:
        fail(f"the Grafana dashboard has no panel '{want}'")

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
