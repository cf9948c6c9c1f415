"""Every Footfall setting, defined once.

A setting is read, in falling priority, from a command-line flag, a ``FOOTFALL_*``
environment variable, the TOML file (``footfall.toml`` in the data directory, or
``FOOTFALL_CONFIG``), and its default. The CLI builds its flags and ``footfall config``
builds its table from this class, so adding a field here is the whole job.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from footfall.enrich.exclusions import Exclusions

ENV_PREFIX = "FOOTFALL_"
CONFIG_FILE_NAME = "footfall.toml"

# A size DuckDB's memory_limit accepts; checked here so a typo is a clear error at start-up
# (and so the value can go into a SET statement, which takes no parameters).
_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=Path("footfall-data"),
        description="Directory holding the DuckDB file, the spool and the log.",
    )
    host: str = Field(default="127.0.0.1", description="Address `footfall serve` listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `footfall serve` listens on.")
    ingest_rate_limit: float = Field(
        default=20.0,
        ge=0,
        description="Ingest requests per second per client IP (token bucket refill); 0 turns it off.",
    )
    ingest_burst: int = Field(
        default=40, ge=1, description="Ingest token bucket size per client IP."
    )
    public_rate_per_10s: int = Field(
        default=60,
        ge=0,
        description="Requests per visitor IP in 10 s to the public endpoint /e/{trackingCode} (burst); 0 turns it off.",
    )
    public_rate_per_hour: int = Field(
        default=5000,
        ge=0,
        description="Requests per visitor IP in an hour to the public endpoint /e/{trackingCode}; 0 turns it off.",
    )
    server_api_track_per_minute: int = Field(
        default=1000,
        ge=0,
        description="POST /api/v1/track requests per minute per site secret key (seed 004); 0 turns it off.",
    )
    server_api_identify_per_minute: int = Field(
        default=500, ge=0, description="POST /api/v1/identify requests per minute per site secret key; 0 turns it off."
    )
    server_api_user_id_per_minute: int = Field(
        default=100, ge=0, description="GET /api/v1/user-id requests per minute per site secret key; 0 turns it off."
    )
    login_failures_per_15min: int = Field(
        default=5,
        ge=0,
        description="Failed dashboard sign-ins allowed per client IP and per account in 15 minutes, "
        "then 429; 0 turns the limit off.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated IPs or CIDRs whose X-Forwarded-For is believed. Empty trusts no one.",
    )
    spool_segment_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=4096,
        description="A spool segment is closed and handed to the writer at this size.",
    )
    spool_rotate_ms: int = Field(
        default=200,
        ge=10,
        description="A non-empty spool segment is closed after this long, bounding queryability lag.",
    )
    writer_batch_events: int = Field(
        default=50_000, ge=1, description="Most events the writer loads into the store in one transaction."
    )
    session_timeout_minutes: int = Field(
        default=30, ge=1, description="A visit ends after this long without activity."
    )
    demo_site: bool = Field(
        default=True,
        description="On the first start of an empty data directory, create site example.com and a token.",
    )
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    geoip_db: Path | None = Field(
        default=None,
        description="A MaxMind-format database (GeoLite2 Country/City, DB-IP, IPinfo); "
        "empty uses the bundled country data.",
    )
    duckdb_memory_limit: str | None = Field(
        default=None,
        description="Most memory DuckDB's buffer pool may use (e.g. 512MB, 2GB); past it DuckDB "
        "evicts cached data and spills to temporary files in the data directory. "
        "Empty: DuckDB's default, 80% of the machine's memory.",
    )
    exclude_ips: str = Field(
        default="", description="Comma-separated IPs or CIDRs whose hits no site counts."
    )
    exclude_countries: str = Field(
        default="", description="Comma-separated ISO country codes whose hits no site counts."
    )
    exclude_paths: str = Field(
        default="", description="Comma-separated path globs (e.g. /admin/*) no site counts."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        _parse_networks(value)
        return value

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _check_memory_limit(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not _MEMORY_SIZE.fullmatch(value.strip()):
            raise ValueError("duckdb_memory_limit must be a size such as 512MB, 2GB or 1.5GiB")
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be debug, info, warning or error")
        return value.lower()

    @field_validator("exclude_ips", "exclude_countries", "exclude_paths")
    @classmethod
    def _check_exclusions(cls, value: str, info: Any) -> str:
        items = split_list(value)
        kind = info.field_name.removeprefix("exclude_")
        Exclusions(**{kind: items})  # raises ValueError naming the bad item
        return value

    @cached_property
    def exclusions(self) -> Exclusions:
        return Exclusions(
            split_list(self.exclude_ips), split_list(self.exclude_countries), split_list(self.exclude_paths)
        )

    @cached_property
    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        return _parse_networks(self.trusted_proxies)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "footfall.duckdb"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "footfall.log"

    @property
    def control_socket(self) -> Path:
        return self.data_dir / "footfall.sock"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _parse_networks(value: str) -> tuple[IPNetwork, ...]:
    nets = []
    for part in value.split(","):
        part = part.strip()
        if part:
            nets.append(ipaddress.ip_network(part, strict=False))
    return tuple(nets)


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by FOOTFALL_CONFIG, else the data directory's footfall.toml."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_file_path()
        if path is None or not path.is_file():
            return {}
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        return {k: v for k, v in data.items() if k in Settings.model_fields}


# The data directory decides where the TOML file is, so it is resolved before the file is read.
_data_dir_override: Path | None = None


def config_file_path() -> Path | None:
    explicit = os.environ.get(ENV_PREFIX + "CONFIG")
    if explicit:
        return Path(explicit)
    data_dir = _data_dir_override or Path(os.environ.get(ENV_PREFIX + "DATA_DIR", "footfall-data"))
    return data_dir / CONFIG_FILE_NAME


def load_settings(**overrides: Any) -> Settings:
    """Settings with command-line overrides (None means "not given") on top of env and file."""
    global _data_dir_override
    given = {k: v for k, v in overrides.items() if v is not None}
    _data_dir_override = Path(given["data_dir"]) if "data_dir" in given else None
    try:
        return Settings(**given)
    finally:
        _data_dir_override = None


@dataclass(frozen=True)
class SettingDoc:
    name: str
    env: str
    flag: str
    default: str
    current: str
    description: str


def describe(settings: Settings) -> list[SettingDoc]:
    """The documented table of every setting, as `footfall config` prints it."""
    rows = []
    for name, field in Settings.model_fields.items():
        rows.append(
            SettingDoc(
                name=name,
                env=ENV_PREFIX + name.upper(),
                flag=cli_flag(name),
                default=str(field.default),
                current=str(getattr(settings, name)),
                description=field.description or "",
            )
        )
    return rows


def cli_flag(name: str) -> str:
    return "--" + name.replace("_", "-")
