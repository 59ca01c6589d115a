"""agent.toml: the endpoint's own settings, validated before the daemon does anything.

A bad file is refused as a whole with every problem named by key; the daemon keeps the
configuration it started with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent.errors import ConfigError
from agent.listen_address import host_port, is_loopback
from agent.log_format import LogFormat
from agent.wire.decoding import decode_toml
from agent.wire.validation import NAME_PATTERN, StrictModel, parse_model

DEFAULT_CONFIG_FILE = Path("/etc/meisitong/agent.toml")


class AgentSection(StrictModel):
    state_dir: Path = Path("/var/lib/meisitong/agent")
    name: str = Field(default="", description="display name; the host name if empty")
    group: str = Field(default="default", pattern=NAME_PATTERN)
    site: str = Field(default="default", pattern=NAME_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict)
    poll_interval: float = Field(default=60.0, ge=0.1, le=86400)
    install_prefix: Path = Field(
        default=Path("/"),
        description="absolute paths of install specs and health checks land under this",
    )

    @field_validator("state_dir", "install_prefix")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value


class HubSection(StrictModel):
    url: str = Field(default="", pattern=r"^(https?://[^/\s]+/?.*)?$")
    timeout: float = Field(default=30.0, gt=0, le=600)
    heartbeat_interval: float = Field(default=900.0, ge=1, le=86400,
                                      description="seconds between signed heartbeats")


class P2PSection(StrictModel):
    listen: str = "0.0.0.0:6881"
    upload_limit: int = Field(default=0, ge=0, description="bytes/s, 0 = unlimited")
    download_limit: int = Field(default=0, ge=0, description="bytes/s, 0 = unlimited")
    seed_time: float = Field(default=3600.0, ge=0)
    web_seed_after: float = Field(default=30.0, ge=0)
    local_discovery: bool = True
    download_timeout: float = Field(default=3600.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return host_port(value, "listen")


class GossipSection(StrictModel):
    """Site gossip (agent/gossip/): results and inventories between agents of a site."""

    enabled: bool = True
    listen: str = Field(default="", description="IP:PORT; empty: the [p2p] IP, port 7881")
    seeds: list[str] = Field(default_factory=list, max_length=256)
    interval: float = Field(default=10.0, ge=0.05, le=3600)
    fanout: int = Field(default=1, ge=1, le=16)
    hub_sync_interval: float = Field(default=30.0, ge=0.1, le=86400)
    retry_hub_after: float = Field(default=30.0, ge=0, le=86400)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return host_port(value, "listen") if value else value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[str]) -> list[str]:
        return [host_port(seed, "seeds") for seed in value]


class InventorySection(StrictModel):
    """The device's inventory (agent/inventory/): sent on start, on change, and at least
    every `interval`; never two records closer than `min_spacing` (a flapping package
    list cannot flood the hub), unless the hub asks for a full record."""

    enabled: bool = True
    interval: float = Field(default=6 * 3600.0, ge=1, le=30 * 86400)
    min_spacing: float = Field(default=300.0, ge=0, le=86400)
    check_interval: float = Field(default=60.0, ge=0.1, le=86400,
                                  description="seconds between cheap looks for a change")
    dpkg_query: str = Field(default="dpkg-query", min_length=1, max_length=4096)
    dpkg_status: Path = Path("/var/lib/dpkg/status")
    """Its modification time says the package list may have changed."""


class LifecycleSection(StrictModel):
    """How a deployment may treat the device: reboots, crash loops, free space."""

    reboot: Literal["system", "restart-agent"] = "system"
    max_boots: int = Field(default=3, ge=1, le=100)
    free_space_reserve: int = Field(default=64 * 1024 * 1024, ge=0, description="bytes")


class MetricsSection(StrictModel):
    """Prometheus metrics (agent/metrics/), off unless `listen` or `textfile` is set:
    a listener on this machine's loopback, or a file for node-exporter's textfile
    collector, rewritten every `interval` seconds."""

    listen: str = Field(default="", description="IP:PORT, e.g. 127.0.0.1:9108")
    allow_remote: bool = Field(default=False,
                               description="let `listen` be an address other than loopback")
    textfile: Path | None = Field(default=None, description="e.g. /var/lib/node_exporter/"
                                  "textfile_collector/meisitong.prom")
    interval: float = Field(default=15.0, ge=1, le=3600)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return host_port(value, "listen") if value else value

    @field_validator("textfile")
    @classmethod
    def _textfile(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _loopback_only(self) -> MetricsSection:
        if self.listen and not self.allow_remote and not is_loopback(self.listen):
            raise ValueError(
                f"listen {self.listen!r} is not a loopback address: the metrics listener "
                "has no authentication; set allow_remote = true to listen there anyway")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.listen or self.textfile)


class LoggingSection(StrictModel):
    format: LogFormat = "text"


class AgentConfig(StrictModel):
    agent: AgentSection = AgentSection()
    hub: HubSection = HubSection()
    p2p: P2PSection = P2PSection()
    lifecycle: LifecycleSection = LifecycleSection()
    gossip: GossipSection = GossipSection()
    metrics: MetricsSection = MetricsSection()
    logging: LoggingSection = LoggingSection()
    inventory: InventorySection = InventorySection()

    @property
    def hub_url(self) -> str:
        return self.hub.url.rstrip("/")

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: no such file (pass --config FILE, or copy config/agent.toml there)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8: {exc}") from None
        data = decode_toml(text, str(path), ConfigError)
        return parse_model(cls, data, str(path), ConfigError)
