"""What `meisitong-hub status` shows: every release, its rollouts, each device's result,
how many payload bytes left the hub, and per site how much of the payload its devices got
from the hub against from their peers — as plain data, rendered by the CLI.

The per-site figures come from the devices' own signed result records
(`bytes_from_hub`: the hub's web seed and seeder; `bytes_from_peers`: other agents), one
record per device (its latest for the release); devices that have not reported yet are
counted apart, not guessed.
"""

from __future__ import annotations

import json
from typing import Any

from hub.database import HubDatabase


def status_report(database: HubDatabase) -> dict[str, Any]:
    devices = {device.device_id: device for device in database.devices()}
    releases = []
    for release in database.query("SELECT * FROM releases ORDER BY published_at, target"):
        target = release["target"]
        latest: dict[str, Any] = {}
        transferred: dict[str, tuple[int, int]] = {}
        for row in database.query(
            "SELECT device_id, outcome, reason, finished_at, body FROM results "
            "WHERE release = ? ORDER BY finished_at",
            (target,),
        ):
            latest[row["device_id"]] = {
                "outcome": row["outcome"],
                "reason": row["reason"],
                "finished_at": row["finished_at"],
            }
            transferred[row["device_id"]] = _bytes_reported(row["body"])
        rollouts = [
            {
                "group": row["grp"],
                "state": row["state"],
                "stage_percent": row["stage_percent"],
                "started_at": row["started_at"],
            }
            for row in database.query("SELECT * FROM rollouts WHERE release = ?", (target,))
        ]
        groups = {rollout["group"] for rollout in rollouts}
        device_rows: list[dict[str, Any]] = []
        for device in devices.values():
            result = latest.get(device.device_id)
            if result is None and device.group not in groups:
                continue
            device_rows.append(
                {
                    "device_id": device.device_id,
                    "name": device.name,
                    "group": device.group,
                    "site": device.site,
                    **(result or {"outcome": "waiting", "reason": "", "finished_at": None}),
                }
            )
        counts: dict[str, int] = {}
        for device_row in device_rows:
            counts[device_row["outcome"]] = counts.get(device_row["outcome"], 0) + 1
        transfer = database.transfer_bytes(target)
        sites = per_site_bytes(
            {row["device_id"]: row["site"] for row in device_rows}, transferred
        )
        releases.append(
            {
                "release": target,
                "name": release["name"],
                "version": release["version"],
                "severity": release["severity"],
                "category": release["category"],
                "length": release["length"],
                "sha256": release["sha256"],
                "published_at": release["published_at"],
                "rollouts": rollouts,
                "outcomes": counts,
                "devices": sorted(device_rows, key=lambda row: row["name"]),
                "hub_bytes_sent": {
                    "seeder": transfer.get("seeder", 0),
                    "web_seed": transfer.get("web-seed", 0),
                },
                "sites": sites,
            }
        )
    return {
        "releases": releases,
        "devices": [
            {
                "device_id": device.device_id,
                "name": device.name,
                "group": device.group,
                "site": device.site,
                "status": device.status,
                "last_seen": device.last_seen,
            }
            for device in devices.values()
        ],
    }


def _bytes_reported(body: bytes) -> tuple[int, int]:
    """(from hub, from peers) of a stored signed result; verified when it was ingested."""
    record = json.loads(body)["record"]
    return int(record.get("bytes_from_hub", 0)), int(record.get("bytes_from_peers", 0))


def per_site_bytes(
    site_of: dict[str, str], transferred: dict[str, tuple[int, int]]
) -> list[dict[str, Any]]:
    """Per site: devices, how many reported, payload bytes they got from the hub and
    from peers."""
    sites: dict[str, dict[str, Any]] = {}
    for device_id, site in site_of.items():
        row = sites.setdefault(
            site, {"site": site, "devices": 0, "reported": 0, "from_hub": 0, "from_peers": 0}
        )
        row["devices"] += 1
        if device_id in transferred:
            from_hub, from_peers = transferred[device_id]
            row["reported"] += 1
            row["from_hub"] += from_hub
            row["from_peers"] += from_peers
    return [sites[name] for name in sorted(sites)]
