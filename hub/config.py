"""hub.toml: the serving hub's settings, validated as a whole before anything starts."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from agent.listen_address import host_port
from agent.log_format import LogFormat
from agent.wire.decoding import decode_toml
from agent.wire.validation import StrictModel, parse_model
from hub.errors import HubConfigError


class ServerSection(StrictModel):
    listen: str = "127.0.0.1:8080"
    public_url: str = Field(
        default="", description="how agents reach this hub; http://LISTEN when empty"
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return host_port(value, "listen")


class SeedingSection(StrictModel):
    listen: str = "127.0.0.1:6881"
    upload_limit: int = Field(default=0, ge=0, description="bytes/s, 0 = unlimited")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return host_port(value, "listen")


class TrackerSection(StrictModel):
    interval: int = Field(default=30, ge=5, le=3600)
    hub_peers_per_site: int = Field(
        default=1, ge=1, le=64,
        description="agents per site the hub's seeder trades with (hub/swarm/site_peers.py)",
    )


class MetadataSection(StrictModel):
    refresh_check_interval: float = Field(default=300.0, ge=1, le=86400)


class AuditSection(StrictModel):
    anchor_interval: float = Field(
        default=60.0, ge=1, le=86400,
        description="seconds between checks whether the audit head moved; when it did, "
        "the timestamp is re-signed carrying it (hub/audit/anchor.py)",
    )


class MetricsSection(StrictModel):
    """`GET /metrics` on the serving port (hub/metrics/; README "Metrics")."""

    enabled: bool = True
    bearer_token_file: Path | None = Field(
        default=None, description="if set, /metrics asks for `Authorization: Bearer` "
        "with the token this file holds")
    online_within: float = Field(
        default=1800.0, gt=0, le=30 * 86400,
        description="seconds: a device heard from within this is online, else stale "
        "(two of the agents' default 15-minute heartbeats)")


class LoggingSection(StrictModel):
    format: LogFormat = "text"


class HubConfig(StrictModel):
    server: ServerSection = ServerSection()
    seeding: SeedingSection = SeedingSection()
    tracker: TrackerSection = TrackerSection()
    metadata: MetadataSection = MetadataSection()
    audit: AuditSection = AuditSection()
    metrics: MetricsSection = MetricsSection()
    logging: LoggingSection = LoggingSection()

    @property
    def public_url(self) -> str:
        return (self.server.public_url or f"http://{self.server.listen}").rstrip("/")

    @classmethod
    def load(cls, path: Path) -> HubConfig:
        if not path.exists():
            return cls()
        try:
            data = decode_toml(path.read_text(encoding="utf-8"), str(path), HubConfigError)
        except OSError as exc:
            raise HubConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise HubConfigError(f"{path}: not UTF-8: {exc}") from None
        return parse_model(cls, data, str(path), HubConfigError)
