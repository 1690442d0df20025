"""Settings, read from the environment (prefix ``DISPATCHER_``)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Standard Webhooks' example schedule: 5 s, 5 m, 30 m, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (
    5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400,
)


MAX_WORKER_PROCESSES = 64


def worker_processes_for(cpus: int) -> int:
    """serve's worker processes beside its own: one per further CPU (within the bound)."""
    return min(MAX_WORKER_PROCESSES, max(0, cpus - 1))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as a container or taskset
    limits it), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./dispatcher.db"
    admin_token: str | None = Field(default=None, min_length=16, repr=False)
    # Fernet keys (comma-separated, newest first) that seal signing secrets at rest.
    secret_key: str | None = Field(default=None, repr=False)
    allow_private_targets: bool = False
    # CIDRs that are allowed even though private (e.g. "10.20.0.0/16,fd00::/8").
    allowed_cidrs: Annotated[tuple[str, ...], NoDecode] = ()
    retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    delivery_timeout_seconds: float = Field(default=15.0, gt=0)
    max_payload_bytes: int = Field(default=256 * 1024, gt=0)
    disable_after_seconds: float = Field(default=5 * 24 * 3600, gt=0)
    worker_concurrency: int = Field(default=1000, ge=1, le=10_000)
    # `dispatcher serve`: delivery worker processes started beside its own (0: one process).
    worker_processes: int = Field(default_factory=lambda: worker_processes_for(usable_cpus()),
                                  ge=0, le=MAX_WORKER_PROCESSES)
    max_in_flight_per_subscription: int = Field(default=16, ge=1, le=10_000)
    max_subscriptions_per_owner: int = Field(default=1000, ge=1)
    api_request_timeout_seconds: float = Field(default=60.0, gt=0)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    retention_days: float = Field(default=30, gt=0)
    prune_interval_seconds: float = Field(default=3600, gt=0)
    claim_batch_size: int = Field(default=200, ge=1, le=5_000)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    db_command_timeout_seconds: float = Field(default=60.0, gt=0)
    # At start-up, how long serve, api and worker wait for a database that does not answer.
    database_wait_seconds: float = Field(default=60.0, ge=0)
    http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    http_max_connections: int = Field(default=1000, ge=1)
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"
    idempotency_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    # Accept only events of types in the catalog (PUT /v1/event-types/{type}).
    require_event_types: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"
    # "json": one JSON object per line, with the ids of what each line is about.
    log_format: Literal["text", "json"] = "text"
    # When set, GET /metrics asks for "Authorization: Bearer <metrics_token>".
    metrics_token: str | None = Field(default=None, min_length=16, repr=False)
    # The operator dashboard at /ui (admin keys log in); its sessions last this long.
    ui_enabled: bool = True
    ui_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Where browsers reach this service (scheme://host[:port]): the portal links' host.
    # Unset: http://HOST:PORT.
    public_url: str | None = None
    # The tenant portal (/portal), opened by links from POST /v1/tenants/{id}/portal-links.
    portal_enabled: bool = True
    # Its name in the page title and header, and its colour.
    portal_title: str = Field(default="Webhooks", min_length=1, max_length=80)
    portal_accent: str = Field(default="#2f5fb3", pattern=r"^#[0-9A-Fa-f]{6}$")
    # `dispatcher worker` has no API: when set, it serves its own /metrics on this port.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or \
                parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("public_url is scheme://host[:port] (http or https), with no path, "
                             "e.g. https://hooks.example.com")
        return f"{parts.scheme}://{parts.netloc}"

    def public_origin(self) -> str:
        """Where browsers reach this service: ``public_url``, or else http://HOST:PORT."""
        if self.public_url is not None:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return tuple(float(p) for p in parts)
            except ValueError as exc:
                raise ValueError(
                    "retry_schedule must be comma-separated seconds, e.g. 5,300,1800"
                ) from exc
        return value

    @field_validator("allowed_cidrs", mode="before")
    @classmethod
    def _parse_cidrs(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(p.strip() for p in value.split(",") if p.strip())
        for cidr in value if isinstance(value, Iterable) else ():
            ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad one
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: str | None) -> str | None:
        from .sealing import parse_keys

        try:
            parse_keys(value)
        except ValueError:
            raise ValueError("secret_key must be Fernet keys (dispatcher secrets "
                             "generate-key), comma-separated") from None
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(d < 0 for d in value):
            raise ValueError("retry_schedule delays must be >= 0")
        return value

    @property
    def lease_seconds(self) -> float:
        return lease_for(self.delivery_timeout_seconds)


def lease_for(timeout: float) -> float:
    """How long a claim holds a delivery whose attempts may take ``timeout`` seconds: the
    contract retries a dead worker's delivery at most 2 x timeout + 10 s later."""
    return 2 * timeout + 10
