#!/usr/bin/env bash
# check-deploy.sh validates the deployment files (docker-compose.yml,
# deploy/compose.local.yml, deploy/Dockerfile, .dockerignore, deploy/k8s,
# deploy/rabbitmq, deploy/prometheus, deploy/grafana) statically, without a
# Docker engine or a Kubernetes cluster: syntax, the references between the
# files, and agreement with the binaries in build/ (run `make` first): their
# configuration table, the configurations they accept, the metrics they serve
# and the libraries they link. It prints one line per check and exits 1 if any
# failed. It installs docker-compose and python3-yaml with apt-get when they
# are missing; kubectl and promtool are used when present.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# need_packages installs the Debian packages named when they are missing,
# as root or through sudo (like scripts/deps.sh).
need_packages() {
  local p missing=()
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "check-deploy: missing packages ${missing[*]}; install them as root" >&2
      exit 1
    }
    as_root=(sudo)
  fi
  echo "check-deploy: installing ${missing[*]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}" >/dev/null
}

need_packages docker-compose python3-yaml
# The Dockerfile check asks apt-cache about packages: it needs package lists.
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then apt-get update -q >/dev/null; else sudo apt-get update -q >/dev/null; fi
fi
for bin in sluice-ingress sluice-worker sluice-backend; do
  [ -x "build/$bin" ] || { echo "check-deploy: build/$bin is missing; run make first" >&2; exit 1; }
done
# Debian's python3 has python3-yaml; another python3 first in PATH may not.
py=python3
/usr/bin/python3 -c 'import yaml' 2>/dev/null && py=/usr/bin/python3

tmp=$(mktemp -d /tmp/check-deploy.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Compose: the file must be valid for docker-compose, with and without the
# monitoring profile; the resolved form is what the cross-checks read.
if ! docker-compose -f docker-compose.yml config -q ||
  ! docker-compose -f docker-compose.yml --profile monitoring config >"$tmp/compose.yml"; then
  echo "FAIL docker-compose config rejects docker-compose.yml (see above)"
  exit 1
fi
echo "ok   docker-compose config accepts docker-compose.yml (default and monitoring profiles)"
if ! docker-compose -f docker-compose.yml -f deploy/compose.local.yml --profile monitoring config \
  >"$tmp/compose-local.yml"; then
  echo "FAIL docker-compose config rejects docker-compose.yml with deploy/compose.local.yml (see above)"
  exit 1
fi
echo "ok   docker-compose config accepts docker-compose.yml with deploy/compose.local.yml"

build/sluice-ingress --config-table >"$tmp/config-table.md"

"$py" - "$root" "$tmp" <<'PY'
"""The checks that read several files at once; see the top of check-deploy.sh."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import yaml

ROOT, TMP = sys.argv[1], sys.argv[2]
os.chdir(ROOT)
failures = []


def ok(msg):
    print("ok   " + msg)


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def check(cond, msg, detail=""):
    if cond:
        ok(msg)
    else:
        fail(msg + (": " + detail if detail else ""))
    return cond


# ---- YAML syntax and Kubernetes document shape --------------------------------
yaml_files = sorted(glob.glob("deploy/**/*.y*ml", recursive=True)) + ["docker-compose.yml"]
docs = {}
for f in yaml_files:
    try:
        with open(f) as fh:
            docs[f] = [d for d in yaml.safe_load_all(fh) if d is not None]
    except yaml.YAMLError as e:
        fail(f"{f} parses as YAML: {e}")
check(len(docs) == len(yaml_files), f"{len(yaml_files)} YAML files parse")

k8s = []  # (file, document)
for f in sorted(glob.glob("deploy/k8s/*.yaml")):
    if os.path.basename(f) == "kustomization.yaml":
        continue
    for d in docs.get(f, []):
        name = (d.get("metadata") or {}).get("name") if isinstance(d, dict) else None
        if isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and name:
            k8s.append((f, d))
        else:
            fail(f"{f}: a document lacks apiVersion, kind or metadata.name")
ok(f"{len(k8s)} Kubernetes documents have apiVersion, kind and metadata.name")


def objs(kind):
    return [d for _, d in k8s if d["kind"] == kind]


def one(kind, name):
    found = [d for d in objs(kind) if d["metadata"]["name"] == name]
    return found[0] if found else None


kust = docs.get("deploy/k8s/kustomization.yaml", [{}])[0]
listed = kust.get("resources", [])
missing = [r for r in listed if not os.path.exists(os.path.join("deploy/k8s", r))]
check(not missing, "kustomization.yaml lists only existing files", ", ".join(missing))
unlisted = sorted({os.path.basename(f) for f, _ in k8s} - set(listed))
check(unlisted == ["worker-hpa.yaml"], "every manifest but the HPA alternative is in kustomization.yaml",
      f"not listed: {unlisted}")
kubectl = shutil.which("kubectl")
if kubectl:
    r = subprocess.run([kubectl, "kustomize", "deploy/k8s"], capture_output=True, text=True, timeout=30)
    built = [d for d in yaml.safe_load_all(r.stdout) if d] if r.returncode == 0 else []
    check(r.returncode == 0 and built and all(d["metadata"].get("namespace") == "sluice"
                                              for d in built if d["kind"] != "Namespace"),
          f"kubectl kustomize deploy/k8s builds {len(built)} objects, all in namespace sluice", r.stderr.strip())
else:
    print("skip kubectl kustomize (kubectl not installed)")

# ---- Kubernetes references ---------------------------------------------------
cm = one("ConfigMap", "sluice-config") or {"data": {}}
secret = one("Secret", "sluice-secrets") or {}
secret_data = dict(secret.get("stringData") or {})
check({"SLUICE_AMQP_URL", "SLUICE_KEYS"} <= set(secret_data), "Secret sluice-secrets holds SLUICE_AMQP_URL and SLUICE_KEYS")
check(not {"SLUICE_AMQP_URL", "SLUICE_KEYS"} & set(cm["data"]), "ConfigMap sluice-config holds no credentials")
deployments = {d["metadata"]["name"]: d for d in objs("Deployment")}
dockerfile = open("deploy/Dockerfile").read()
uid = re.search(r"^USER\s+(\d+)", dockerfile, re.M)


def pod_labels(dep):
    return dep["spec"]["template"]["metadata"].get("labels", {})


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


for name, dep in deployments.items():
    spec = dep["spec"]["template"]["spec"]
    check(selects(dep["spec"]["selector"]["matchLabels"], pod_labels(dep)), f"Deployment {name}: selector matches its pods")
    sc = spec.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True and uid and str(sc.get("runAsUser")) == uid.group(1),
          f"Deployment {name}: runs as non-root uid {uid.group(1) if uid else '?'} (the Dockerfile's USER)")
    for c in spec["containers"]:
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        refs = [(e.get("configMapRef") or e.get("secretRef") or {}).get("name") for e in c.get("envFrom", [])]
        check(set(refs) <= {cm["metadata"].get("name"), secret.get("metadata", {}).get("name")} and refs,
              f"Deployment {name}: envFrom names the ConfigMap and Secret", str(refs))
        probes = {k: c.get(k, {}).get("httpGet", {}) for k in ("readinessProbe", "livenessProbe")}
        check(probes["readinessProbe"].get("path") == "/readyz" and probes["livenessProbe"].get("path") == "/healthz"
              and all(p.get("port") in ports or p.get("port") in ports.values() for p in probes.values()),
              f"Deployment {name}: readiness /readyz, liveness /healthz, on a declared port")
        req = c.get("resources", {}).get("requests", {})
        check("cpu" in req and "memory" in req and "memory" in c.get("resources", {}).get("limits", {}),
              f"Deployment {name}: CPU and memory requests, memory limit")
        check(c["image"].split(":")[0] in [i["name"] for i in kust.get("images", [])],
              f"Deployment {name}: image is set by kustomization.yaml images")
        check(c.get("command", [""])[0] in ("sluice-ingress", "sluice-worker"), f"Deployment {name}: runs a sluice daemon")
for kind in ("Service", "PodDisruptionBudget"):
    for o in objs(kind):
        sel = o["spec"]["selector"]
        sel = sel.get("matchLabels", sel)
        targets = [n for n, d in deployments.items() if selects(sel, pod_labels(d))]
        check(len(targets) == 1, f"{kind} {o['metadata']['name']} selects the pods of one Deployment", str(targets))
        if kind == "Service" and targets:
            names = {p.get("name") for c in deployments[targets[0]]["spec"]["template"]["spec"]["containers"]
                     for p in c.get("ports", [])}
            check(all(p["targetPort"] in names for p in o["spec"]["ports"]),
                  f"Service {o['metadata']['name']}: targetPort names a container port")
ns = cm["data"].get("SLUICE_NAMESPACE", "sluice")
for o in objs("ScaledObject") + objs("HorizontalPodAutoscaler"):
    check(o["spec"]["scaleTargetRef"]["name"] in deployments,
          f"{o['kind']} {o['metadata']['name']} scales an existing Deployment")
keda_queries = []
for o in objs("ScaledObject"):
    for t in o["spec"]["triggers"]:
        check(t["type"] == "prometheus" and t.get("metricType") == "Value"
              and t["metadata"].get("serverAddress") and t["metadata"].get("threshold"),
              f"KEDA trigger of {o['metadata']['name']}: prometheus, metricType Value, a server and a threshold")
        keda_queries.append(t["metadata"].get("query", ""))
for o in objs("HorizontalPodAutoscaler"):
    ext = [m["external"]["metric"]["name"] for m in o["spec"].get("metrics", []) if m["type"] == "External"]
    keda_queries += ext

# ---- Compose structure -------------------------------------------------------
svc = yaml.safe_load(open(os.path.join(TMP, "compose.yml")))["services"]
check({"rabbitmq", "ingress", "worker", "backend"} <= set(svc), "compose has rabbitmq, ingress, worker and backend")
rmq = svc.get("rabbitmq", {})


def volumes(service):
    """(type, source, target) of each volume, from the long or the short syntax."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            out.append((v.get("type"), v.get("source", ""), v.get("target", "")))
        else:
            src, dst = (v.split(":") + [""])[:2]
            out.append(("bind" if src.startswith(("/", ".")) else "volume", src, dst))
    return out


check("rabbitmq-diagnostics" in rmq.get("healthcheck", {}).get("test", []) and
      any(t == "volume" for t, _, _ in volumes(rmq)),
      "compose rabbitmq: rabbitmq-diagnostics healthcheck and a named volume")
for s in ("ingress", "worker"):
    dep = svc.get(s, {}).get("depends_on", {})
    check(dep.get("rabbitmq", {}).get("condition") == "service_healthy", f"compose {s} waits for a healthy rabbitmq")
w = svc.get("worker", {})
check("container_name" not in w and not w.get("ports") and w.get("deploy", {}).get("replicas", 0) >= 2,
      "compose worker scales: no container_name, no published port, deploy.replicas >= 2")


def port(p):
    """(host address, published port, container port) of a long or short port entry."""
    if isinstance(p, dict):
        return p.get("host_ip", ""), str(p.get("published", "")), str(p.get("target", ""))
    parts = str(p).split("/")[0].split(":")
    return ([""] * (3 - len(parts)) + parts)[-3:] if len(parts) < 3 else (":".join(parts[:-2]), parts[-2], parts[-1])


check(any(port(p)[1:] == ("8080", "8080") for p in svc.get("ingress", {}).get("ports", [])),
      "compose ingress is published on 8080")
published = [(n, port(p)) for n, s in svc.items() for p in s.get("ports", [])]
check(published and all(p[0] == "127.0.0.1" for _, p in published),
      f"compose publishes its {len(published)} ports on 127.0.0.1 by default",
      str([n for n, p in published if p[0] != "127.0.0.1"]))
# The override for machines without a registry may change nothing but the
# images that would be pulled, each built FROM debian:12 by a Dockerfile here.
local = yaml.safe_load(open(os.path.join(TMP, "compose-local.yml")))["services"]
swapped = {n for n in local if local[n] != svc.get(n)}


def without_image(service):
    """The service but its image; merging files may reorder volumes and ports."""
    return {k: sorted(map(str, v)) if k in ("volumes", "ports") else v
            for k, v in service.items() if k not in ("image", "build")}


check(set(local) == set(svc) and swapped <= {"rabbitmq", "prometheus", "grafana"} and
      all(without_image(local[n]) == without_image(svc[n]) for n in swapped),
      "deploy/compose.local.yml changes only the image of rabbitmq and of the monitoring services",
      "changed beyond that: " + str(sorted(n for n in swapped if n not in ("rabbitmq", "prometheus", "grafana") or
                                           without_image(local[n]) != without_image(svc[n]))))
for n in sorted(swapped):
    ctx = (local[n].get("build") or {}).get("context", "")
    df = os.path.join(ctx, "Dockerfile")
    check(os.path.exists(df) and re.search(r"^FROM debian:12\s*$", open(df).read(), re.M) and
          local[n].get("image", "").endswith(":local"),
          f"deploy/compose.local.yml builds {n} FROM debian:12 ({os.path.relpath(df, ROOT) if ctx else '?'})")
env = {s: {k: str(v) for k, v in (svc[s].get("environment") or {}).items()} for s in ("ingress", "worker")}
check(env["ingress"].get("SLUICE_LISTEN", "").startswith("0.0.0.0:") and
      env["worker"].get("SLUICE_METRICS_LISTEN", "").startswith("0.0.0.0:") and
      "0.0.0.0:18080" in svc["backend"].get("command", []),
      "compose daemons listen on 0.0.0.0")
for s, key in (("ingress", "SLUICE_LISTEN"), ("worker", "SLUICE_METRICS_LISTEN")):
    port = env[s].get(key, ":").rsplit(":", 1)[1]
    check(f"127.0.0.1:{port}/" in " ".join(svc[s].get("healthcheck", {}).get("test", [])),
          f"compose {s} healthcheck uses the port of {key}")
mounts = [src for s in svc.values() for t, src, _ in volumes(s) if t == "bind"]
check(mounts and all(os.path.exists(m) for m in mounts), f"compose bind mounts exist ({len(mounts)})")
prov = docs.get("deploy/grafana/provisioning/dashboards/sluice.yml", [{}])[0]
dash_dir = prov.get("providers", [{}])[0].get("options", {}).get("path", "?")
check(any(dst.startswith(dash_dir + "/") for _, _, dst in volumes(svc.get("grafana", {}))),
      "grafana provisioning path matches where compose mounts the dashboard")

# ---- SLUICE_* variables against the binaries' configuration table --------------
table = set(re.findall(r"`(SLUICE_[A-Z0-9_]+)`", open(os.path.join(TMP, "config-table.md")).read()))
check({"SLUICE_KEYS", "SLUICE_ROUTES"} <= table and len(table) > 10, f"--config-table lists {len(table)} variables")
used = {}
for s in ("ingress", "worker"):
    for k in env[s]:
        used.setdefault(k, set()).add("docker-compose.yml")
for f, d in k8s:
    for k in list((d.get("data") or {})) + list((d.get("stringData") or {})):
        used.setdefault(k, set()).add(f)
    for c in ((d.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers", []):
        for e in c.get("env", []):
            used.setdefault(e["name"], set()).add(f)
for k in re.findall(r"\b(SLUICE_[A-Z0-9_]+)=", dockerfile):
    used.setdefault(k, set()).add("deploy/Dockerfile")
unknown = {k: sorted(v) for k, v in used.items() if k.startswith("SLUICE_") and k not in table}
check(not unknown, f"{len(used)} SLUICE_* variables used are all in the configuration table", str(unknown))


# ---- The binaries accept each deployment's configuration and serve /metrics ----
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable(url):
    """url with its host and port replaced by a closed local port, so the daemon
    starts without a broker (nothing resolves a name that only exists in a cluster)."""
    u = urllib.parse.urlsplit(url)
    cred = u.netloc.rsplit("@", 1)[0] + "@" if "@" in u.netloc else ""
    return urllib.parse.urlunsplit((u.scheme, cred + "127.0.0.1:1", u.path, u.query, u.fragment))


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except Exception:
        return None, ""


k8s_env = {**{k: str(v) for k, v in cm["data"].items()}, **{k: str(v) for k, v in secret_data.items()}}
runs = []
for label, base in (("docker-compose.yml", env), ("deploy/k8s", {"ingress": k8s_env, "worker": k8s_env})):
    for daemon, key in (("ingress", "SLUICE_LISTEN"), ("worker", "SLUICE_METRICS_LISTEN")):
        e = dict(base[daemon])
        url = urllib.parse.urlsplit(e.get("SLUICE_AMQP_URL", ""))
        check(url.scheme in ("amqp", "amqps") and url.hostname and url.port, f"{label}: SLUICE_AMQP_URL is amqp://user:pass@host:port/")
        port = free_port()
        e.update({key: f"127.0.0.1:{port}", "SLUICE_AMQP_URL": unreachable(e.get("SLUICE_AMQP_URL", "amqp://x")),
                  "PATH": "/usr/bin:/bin"})
        p = subprocess.Popen([os.path.join(ROOT, "build", f"sluice-{daemon}")], env=e, cwd=TMP, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        runs.append((label, daemon, port, p))
metric_names = set()
deadline = time.monotonic() + 10
for label, daemon, port, p in runs:
    status = None
    while status != 200 and p.poll() is None and time.monotonic() < deadline:
        status, _ = get(port, "/healthz")
        if status != 200:
            time.sleep(0.05)
    text = get(port, "/metrics")[1] if status == 200 else ""
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)", text, re.M):
        metric_names |= {name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    lines = [ln for ln in err.splitlines() if "sluice-" in ln][-1:]
    check(status == 200 and "# TYPE" in text, f"sluice-{daemon} starts with the configuration of {label} and serves /metrics",
          "; ".join(lines) or f"exit status {p.returncode}")

# ---- Dashboard and alerts use only metrics the binaries serve ----------------
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan", "le"}


def metrics_in(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or m.group(0).lower() in PROMQL_WORDS or m.group(0).startswith("$"):
            continue
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] in ".$"):
            continue
        names.add(m.group(0))
    return names


def check_exprs(what, exprs):
    bad = {n for x in exprs for n in metrics_in(x)} - metric_names
    empty = [x for x in exprs if not metrics_in(x)]
    check(exprs and not bad and not empty, f"{what}: {len(exprs)} queries use only metrics the binaries serve",
          f"unknown: {sorted(bad)} {empty[:1]}")


try:
    dash = json.load(open("deploy/grafana/sluice-dashboard.json"))
    ok("deploy/grafana/sluice-dashboard.json is valid JSON")
except ValueError as e:
    dash = {"panels": []}
    fail(f"deploy/grafana/sluice-dashboard.json is valid JSON: {e}")
targets = [t for p in dash.get("panels", []) for t in p.get("targets", [])]
check_exprs("dashboard", [t["expr"] for t in targets])
ds_vars = [v["name"] for v in dash.get("templating", {}).get("list", []) if v.get("type") == "datasource"]
check(all(t.get("datasource", {}).get("uid") in ["${%s}" % v for v in ds_vars] for t in targets),
      "dashboard queries use its data source variable")
rules = [r for g in docs.get("deploy/prometheus/alerts.yml", [{}])[0].get("groups", []) for r in g.get("rules", [])]
check(all(r.get("alert") and r.get("labels", {}).get("severity") and r.get("annotations", {}).get("summary")
          for r in rules), f"{len(rules)} alerts have a name, a severity and a summary")
check_exprs("alerts.yml", [r["expr"] for r in rules])
series = [s["series"] for t in docs.get("deploy/prometheus/alerts.test.yml", [{}])[0].get("tests", [])
          for s in t.get("input_series", [])]
check_exprs("alerts.test.yml input series", series)
check_exprs("autoscaling (KEDA query, HPA external metric)", keda_queries)
promtool = os.environ.get("PROMTOOL") or shutil.which("promtool")
if promtool:
    for args in (["check", "rules", "deploy/prometheus/alerts.yml"], ["test", "rules", "deploy/prometheus/alerts.test.yml"],
                 ["check", "config", "--syntax-only", "deploy/prometheus/prometheus.yml"]):
        r = subprocess.run([promtool] + args, capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "promtool " + " ".join(args), (r.stdout + r.stderr).strip()[-500:])
else:
    print("skip promtool checks (promtool not installed; set PROMTOOL or install Debian's prometheus)")

# ---- Dockerfile and .dockerignore --------------------------------------------
stages = re.split(r"^FROM\s+", dockerfile, flags=re.M)[1:]
check(len(stages) == 2 and stages[0].startswith("debian:${DEBIAN_RELEASE} AS build")
      and stages[1].startswith("debian:${DEBIAN_RELEASE}-slim") and "ARG DEBIAN_RELEASE=12" in dockerfile,
      "Dockerfile: debian:12 build stage, debian:12-slim runtime stage")


def apt_packages(stage):
    m = re.search(r"apt-get install[^\n]*?--no-install-recommends((?:[^&]|\\\n)*)&&", stage)
    return m.group(1).replace("\\", " ").split() if m else []


build_pkgs, run_pkgs = (apt_packages(s) for s in stages) if len(stages) == 2 else ([], [])
r = subprocess.run(["apt-cache", "show", "--no-all-versions"] + build_pkgs + run_pkgs,
                   capture_output=True, text=True, timeout=30)
found = set(re.findall(r"^Package: (\S+)", r.stdout, re.M))
check(build_pkgs and run_pkgs and found >= set(build_pkgs + run_pkgs),
      f"Dockerfile: {len(build_pkgs)} build and {len(run_pkgs)} runtime packages exist in apt-cache",
      f"missing: {sorted(set(build_pkgs + run_pkgs) - found)}")
needed = set()
for b in glob.glob("build/sluice*"):
    if os.path.isfile(b):
        out = subprocess.run(["objdump", "-p", b], capture_output=True, text=True).stdout
        needed |= set(re.findall(r"NEEDED\s+(\S+)", out))
owners = {}
for lib in sorted(needed):
    out = subprocess.run(["dpkg", "-S", "*/" + lib], capture_output=True, text=True).stdout
    # A library may be in several packages (libc6-i386 has a /lib32/libm.so.6
    # too): the one of this architecture's library directory is the owner.
    lines = [ln for ln in out.splitlines() if "-linux-gnu/" in ln] or out.splitlines()
    owners[lib] = lines[0].split(":")[0] if lines else "?"
unmet = {lib: pkg for lib, pkg in owners.items() if pkg not in run_pkgs and pkg != "libc6"}
check(needed and not unmet, f"Dockerfile runtime packages provide every library the binaries link ({len(needed)})",
      str(unmet))
check(set(run_pkgs) <= set(owners.values()) | {"ca-certificates", "curl"},
      "Dockerfile runtime stage installs only those libraries, ca-certificates and curl", str(run_pkgs))
check(uid and uid.group(1) != "0" and "HEALTHCHECK" in dockerfile and re.search(r'^CMD \["sluice-ingress"\]', dockerfile, re.M),
      "Dockerfile: numeric non-root USER, HEALTHCHECK, CMD sluice-ingress")
ignored = {ln.strip().strip("/") for ln in open(".dockerignore") if ln.strip() and not ln.startswith("#")}
needed_ctx = {"Makefile", "common", "ingress", "worker", "tests"}
check({".git", "build", ".run"} <= ignored and not needed_ctx & ignored,
      ".dockerignore drops .git, build and .run and keeps what make all needs")

# ---- RabbitMQ files ------------------------------------------------------------
plugins = open("deploy/rabbitmq/enabled_plugins").read().strip()
check(re.fullmatch(r"\[\s*[a-z_]+(\s*,\s*[a-z_]+)*\s*\]\.", plugins) is not None, "enabled_plugins is an Erlang list term")
conf = [ln for ln in open("deploy/rabbitmq/rabbitmq.conf") if ln.strip() and not ln.lstrip().startswith("#")]
check(all(re.fullmatch(r"[a-z0-9_.]+ = \S.*\n?", ln) for ln in conf), f"rabbitmq.conf: {len(conf)} key = value lines")

if failures:
    print(f"check-deploy: {len(failures)} check(s) failed")
    sys.exit(1)
print("check-deploy: all checks passed")
PY
