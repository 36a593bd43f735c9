#!/usr/bin/python3
"""Checks the output of `docker-compose config` (read from stdin) for
deploy/compose/docker-compose.yml + a clients file from scripts/compose-clients.sh:
a health-checked server with resumable run output on a named volume, TLS, and the
hashed server-tokens.txt, holding no client host's key; one client service per host
bundle, each holding exactly its own bundle (ca.crt, client.crt, client.key, tokens.txt,
client-ids from one host-<h> directory, shared with no other service) and no fixed ids;
the bundles' client-ids ranges (read from the files the secrets name) cover the server's
--clients exactly once; restart policies; every secret defined.
Exit 0 when they hold, 1 with the list of failures."""
import os
import re
import sys

try:
    import yaml
except ImportError:
    print("SKIP: PyYAML is not installed (Debian package python3-yaml)")
    sys.exit(77)

BUNDLE = {"ca.crt", "client.crt", "client.key", "tokens.txt", "client-ids"}
SERVER_SECRETS = {"ca.crt", "server.crt", "server.key", "server-tokens.txt"}


def flag(command, name):
    for i, arg in enumerate(command):
        if arg == name and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def mount(volume):
    """(source, target) of a short ("src:dst[:mode]") or long volume entry."""
    if isinstance(volume, dict):
        return volume.get("source"), volume.get("target", "")
    parts = volume.split(":")
    return parts[0], parts[1] if len(parts) > 1 else parts[0]


def secret_refs(svc):
    """[(source, target)] of a service's secrets (target defaults to the source name)."""
    refs = []
    for s in svc.get("secrets", []):
        if isinstance(s, dict):
            refs.append((s["source"], s.get("target") or s["source"]))
        else:
            refs.append((s, s))
    return refs


def id_range(path):
    """Set of ids in a client-ids file ("a-b[,c-d...]"), or None when unreadable."""
    try:
        text = open(path).read().strip()
    except OSError:
        return None
    ids = set()
    for part in text.split(","):
        a, _, b = part.partition("-")
        if not a.isdigit() or (b and not b.isdigit()):
            return None
        ids.update(range(int(a), int(b or a) + 1))
    return ids


def check_server(config, server):
    errors = []
    cmd = server.get("command", [])
    if cmd[:1] != ["server"]:
        errors.append("server: command must start with its role")
    for f in ("--tls-cert", "--tls-key", "--tls-client-ca", "--tokens", "--out", "--listen",
              "--metrics-listen", "--clients"):
        if flag(cmd, f) is None:
            errors.append(f"server: {f} missing")
    if "--insecure" in cmd:
        errors.append("server: --insecure in the deployment")
    targets = {t for _, t in secret_refs(server)}
    if targets != SERVER_SECRETS:
        errors.append(f"server: secrets {sorted(targets)}, expected {sorted(SERVER_SECRETS)} "
                      "(no client host's key, tokens only hashed)")
    if flag(cmd, "--tokens") != "/run/secrets/server-tokens.txt":
        errors.append("server: --tokens is not the hashed /run/secrets/server-tokens.txt")
    out = flag(cmd, "--out") or ""
    named = set(config.get("volumes") or {})
    if not any(source in named and out.startswith(target + "/")
               for source, target in map(mount, server.get("volumes", []))):
        errors.append(f"server: --out {out} is not on a named volume (checkpoints would be lost)")
    if server.get("healthcheck", {}).get("test", ["NONE"])[0] == "NONE":
        errors.append("server: no healthcheck")
    return errors


def check_client(name, svc, secret_files):
    errors = []
    cmd = svc.get("command", [])
    if cmd[:1] != ["client"]:
        errors.append(f"{name}: command must start with its role")
    for f in ("--tls-ca", "--tls-cert", "--tls-key", "--tokens", "--server"):
        if flag(cmd, f) is None:
            errors.append(f"{name}: {f} missing")
    if flag(cmd, "--client-ids") is not None:
        errors.append(f"{name}: --client-ids is fixed instead of read from its bundle")
    if svc.get("depends_on", {}).get("server", {}).get("condition") != "service_healthy":
        errors.append(f"{name}: must wait for a healthy server")
    refs = secret_refs(svc)
    targets = {t for _, t in refs}
    if targets != BUNDLE:
        errors.append(f"{name}: secrets {sorted(targets)}, expected the bundle {sorted(BUNDLE)}")
    dirs = {os.path.dirname(secret_files.get(s, "")) for s, _ in refs}
    if len(dirs) != 1 or not re.search(r"(^|/)host-\d+$", next(iter(dirs))):
        errors.append(f"{name}: secrets come from {sorted(dirs)}, not one host-<h> bundle")
    for source, target in refs:
        if os.path.basename(secret_files.get(source, "")) != target:
            errors.append(f"{name}: secret {target} is file {secret_files.get(source)}")
    return errors


def check(config):
    errors = []
    services = config.get("services", {})
    server = services.get("server")
    clients = {n: s for n, s in services.items() if (s.get("command") or [None])[0] == "client"}
    if server is None or not clients:
        return ["a 'server' service and at least one client service are required"]
    secret_files = {n: s.get("file", "") for n, s in (config.get("secrets") or {}).items()}
    for name, svc in services.items():
        if not svc.get("image"):
            errors.append(f"{name}: no image")
        for source, _ in secret_refs(svc):
            if source not in secret_files:
                errors.append(f"{name}: secret {source} is not defined")
        if name in clients or name == "server":
            if svc.get("restart") not in ("on-failure", "unless-stopped", "always"):
                errors.append(f"{name}: no restart policy")
            if svc.get("deploy", {}).get("replicas", 1) != 1:
                errors.append(f"{name}: replicas of one service would share one bundle")
    errors += check_server(config, server)
    owner = {}
    covered = []
    for name, svc in sorted(clients.items()):
        errors += check_client(name, svc, secret_files)
        for source, target in secret_refs(svc):
            path = os.path.realpath(secret_files.get(source, ""))
            if path in owner and owner[path] != name:
                errors.append(f"{name}: shares {path} with {owner[path]}")
            owner.setdefault(path, name)
            if target == "client-ids":
                ids = id_range(path)
                if ids is None:
                    errors.append(f"{name}: cannot read its client-ids file {path}")
                else:
                    covered.append((name, ids))
    total = flag(server.get("command", []), "--clients")
    if total is not None and len(covered) == len(clients):
        seen = [i for _, ids in covered for i in ids]
        if sorted(seen) != list(range(int(total))):
            errors.append(f"client bundles cover ids {sorted(seen)}, "
                          f"not 0..{int(total) - 1} exactly once (server --clients {total})")
    return errors


def main():
    errors = check(yaml.safe_load(sys.stdin))
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
