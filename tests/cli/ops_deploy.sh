#!/usr/bin/env bash
# The deployment files, checked offline: hadolint on deploy/Dockerfile; both kustomize
# overlays built and validated against the Kubernetes 1.33 schemas (kubernetes-validate
# --strict) plus the rules the schemas cannot see (non-root, read-only root filesystem,
# resources, probes, no committed Secret, GPU CronJob, HPA/PDB per role, TLS Ingress,
# network policies); the committed serve.conf starts a real `whatstyle serve`; the alert
# rules pass `promtool check rules` and their unit tests; the Grafana dashboards are sane
# JSON, match their generator, and every metric a dashboard or alert names is exported by
# the binary's /metrics (or comes from a named exporter).
# Usage: ops_deploy.sh path/to/whatstyle
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
for t in promtool kvalidate kustomize; do bash tools/setup-ops-tools.sh $t; done
cache=${WS_TOOLS_CACHE:-$HOME/.cache/whatstyle-tools}
venv=$cache/kvalidate-1.37.0
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
kbuild() { if command -v kubectl >/dev/null; then kubectl kustomize "$1"; else "$cache/bin/kustomize" build "$1"; fi; }

echo "== hadolint"
"$venv/bin/hadolint" --no-color --config deploy/.hadolint.yaml deploy/Dockerfile || fail hadolint

echo "== kubernetes manifests"
for o in local production; do
  kbuild "deploy/k8s/overlays/$o" > "$work/$o.yaml" || fail "kustomize build $o"
  "$venv/bin/kubernetes-validate" --quiet -k 1.33.0 --strict "$work/$o.yaml" || fail "schema of $o"
  "$venv/bin/python" - "$work/$o.yaml" "$o" <<'PY' || fail "rules of $o"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
overlay = sys.argv[2]
kinds = {}
for d in docs:
    kinds.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    assert d["kind"] != "Secret", "a Secret is committed"
    assert d["kind"] == "Namespace" or d["metadata"].get("namespace") == "whatstyle", d["metadata"]
def pod_spec(d):
    return d["spec"]["jobTemplate"]["spec"]["template"]["spec"] if d["kind"] == "CronJob" else d["spec"]["template"]["spec"]
workloads = list(kinds["Deployment"].values()) + list(kinds["CronJob"].values())
assert set(kinds["Deployment"]) == {"whatstyle-serve", "whatstyle-ai", "whatstyle-worker"}
for d in workloads:
    ps = pod_spec(d)
    sc = ps["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] == 10001 and sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert ps["automountServiceAccountToken"] is False
    mounts = set()
    for c in ps["containers"]:
        cs = c["securityContext"]
        assert cs["readOnlyRootFilesystem"] and not cs["allowPrivilegeEscalation"] and cs["capabilities"]["drop"] == ["ALL"]
        r = c["resources"]
        assert r["requests"]["cpu"] and r["requests"]["memory"] and r["limits"]["memory"], (d["metadata"]["name"], r)
        if d["kind"] == "Deployment":
            assert c["livenessProbe"] and c["readinessProbe"], d["metadata"]["name"]
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "whatstyle-secrets"
            else:
                assert "KEY" not in e["name"] and "SECRET" not in e["name"], e
        mounts |= {m["mountPath"] for m in c.get("volumeMounts", [])}
    assert "/tmp" in mounts and "/data" in mounts, "writable paths on a read-only root"
serve = pod_spec(kinds["Deployment"]["whatstyle-serve"])["containers"][0]
assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz" and serve["livenessProbe"]["httpGet"]["path"] == "/healthz"
ai = pod_spec(kinds["Deployment"]["whatstyle-ai"])["containers"][0]
assert ai["readinessProbe"]["grpc"]["port"] == 50051 and ai["args"][:2] == ["ai", "--listen"]
worker = pod_spec(kinds["Deployment"]["whatstyle-worker"])["containers"][0]
assert worker["args"] == ["worker", "--config", "/etc/whatstyle/worker.conf"]
gpu = kinds["CronJob"]["whatstyle-train-gpu"]
gps = pod_spec(gpu)
assert gps["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1" and gps["nodeSelector"]
assert gpu["spec"]["concurrencyPolicy"] == "Forbid"
hpa = kinds["HorizontalPodAutoscaler"]
assert {h["spec"]["scaleTargetRef"]["name"] for h in hpa.values()} == {"whatstyle-serve", "whatstyle-ai"}
for h in hpa.values():
    assert h["spec"]["metrics"][0]["resource"]["name"] == "cpu" and h["spec"]["minReplicas"] <= h["spec"]["maxReplicas"]
pdb_sel = [p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for p in kinds["PodDisruptionBudget"].values()]
assert sorted(pdb_sel) == ["ai", "serve", "worker"]
ing = kinds["Ingress"]["whatstyle"]
assert ing["spec"]["tls"][0]["secretName"] and "cert-manager.io/cluster-issuer" in ing["metadata"]["annotations"]
assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "whatstyle-serve"
assert ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == ("letsencrypt-prod" if overlay == "production" else "selfsigned")
np = kinds["NetworkPolicy"]
deny = np["whatstyle-default-deny"]["spec"]
assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny
ai_in = np["whatstyle-ai"]["spec"]["ingress"]
assert ai_in[0]["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "whatstyle", "app.kubernetes.io/component": "serve"}}}]
assert all(r["ports"][0]["port"] != 50051 for r in ai_in[1:]), "only the gateway reaches the AI port"
def ports(pol):
    return {p["port"] for r in np[pol]["spec"]["egress"] for p in r.get("ports", [])}
assert {5432, 6379, 9092} <= ports("whatstyle-serve")
assert not ({5432, 6379, 9092} & ports("whatstyle-ai")), "the AI reaches no database, cache or bus"
assert {5432, 9092} <= ports("whatstyle-training") and 6379 not in ports("whatstyle-training")
for name, pol in np.items():   # who may come in from outside the namespace
    for r in pol["spec"].get("ingress", []):
        for f in r["from"]:
            ns = f.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            assert ns in (None, "monitoring", "ingress-nginx"), (name, f)
            assert ns != "ingress-nginx" or name == "whatstyle-serve", "only the gateway is reachable from outside"
print("%s: %d objects ok" % (overlay, len(docs)))
PY
done

echo "== the committed serve.conf runs"
"$venv/bin/python" -c 'import sys,yaml;print(yaml.safe_load(open(sys.argv[1]))["data"]["serve.conf"])' \
  deploy/k8s/base/configmap.yaml > "$work/serve.conf"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
env -u WS_STORE_URL -u WS_CACHE_URL "$bin" serve --config "$work/serve.conf" --port "$port" --host 127.0.0.1 \
  --data "$work/data" --otlp-endpoint "http://127.0.0.1:9" > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/serve.log"; fail "serve.conf"; }
curl -sf "http://127.0.0.1:$port/metrics" > "$work/metrics"
grep -q '"config.training":false' "$work/serve.log" || fail "no_training from serve.conf"
kill -TERM $pid; wait $pid; pid=

echo "== prometheus rules"
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts_test.yml)
"$venv/bin/python" - deploy/prometheus/prometheus.yml <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
assert c["rule_files"] == ["alerts.yml"] and c["scrape_configs"][0]["job_name"] == "whatstyle"
keep = c["scrape_configs"][0]["relabel_configs"][0]
assert keep["action"] == "keep" and keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
PY

echo "== grafana dashboards and metric names"
mkdir "$work/gen" && python3 tools/make-dashboards.py "$work/gen"
for f in deploy/grafana/*.json; do cmp -s "$f" "$work/gen/$(basename "$f")" || fail "$f differs from tools/make-dashboards.py"; done
"$venv/bin/python" - "$work/metrics" deploy/grafana/*.json <<'PY'
import json, re, sys, yaml
exported = set()
for line in open(sys.argv[1]):
    if line.startswith("# TYPE "):
        name, kind = line.split()[2:4]
        exported |= {name} | ({name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else set())
external = {"pg_replication_lag_seconds": "postgres_exporter", "up": "Prometheus",
            "certmanager_certificate_expiration_timestamp_seconds": "cert-manager"}
funcs = {"sum", "rate", "by", "histogram_quantile", "clamp_min", "count", "max", "min", "time", "le", "and",
         "increase", "label_values", "pod", "role", "route", "version", "state", "code", "namespace", "name", "job"}
def names(expr):
    expr = re.sub(r'"[^"]*"', '""', expr)                       # label values
    expr = re.sub(r'\{[^}]*\}', '{}', expr)                     # label matchers
    expr = re.sub(r'\[[^\]]*\]', '[]', expr)                    # ranges
    expr = re.sub(r'\b(by|without)\s*\([^)]*\)', '', expr)      # grouping labels
    return {t for t in re.findall(r'[A-Za-z_:][A-Za-z0-9_:]*', expr) if t not in funcs and not re.fullmatch(r'e\d*', t)}
uids = set()
for path in sys.argv[2:]:
    d = json.load(open(path))
    assert d["uid"] not in uids and d["title"] and d["schemaVersion"] >= 36
    uids.add(d["uid"])
    assert [v["name"] for v in d["templating"]["list"]][:1] == ["datasource"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 5, path
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, (path, p["title"])
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"]
        for t in p["targets"]:
            got = names(t["expr"])
            assert got and got <= exported, (path, p["title"], got - exported)
    q = d["templating"]["list"][1]["query"]["query"]
    assert names(q) <= exported
rules = yaml.safe_load(open("deploy/prometheus/alerts.yml"))
n = 0
for g in rules["groups"]:
    for r in g["rules"]:
        got = {x for x in names(r["expr"]) if not x.startswith("whatstyle:")}
        unknown = got - exported - set(external)
        assert not unknown, (r.get("alert") or r.get("record"), unknown)
        n += 1
print("dashboards %d, rules %d: every metric is exported" % (len(uids), n))
PY
echo ok
