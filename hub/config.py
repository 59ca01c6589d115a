"""hub.toml: the serving hub's settings, validated as a whole before anything starts."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from agent.listen_address import host_port
from agent.log_format import LogFormat
from agent.wire.decoding import decode_toml
from agent.wire.validation import StrictModel, parse_model
from hub.devices.online_window import ONLINE_WITHIN_SECONDS
from hub.errors import HubConfigError


class ServerSection(StrictModel):
    listen: str = "127.0.0.1:8080"
    public_url: str = Field(
        default="", description="how agents reach this hub; http://LISTEN when empty"
    )

    tls_cert: Path | None = Field(
        default=None, description="PEM certificate (chain) to serve HTTPS with; relative to "
        "the hub directory"
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks of reverse proxies whose X-Forwarded-Proto and "
        "X-Forwarded-For the console believes",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return host_port(value, "listen")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSection:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set tls_cert and tls_key together (or neither)")
        return self

    def tls_files(self) -> tuple[Path, Path] | None:
        """(certificate, key) once both are readable and make a usable pair, None when
        TLS is not configured. Raises HubConfigError naming the key and the file."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        for key, path in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
            try:
                path.open("rb").close()
            except OSError as exc:
                raise HubConfigError(
                    f"[server] {key} in hub.toml: {path}: cannot read: {exc.strerror}"
                ) from None
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                self.tls_cert, self.tls_key
            )
        except (ssl.SSLError, ValueError) as exc:
            raise HubConfigError(
                f"[server] tls_cert / tls_key in hub.toml: {self.tls_cert} and {self.tls_key} "
                f"are not a PEM certificate and its private key: {exc}"
            ) from None
        return self.tls_cert, self.tls_key


class ConsoleSection(StrictModel):
    session_idle: float = Field(
        default=1800.0, ge=60, le=86400, description="seconds without a request that end a "
        "console session"
    )
    session_lifetime: float = Field(
        default=43200.0, ge=300, le=30 * 86400,
        description="seconds after login that end a console session whatever its use",
    )


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
        default=ONLINE_WITHIN_SECONDS, gt=0, le=30 * 86400,
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
    console: ConsoleSection = ConsoleSection()

    @property
    def public_url(self) -> str:
        scheme = "https" if self.server.tls_cert is not None else "http"
        return (self.server.public_url or f"{scheme}://{self.server.listen}").rstrip("/")

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
        config = parse_model(cls, data, str(path), HubConfigError)
        return config.relative_to(path.parent)

    def relative_to(self, directory: Path) -> HubConfig:
        """Relative TLS file paths taken from `directory` (the hub's)."""
        server = self.server.model_copy(update={
            key: directory / value
            for key, value in (("tls_cert", self.server.tls_cert),
                               ("tls_key", self.server.tls_key))
            if value is not None and not value.is_absolute()
        })
        return self.model_copy(update={"server": server})
