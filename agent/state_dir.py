"""Where the agent keeps its state, in one place (all under agent.state_dir)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agent.atomic_file import write_atomic
from agent.errors import ConfigError


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def device_key(self) -> Path:
        return self.root / "device.key"

    @property
    def enrollment(self) -> Path:
        return self.root / "enrollment.json"

    @property
    def trusted_root(self) -> Path:
        """The root metadata verified against the enrollment token's hash."""
        return self.root / "trusted-root.json"

    @property
    def device_certificate(self) -> Path:
        """PEM certificate the hub issued at enrollment for the device key (mutual TLS)."""
        return self.root / "device.crt"

    @property
    def hub_ca_certificate(self) -> Path:
        """PEM certificate of the hub's device CA: site peers must chain to it."""
        return self.root / "hub-ca.crt"

    @property
    def gossip(self) -> Path:
        """SQLite store of gossip records, own and relayed."""
        return self.root / "gossip.db"

    @property
    def inventory(self) -> Path:
        """What the inventory reporter last built and sent (agent/inventory/reporter.py)."""
        return self.root / "inventory.json"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata"

    @property
    def targets(self) -> Path:
        return self.root / "targets"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def journal(self) -> Path:
        return self.root / "journal.db"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)
        for sub in (self.metadata, self.targets, self.downloads, self.snapshots, self.work):
            sub.mkdir(exist_ok=True, mode=0o700)

    def write_enrollment(self, hub_url: str, device_id: str, status: str) -> None:
        body = {"hub_url": hub_url, "device_id": device_id, "status": status}
        write_atomic(self.enrollment, json.dumps(body, indent=2).encode(), mode=0o600)

    def read_enrollment(self) -> dict[str, str]:
        try:
            data = json.loads(self.enrollment.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"{self.enrollment}: this device is not enrolled; run `meisitong-agent enroll`"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.enrollment}: unreadable: {exc}") from None
        if not isinstance(data, dict) or "hub_url" not in data or "device_id" not in data:
            raise ConfigError(f"{self.enrollment}: missing hub_url or device_id")
        return {str(k): str(v) for k, v in data.items()}
