#!/usr/bin/python3
"""Checks the output of `docker-compose config` (read from stdin) for the
properties deploy/compose promises: a health-checked server with resumable run
output on a volume and TLS + tokens from secrets, a scalable client service
whose replicas derive their id ranges (so none is hard-wired) and whose ids
add up to the server's --clients, restart policies, and secrets that exist.
Exit 0 when they hold, 1 with the list of failures."""
import sys

try:
    import yaml
except ImportError:
    print("SKIP: PyYAML is not installed (Debian package python3-yaml)")
    sys.exit(77)


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


def check(config):
    errors = []
    services = config.get("services", {})
    server, client = services.get("server"), services.get("client")
    if server is None or client is None:
        return ["services 'server' and 'client' are required"]
    defined = set(config.get("secrets", {}))
    for name, svc in services.items():
        if not svc.get("image"):
            errors.append(f"{name}: no image")
        for s in svc.get("secrets", []):
            source = s["source"] if isinstance(s, dict) else s
            if source not in defined:
                errors.append(f"{name}: secret {source} is not defined")
    s_cmd, c_cmd = server.get("command", []), client.get("command", [])
    if s_cmd[:1] != ["server"] or c_cmd[:1] != ["client"]:
        errors.append("server/client commands must start with their role")
    for f in ("--tls-cert", "--tls-key", "--tokens", "--out", "--listen", "--metrics-listen"):
        if flag(s_cmd, f) is None:
            errors.append(f"server: {f} missing")
    for f in ("--tls-ca", "--tokens", "--server"):
        if flag(c_cmd, f) is None:
            errors.append(f"client: {f} missing")
    if "--insecure" in s_cmd:
        errors.append("server: --insecure in the deployment")
    out = flag(s_cmd, "--out") or ""
    named = set(config.get("volumes") or {})
    if not any(source in named and out.startswith(target + "/")
               for source, target in map(mount, server.get("volumes", []))):
        errors.append(f"server: --out {out} is not on a named volume (checkpoints would be lost)")
    if server.get("healthcheck", {}).get("test", ["NONE"])[0] == "NONE":
        errors.append("server: no healthcheck")
    if client.get("depends_on", {}).get("server", {}).get("condition") != "service_healthy":
        errors.append("client: must wait for a healthy server")
    for name in ("server", "client"):
        if services[name].get("restart") not in ("on-failure", "unless-stopped", "always"):
            errors.append(f"{name}: no restart policy")
    if flag(c_cmd, "--client-ids") is not None:
        errors.append("client: --client-ids is fixed, so every replica would host the same ids")
    per = client.get("environment", {}).get("LFL_CLIENTS_PER_REPLICA")
    replicas = client.get("deploy", {}).get("replicas", 1)
    clients = flag(s_cmd, "--clients")
    if per is None:
        errors.append("client: LFL_CLIENTS_PER_REPLICA not set")
    elif clients is None or int(per) * int(replicas) != int(clients):
        errors.append(f"client: {replicas} replicas x {per} ids != server --clients {clients}")
    return errors


def main():
    errors = check(yaml.safe_load(sys.stdin))
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
