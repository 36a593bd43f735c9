#!/usr/bin/python3
"""deploy_k8s_manifests: structural checks of deploy/k8s without a cluster.

Parses kustomization.yaml and every manifest it lists (PyYAML), then checks
what `kubectl apply` would not catch until runtime: kinds and apiVersions,
names, selectors that match pod labels, Service target ports that exist,
volumes that reference an existing PVC / ConfigMap / Secret (manifests or the
kustomization's generators) and keys that exist in them, containers with an
image and a command; one client Job per host whose pod holds exactly one host
bundle Secret (ca.crt, client.crt, client.key, tokens.txt, client-ids), shared
with no other Job, and reads its ids and credentials from it; a server that
holds no client key and reads the hashed server-tokens.txt; and, when the
bundles exist under DIR/secrets, ids that cover the run config's clients once.

  check_k8s_manifests.py DIR            exit 0 if DIR passes, 1 with the errors
  check_k8s_manifests.py --self-test DIR  also checks that broken copies fail
"""
import copy
import os
import sys
import tomllib

try:
    import yaml
except ImportError:
    print("SKIP: PyYAML is not installed (Debian package python3-yaml)")
    sys.exit(77)

API_VERSIONS = {
    "Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
    "PersistentVolumeClaim": "v1", "Deployment": "apps/v1", "Job": "batch/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
REQUIRED_KINDS = ["Deployment", "Service", "PersistentVolumeClaim", "ConfigMap", "Job", "NetworkPolicy"]


def load(directory):
    """Returns (kustomization, [manifest dicts]) or raises ValueError."""
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    docs = []
    for resource in kustomization.get("resources", []):
        with open(os.path.join(directory, resource)) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d is not None)
    return kustomization, docs


def listed_files(directory, kustomization):
    listed = set(kustomization.get("resources", []))
    present = {f for f in os.listdir(directory)
               if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml"}
    return [f"{f}: not listed in kustomization.yaml resources" for f in sorted(present - listed)]


def generated(kustomization):
    """{(kind, name): set(keys)} of the kustomization's generators."""
    out = {}
    for kind, field in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for gen in kustomization.get(field, []) or []:
            keys = set()
            for entry in gen.get("files", []):
                keys.add(entry.split("=", 1)[0] if "=" in entry else os.path.basename(entry))
            for entry in gen.get("literals", []):
                keys.add(entry.split("=", 1)[0])
            out[(kind, gen["name"])] = keys
    return out


def check_generator_paths(kustomization):
    errors = []
    for gen in (kustomization.get("secretGenerator") or []) + \
               (kustomization.get("configMapGenerator") or []):
        for entry in gen.get("files", []):
            path = entry.split("=", 1)[-1]
            if os.path.isabs(path) or path.startswith(".."):
                errors.append(f"generator {gen['name']}: {path} is outside the kustomization root")
    return errors


def check_metadata(docs, namespace):
    errors = []
    seen = set()
    for d in docs:
        kind, meta = d.get("kind"), d.get("metadata") or {}
        name = meta.get("name")
        where = f"{kind}/{name}"
        if kind not in API_VERSIONS:
            errors.append(f"{where}: unexpected kind")
        elif d.get("apiVersion") != API_VERSIONS[kind]:
            errors.append(f"{where}: apiVersion {d.get('apiVersion')}, expected {API_VERSIONS[kind]}")
        if not name:
            errors.append(f"{kind}: metadata.name missing")
        if kind != "Namespace" and meta.get("namespace") not in (None, namespace):
            errors.append(f"{where}: namespace {meta.get('namespace')} != {namespace}")
        if (kind, name) in seen:
            errors.append(f"{where}: defined twice")
        seen.add((kind, name))
    for kind in REQUIRED_KINDS:
        if not any(d.get("kind") == kind for d in docs):
            errors.append(f"no {kind} manifest")
    return errors


def pod_templates(docs):
    for d in docs:
        if d.get("kind") in ("Deployment", "Job"):
            yield f"{d['kind']}/{d['metadata']['name']}", d, d.get("spec", {}).get("template", {})


def keys_of(objects, kind, name):
    """Keys of a ConfigMap/Secret, or None when it does not exist."""
    if (kind, name) in objects:
        return objects[(kind, name)]
    return None


def check_pod(where, template, objects):
    errors = []
    spec = template.get("spec") or {}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    containers = spec.get("containers") or []
    if not containers:
        errors.append(f"{where}: no containers")
    for v in volumes.values():
        if "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"].get("claimName")
            if ("PersistentVolumeClaim", claim) not in objects:
                errors.append(f"{where}: volume {v['name']} claims unknown PVC {claim}")
        for kind, field, name_key in (("ConfigMap", "configMap", "name"),
                                      ("Secret", "secret", "secretName")):
            if field not in v:
                continue
            name = v[field].get(name_key)
            keys = keys_of(objects, kind, name)
            if keys is None:
                errors.append(f"{where}: volume {v['name']} references unknown {kind} {name}")
                continue
            for item in v[field].get("items", []):
                if item["key"] not in keys:
                    errors.append(f"{where}: {kind} {name} has no key {item['key']}")
    for c in containers:
        cwhere = f"{where} container {c.get('name')}"
        if not c.get("image"):
            errors.append(f"{cwhere}: no image")
        if not (c.get("command") or c.get("args")):
            errors.append(f"{cwhere}: no command or args")
        for m in c.get("volumeMounts", []):
            volume = volumes.get(m["name"])
            if volume is None:
                errors.append(f"{cwhere}: mounts undefined volume {m['name']}")
            elif m.get("subPath") and "configMap" in volume:
                keys = keys_of(objects, "ConfigMap", volume["configMap"].get("name")) or set()
                if m["subPath"] not in keys:
                    errors.append(f"{cwhere}: subPath {m['subPath']} is not a key of the ConfigMap")
        for env in c.get("env", []):
            ref = env.get("valueFrom", {})
            for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if field in ref:
                    keys = keys_of(objects, kind, ref[field]["name"])
                    if keys is None or ref[field]["key"] not in keys:
                        errors.append(f"{cwhere}: env {env['name']} references a missing {kind} key")
        port_names = {p.get("name") for p in c.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(probe)
            if p is None:
                continue
            if "exec" in p and not p["exec"].get("command"):
                errors.append(f"{cwhere}: {probe} exec has no command")
            port = (p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
            if isinstance(port, str) and port not in port_names:
                errors.append(f"{cwhere}: {probe} uses unknown port name {port}")
    return errors


def check_selectors(docs):
    errors = []
    pods = []
    for where, d, template in pod_templates(docs):
        labels = (template.get("metadata") or {}).get("labels") or {}
        if d["kind"] == "Deployment":
            match = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            if not match or any(labels.get(k) != v for k, v in match.items()):
                errors.append(f"{where}: selector {match} does not match pod labels {labels}")
        pods.append((where, labels, template))
    for d in docs:
        if d.get("kind") != "Service":
            continue
        selector = d["spec"].get("selector") or {}
        selected = [(w, t) for w, labels, t in pods
                    if selector and all(labels.get(k) == v for k, v in selector.items())]
        if not selected:
            errors.append(f"Service/{d['metadata']['name']}: selector {selector} matches no pod")
            continue
        names = {p.get("name") for _, t in selected for c in t["spec"]["containers"]
                 for p in c.get("ports", [])}
        numbers = {p.get("containerPort") for _, t in selected for c in t["spec"]["containers"]
                   for p in c.get("ports", [])}
        for port in d["spec"].get("ports", []):
            target = port.get("targetPort", port.get("port"))
            if target not in names and target not in numbers:
                errors.append(f"Service/{d['metadata']['name']}: targetPort {target} not in the pods")
    return errors


def flag(args, name):
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def env_value(container, name):
    for env in container.get("env", []):
        if env["name"] == name:
            return env
    return None


BUNDLE_KEYS = {"ca.crt", "client.crt", "client.key", "tokens.txt", "client-ids"}


def secret_mounts(template):
    """{mountPath: secretName} of a pod's first container's Secret volumes."""
    spec = template.get("spec") or {}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    out = {}
    for c in (spec.get("containers") or [])[:1]:
        for m in c.get("volumeMounts", []):
            v = volumes.get(m["name"]) or {}
            if "secret" in v:
                out[m["mountPath"].rstrip("/")] = v["secret"].get("secretName")
    return out


def read_ids(path):
    try:
        text = open(path).read().strip()
    except OSError:
        return None
    ids = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        ids.extend(range(int(a), int(b or a) + 1))
    return ids


def check_client_job(docs, objects, directory):
    errors = []
    jobs = [d for d in docs if d.get("kind") == "Job"]
    services = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Service"}
    configs = [d for d in docs if d.get("kind") == "ConfigMap" and "run.toml" in (d.get("data") or {})]
    owner = {}
    bundles = []
    for job in jobs:
        where = f"Job/{job['metadata']['name']}"
        spec = job["spec"]
        pod = spec["template"]["spec"]
        if pod.get("restartPolicy") not in ("OnFailure", "Never"):
            errors.append(f"{where}: restartPolicy must be OnFailure or Never")
        c = pod["containers"][0]
        args = (c.get("command") or []) + (c.get("args") or [])
        server = flag(args, "--server") or ""
        host, _, port = server.rpartition(":")
        svc = services.get(host.split(".")[0])
        if svc is None or not any(str(p["port"]) == port for p in svc["spec"]["ports"]):
            errors.append(f"{where}: --server {server} is not a Service port")
        mounts = secret_mounts(spec["template"])
        if len(mounts) != 1:
            errors.append(f"{where}: mounts {len(mounts)} Secrets, expected exactly its host bundle")
            continue
        (path, secret), = mounts.items()
        keys = keys_of(objects, "Secret", secret) or set()
        if keys != BUNDLE_KEYS:
            errors.append(f"{where}: Secret {secret} has keys {sorted(keys)}, not a host bundle")
        if secret in owner:
            errors.append(f"{where}: shares Secret {secret} with {owner[secret]}")
        owner.setdefault(secret, where)
        for f, key in (("--tls-ca", "ca.crt"), ("--tls-cert", "client.crt"),
                       ("--tls-key", "client.key"), ("--tokens", "tokens.txt")):
            if flag(args, f) != f"{path}/{key}":
                errors.append(f"{where}: {f} is not {path}/{key} from its bundle")
        ids_file = (env_value(c, "LFL_CLIENT_IDS_FILE") or {}).get("value")
        if flag(args, "--client-ids") is None and ids_file != f"{path}/client-ids":
            errors.append(f"{where}: the pod does not take its ids from its bundle ({path}/client-ids)")
        bundles.append((where, secret))
    if not jobs:
        errors.append("no client Job")
    if errors or not configs or not directory:
        return errors
    run = tomllib.loads(configs[0]["data"]["run.toml"])
    if len(jobs) > run.get("clients", 0):
        errors.append(f"{len(jobs)} client Jobs for {run.get('clients')} clients")
    ids = []
    for where, secret in bundles:
        host = secret.rsplit("-", 1)[-1]
        got = read_ids(os.path.join(directory, "secrets", f"host-{host}", "client-ids"))
        if got is None:
            return errors  # bundles not generated here: nothing more to compare
        ids.extend(got)
    if sorted(ids) != list(range(run.get("clients", 0))):
        errors.append(f"the bundles' client-ids cover {sorted(ids)}, not 0..{run.get('clients', 0) - 1} once")
    return errors


def check_metrics_policy(docs):
    """The server's /metrics port is reachable only from selected pods: a NetworkPolicy selects
    the server pod, and every ingress rule that opens its metrics port names who may come."""
    errors = []
    server = find(docs, "Deployment")
    labels = server["spec"]["template"]["metadata"].get("labels") or {}
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"
                and all(labels.get(k) == v for k, v in
                        ((d.get("spec") or {}).get("podSelector") or {}).get("matchLabels", {}).items())]
    if not policies:
        return ["no NetworkPolicy selects the server pod (its /metrics port would be open to every pod)"]
    for p in policies:
        for rule in p["spec"].get("ingress") or []:
            ports = [q.get("port") for q in rule.get("ports") or []]
            if (not ports or "metrics" in ports or 9090 in ports) and not rule.get("from"):
                errors.append(f"NetworkPolicy/{p['metadata']['name']}: an ingress rule opens the metrics port "
                              "to every source")
    return errors


def check_server_secrets(docs, objects):
    errors = []
    for d in docs:
        if d.get("kind") != "Deployment":
            continue
        where = f"Deployment/{d['metadata']['name']}"
        template = d["spec"]["template"]
        mounts = secret_mounts(template)
        for path, secret in mounts.items():
            if "client.key" in (keys_of(objects, "Secret", secret) or set()):
                errors.append(f"{where}: mounts Secret {secret}, which holds a client key")
        c = template["spec"]["containers"][0]
        tokens = flag((c.get("command") or []) + (c.get("args") or []), "--tokens") or ""
        if not tokens.endswith("/server-tokens.txt"):
            errors.append(f"{where}: --tokens {tokens} is not the hashed server-tokens.txt")
    return errors


def check(directory):
    try:
        kustomization, docs = load(directory)
    except (OSError, yaml.YAMLError) as e:
        return [f"cannot load manifests: {e}"]
    return check_loaded(directory, kustomization, docs)


def check_loaded(directory, kustomization, docs):
    namespace = kustomization.get("namespace", "default")
    objects = generated(kustomization)
    for d in docs:
        kind, name = d.get("kind"), (d.get("metadata") or {}).get("name")
        objects[(kind, name)] = set((d.get("data") or {}).keys()) | set(
            (d.get("stringData") or {}).keys())
    errors = listed_files(directory, kustomization) if directory else []
    errors += check_generator_paths(kustomization)
    errors += check_metadata(docs, namespace)
    errors += check_selectors(docs)
    for where, _, template in pod_templates(docs):
        errors += check_pod(where, template, objects)
    errors += check_client_job(docs, objects, directory)
    errors += check_server_secrets(docs, objects)
    errors += check_metrics_policy(docs)
    return errors


def find(docs, kind):
    return next(d for d in docs if d.get("kind") == kind)


def jobs(docs):
    return [d for d in docs if d.get("kind") == "Job"]


def renamed_job(job, name, secret):
    job = copy.deepcopy(job)
    job["metadata"]["name"] = name
    job["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] = secret
    return job


def replace_arg(workload, name, value):
    args = workload["spec"]["template"]["spec"]["containers"][0]["args"]
    args[:] = [f"{name}={value}" if a.split("=", 1)[0] == name else a for a in args]


def mount_on_server(docs, secret):
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "stolen", "secret": {"secretName": secret}})
    spec["containers"][0]["volumeMounts"].append({"name": "stolen", "mountPath": "/stolen"})


# Each mutation breaks one property the checker must catch.
MUTATIONS = {
    "deployment selector": lambda k, d: find(d, "Deployment")["spec"]["selector"]["matchLabels"]
        .update({"app.kubernetes.io/name": "other"}),
    "service selector": lambda k, d: find(d, "Service")["spec"].update(selector={"app": "none"}),
    "service target port": lambda k, d: find(d, "Service")["spec"]["ports"][0]
        .update(targetPort="nope"),
    "missing pvc": lambda k, d: d.remove(find(d, "PersistentVolumeClaim")),
    "missing secret": lambda k, d: k.pop("secretGenerator"),
    "missing configmap key": lambda k, d: find(d, "ConfigMap").update(data={"other.toml": ""}),
    "no image": lambda k, d: find(d, "Job")["spec"]["template"]["spec"]["containers"][0]
        .pop("image"),
    "undefined mount": lambda k, d: find(d, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        ["volumeMounts"].append({"name": "ghost", "mountPath": "/x"}),
    "wrong apiVersion": lambda k, d: find(d, "Deployment").update(apiVersion="v1"),
    "shared bundle": lambda k, d: jobs(d)[1]["spec"]["template"]["spec"]["volumes"][0]["secret"]
        .update(secretName="lotteryfl-host-0"),
    "job without a bundle": lambda k, d: d.append(renamed_job(jobs(d)[0], "lotteryfl-client-9",
                                                                "lotteryfl-host-9")),
    "ids not from the bundle": lambda k, d: jobs(d)[0]["spec"]["template"]["spec"]["containers"][0]
        .update(env=[]),
    "foreign key": lambda k, d: replace_arg(jobs(d)[0], "--tls-key", "/etc/lotteryfl/other/client.key"),
    "client key on the server": lambda k, d: mount_on_server(d, "lotteryfl-host-0"),
    "metrics open to all": lambda k, d: find(d, "NetworkPolicy")["spec"]["ingress"][1].pop("from"),
    "no network policy": lambda k, d: d.remove(find(d, "NetworkPolicy")),
    "plain tokens on the server": lambda k, d: replace_arg(find(d, "Deployment"), "--tokens",
                                                           "/etc/lotteryfl/tls/tokens.txt"),
}


def self_test(directory):
    kustomization, docs = load(directory)
    failures = []
    for name, mutate in MUTATIONS.items():
        k, d = copy.deepcopy(kustomization), copy.deepcopy(docs)
        mutate(k, d)
        if not check_loaded(None, k, d):
            failures.append(f"self-test: the checker accepted a broken copy ({name})")
    return failures


def main(argv):
    args = [a for a in argv[1:] if a != "--self-test"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    errors = check(args[0])
    if not errors and "--self-test" in argv:
        errors = self_test(args[0])
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    if not errors:
        print(f"PASS: {args[0]} ({len(load(args[0])[1])} manifests)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
