"""What `meisitong-hub status` shows: every release, its rollouts, each device's result,
and how many payload bytes left the hub — as plain data, rendered by the CLI."""

from __future__ import annotations

from typing import Any

from hub.database import HubDatabase


def status_report(database: HubDatabase) -> dict[str, Any]:
    devices = {device.device_id: device for device in database.devices()}
    releases = []
    for release in database.query("SELECT * FROM releases ORDER BY published_at, target"):
        target = release["target"]
        latest: dict[str, Any] = {}
        for row in database.query(
            "SELECT device_id, outcome, reason, finished_at FROM results WHERE release = ? "
            "ORDER BY finished_at",
            (target,),
        ):
            latest[row["device_id"]] = {
                "outcome": row["outcome"],
                "reason": row["reason"],
                "finished_at": row["finished_at"],
            }
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
