"""`make demo`: a hub and three agents on loopback, as separate processes, one release.

Everything goes through the real commands (`meisitong-hub init/publish/rollout/serve`,
`meisitong-agent enroll/run`): real TUF metadata, real libtorrent peers on 127.0.0.2-4,
real HTTP. The third endpoint carries an older local configuration that the new
version's self-test rejects, so its health check fails and it reverts; the demo then
shows its files are byte-identical to before. Then the admin's half: the compliance
report (`report compliance`) and the audit log's verification (`audit verify`), and with
`--console` the hub keeps serving with a console account until Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.processes import BIN_AGENT, BIN_HUB, Fleet, free_port, reachable, wait_for

AGENT_ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
HUB_ADDRESS = "127.0.0.1"
SELFTEST = """#!/bin/sh
# demo-app 1.1 self-test: the new version needs `listen_port` in its configuration.
set -e
root="${MEISITONG_ROOT:-}"
grep -q '^listen_port' "$root/etc/demo-app/app.conf" || {
    echo "app.conf has no listen_port (written for 1.0?)" >&2; exit 1; }
test "$(cat "$root/opt/demo-app/VERSION")" = "1.1.0"
"""
RELEASE_TOML = """name = "demo-app"
version = "1.1.0"
severity = "important"
category = "application"
description = "Demo application, new release"

[install]
type = "file-tree"
root = "/opt/demo-app"

[[health]]
type = "command"
argv = ["{root}/opt/demo-app/bin/selftest"]
timeout = 10
retries = 1
interval = 0.5

[[health]]
type = "file-hash"
path = "/opt/demo-app/VERSION"
sha256 = "%s"
"""


def tree_digest(root: Path) -> str:
    """Names, types, modes, contents and link targets of everything under root."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        stat = path.lstat()
        digest.update(f"{relative}\0{stat.st_mode:o}\0".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def add_file(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    archive.addfile(info, io.BytesIO(data))


def build_payload(directory: Path, size_mib: int) -> tuple[Path, Path]:
    """demo-app 1.1.0 as a tar, and its RELEASE.toml."""
    payload = directory / "demo-app-1.1.0.tar"
    with tarfile.open(payload, "w") as archive:
        add_file(archive, "VERSION", b"1.1.0")
        add_file(archive, "bin/selftest", SELFTEST.encode(), 0o755)
        add_file(archive, "share/assets.bin", os.urandom(size_mib << 20))
    release = directory / "RELEASE.toml"
    release.write_text(RELEASE_TOML % hashlib.sha256(b"1.1.0").hexdigest())
    return payload, release


def install_old_version(prefix: Path, config_line: str) -> None:
    """What every endpoint has before the release: demo-app 1.0.0 and its config."""
    app = prefix / "opt/demo-app"
    (app / "bin").mkdir(parents=True)
    (app / "VERSION").write_text("1.0.0")
    (app / "bin/selftest").write_text("#!/bin/sh\nexit 0\n")
    (app / "bin/selftest").chmod(0o755)
    (app / "share").mkdir()
    (app / "share/assets.bin").write_bytes(b"old assets")
    (prefix / "etc/demo-app").mkdir(parents=True)
    (prefix / "etc/demo-app/app.conf").write_text(config_line)


def admin_view(fleet: Fleet) -> dict[str, Any]:
    """What the admin's commands say once the rollout is done."""
    report = json.loads(fleet.command(BIN_HUB, "report", "compliance", "--group", "demo",
                                      "--format", "json").stdout)
    verified = subprocess.run(
        [BIN_HUB, "audit", "verify", "--json"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "MEISITONG_HUB_DIR": str(fleet.hub_dir)})
    audit = json.loads(verified.stdout) if verified.stdout.strip() else {}
    return {
        "compliance": report["summary"],
        "exceptions": [{"device": e["device"], "status": e["status"]}
                       for e in report["exceptions"]],
        "audit": {"ok": verified.returncode == 0 and bool(audit.get("ok")),
                  "entries": audit.get("entries", 0),
                  "problems": audit.get("problems", [])[:3]},
    }


def serve_console(fleet: Fleet, hub_port: int) -> None:
    """Keep the hub and agents running with a console account until Ctrl-C."""
    password = secrets.token_urlsafe(12)
    done = subprocess.run(
        [BIN_HUB, "admins", "add", "demo", "--role", "admin", "--password-stdin"],
        input=password + "\n", capture_output=True, text=True, timeout=60,
        env={**os.environ, "MEISITONG_HUB_DIR": str(fleet.hub_dir)})
    if done.returncode != 0:
        raise RuntimeError(f"admins add failed: {done.stderr.strip()}")
    print(f"\nconsole: http://{HUB_ADDRESS}:{hub_port}/console/  login demo, password "
          f"{password}\n(hub and endpoints keep running; Ctrl-C stops them)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping the demo fleet")


def run_demo(workdir: Path, payload_mib: int = 32, timeout: float = 240,
             console: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    hub_port = free_port(HUB_ADDRESS)
    fleet = Fleet(workdir, workdir / "hub", f"http://{HUB_ADDRESS}:{hub_port}")
    try:
        fleet.command(
            BIN_HUB, "init", "--listen", f"{HUB_ADDRESS}:{hub_port}",
            "--seed-listen", f"{HUB_ADDRESS}:{free_port(HUB_ADDRESS)}",
        )
        token = (fleet.hub_dir / "enrollment-token").read_text().strip()
        fleet.start("hub", BIN_HUB, "serve", "--dir", str(fleet.hub_dir))
        wait_for(lambda: reachable(HUB_ADDRESS, hub_port), 30, "the hub to listen")

        agents: dict[str, dict[str, Any]] = {}
        for number, address in enumerate(AGENT_ADDRESSES, start=1):
            name = f"endpoint-{number}"
            home = workdir / name
            prefix = home / "root"
            broken = number == len(AGENT_ADDRESSES)
            install_old_version(prefix, "name = demo\n" if broken else "listen_port = 8080\n")
            config = home / "agent.toml"
            config.write_text(
                f'[agent]\nstate_dir = "{home / "state"}"\nname = "{name}"\ngroup = "demo"\n'
                f'install_prefix = "{prefix}"\npoll_interval = 1\n\n'
                f'[p2p]\nlisten = "{address}:{free_port(address)}"\nlocal_discovery = false\n'
                "web_seed_after = 20\nseed_time = 600\ndownload_timeout = 180\n"
            )
            fleet.command(BIN_AGENT, "enroll", "--config", str(config), "--hub", fleet.hub_url,
                          "--token", token)
            agents[name] = {"config": config, "prefix": prefix, "before": tree_digest(prefix),
                            "expect": "reverted" if broken else "installed"}
            fleet.start(name, BIN_AGENT, "run", "--config", str(config))

        payload, release = build_payload(workdir, payload_mib)
        publish_started = time.monotonic()
        published = json.loads(
            fleet.command(BIN_HUB, "publish", str(release), str(payload), "--json").stdout
        )
        # Three endpoints: one stage for all of them (the default 2 % pilot would be empty).
        fleet.command(BIN_HUB, "rollout", "start", "demo-app", "--group", "demo",
                      "--stages", "100")
        rollout_started = time.monotonic()

        def all_reported() -> dict[str, Any] | None:
            status = fleet.hub_status()
            devices = status["releases"][0]["devices"] if status["releases"] else []
            done = [d for d in devices if d["outcome"] not in ("waiting",)]
            return status if len(done) == len(agents) else None

        status = wait_for(all_reported, timeout, "every endpoint to report a result")
        rollout_seconds = time.monotonic() - rollout_started
        time.sleep(STATS_SETTLE_SECONDS)  # the hub records its transfer counters every 2 s
        status = fleet.hub_status()
        release_status = status["releases"][0]
        for device in release_status["devices"]:
            agent = agents[device["name"]]
            agent["outcome"], agent["reason"] = device["outcome"], device["reason"]
            agent["after"] = tree_digest(agent["prefix"])
        admin = admin_view(fleet)
        if console:
            serve_console(fleet, hub_port)
        return {
            **admin,
            "payload_bytes": published["length"],
            "publish_hash_seconds": published["hash_seconds"],
            "publish_torrent_seconds": published["torrent_seconds"],
            "publish_seconds": rollout_started - publish_started,
            "rollout_seconds": rollout_seconds,
            "total_seconds": time.monotonic() - started,
            "hub_bytes_sent": release_status["hub_bytes_sent"],
            "agents": {
                name: {k: v for k, v in agent.items() if k not in ("config", "prefix")}
                for name, agent in agents.items()
            },
        }
    finally:
        fleet.stop_all()


STATS_SETTLE_SECONDS = 2.5


def print_summary(summary: dict[str, Any]) -> bool:
    """Print the outcome; True if it is the one the demo promises."""
    ok = True
    size = summary["payload_bytes"]
    print(f"\ndemo-app 1.1.0 ({size / 2**20:.1f} MiB) rolled out to {len(summary['agents'])} "
          f"endpoints in {summary['rollout_seconds']:.1f} s "
          f"(publish {summary['publish_seconds']:.1f} s)")
    for name, agent in summary["agents"].items():
        line = f"  {name:<11} {agent.get('outcome', '?'):<10}"
        if agent.get("outcome") == "reverted":
            identical = agent["after"] == agent["before"]
            line += f" files byte-identical to before: {'yes' if identical else 'NO'}"
            ok &= identical
        if agent.get("reason"):
            line += f"\n{'':16}reason: {agent['reason']}"
        print(line)
        ok &= agent.get("outcome") == agent["expect"]
    sent = summary["hub_bytes_sent"]
    total = sent["seeder"] + sent["web_seed"]
    print(f"  hub sent {total / 2**20:.1f} MiB ({total / size:.2f} copies of the payload; "
          f"seeder {sent['seeder'] / 2**20:.1f} MiB, web seed {sent['web_seed'] / 2**20:.1f} MiB)"
          f" to {len(summary['agents'])} endpoints")
    for row in summary["compliance"]:
        print(f"  compliance of group {row['group']} ({row['severity']}): "
              f"{row['compliant']}/{row['in_scope']} devices = {row['share']:.1%}; "
              "exceptions: " + (", ".join(f"{e['device']} {e['status']}"
                                          for e in summary["exceptions"]) or "none"))
    audit = summary["audit"]
    print(f"  audit log: {audit['entries']} entries, "
          + ("verified (hash chain, signatures, anchors)" if audit["ok"]
             else f"VERIFY FAILED: {audit['problems']}"))
    ok &= audit["ok"] and bool(summary["compliance"])
    print(f"  total demo time {summary['total_seconds']:.1f} s")
    print("demo: OK" if ok else "demo: FAILED (see above)")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payload-mib", type=int, default=32)
    parser.add_argument("--keep", action="store_true", help="keep the demo directory and logs")
    parser.add_argument("--console", action="store_true",
                        help="then keep serving, with a console account, until Ctrl-C")
    parser.add_argument("--timeout", type=float, default=240, help="seconds for the rollout")
    parser.add_argument("--summary-json", type=Path, default=None,
                        help="also write the summary as JSON here (for the demo's own test)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="meisitong-demo-"))
    ok = False
    try:
        print(f"demo fleet in {workdir}: hub on {HUB_ADDRESS}, endpoints on "
              f"{', '.join(AGENT_ADDRESSES)}")
        summary = run_demo(workdir, args.payload_mib, args.timeout, args.console)
        if args.summary_json:
            args.summary_json.write_text(json.dumps(summary, indent=2))
        ok = print_summary(summary)
    except Exception as exc:  # show the logs that explain it, then fail
        print(f"demo failed: {exc}", file=sys.stderr)
        for log in sorted(workdir.glob("*.log")):
            print(f"--- {log.name} (last lines)", file=sys.stderr)
            print("\n".join(log.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
    finally:
        if args.keep or not ok:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
