"""Settings, read once from the environment at the edges (``app.py`` and ``cli.py``).

```
settings = Settings.from_env()             # AUTHBRIDGE_* variables
settings = Settings.from_env({"AUTHBRIDGE_DATA_DIR": "/tmp/ab"})   # tests pass a dict
settings.redirect_uri                      # "http://127.0.0.1:8000/oauth/callback"
```

| variable | default | accepts |
| --- | --- | --- |
| AUTHBRIDGE_DATA_DIR | ./data | a directory; holds the SQLite file and the generated key file |
| AUTHBRIDGE_DATABASE_URL | sqlite in the data dir | sqlite+aiosqlite:///PATH or postgresql+asyncpg://... |
| AUTHBRIDGE_ENCRYPTION_KEYS | (the key file) | kid:base64key[,kid:base64key...], first encrypts |
| AUTHBRIDGE_..._FILE | (none) | DATABASE_URL_FILE, ENCRYPTION_KEYS_FILE: a file holding the value |
| AUTHBRIDGE_PUBLIC_URL | http://127.0.0.1:8000 | the http(s) URL users reach AuthBridge at |
| AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS | false | true/false: allow outbound calls to loopback/private/link-local |
| AUTHBRIDGE_ALLOW_HTTP_HOSTS | (none) | comma-separated hosts that may be called over plain http |
| AUTHBRIDGE_ALLOWED_RETURN_ORIGINS | (none) | comma-separated origins `return_to` may point at |
| AUTHBRIDGE_HTTP_TIMEOUT | 10 | seconds for each call to a token or revocation endpoint |
| AUTHBRIDGE_BACKGROUND_TASKS | true | run the token refresher and webhook delivery inside the server |
| AUTHBRIDGE_REFRESH_INTERVAL | 30 | seconds between the background refresher's scans (each takes all that is due) |
| AUTHBRIDGE_REFRESH_CONCURRENCY | 32 | refreshes the background refresher runs at once, per process |
| AUTHBRIDGE_PROXY_CONNECT_TIMEOUT | 10 | seconds to connect to an upstream through the proxy |
| AUTHBRIDGE_PROXY_READ_TIMEOUT | 60 | seconds the proxy waits between bytes of an upstream answer |
| AUTHBRIDGE_CACHE_SYNC_INTERVAL | 0.5 | seconds between reads of the cache-invalidation log (staleness: 3 x this) |
| AUTHBRIDGE_HOOK_MODULES | (none) | comma-separated module prefixes whose hooks specs may name |
| AUTHBRIDGE_MAX_BODY | 1048576 | bytes: the largest request body any route but the proxy reads |
| AUTHBRIDGE_SIGN_IN_PER_MINUTE | 10 | console sign-in attempts per client address per minute (bursts of that many) |
| AUTHBRIDGE_SIGN_IN_GLOBAL_PER_MINUTE | 60 | console sign-in attempts per minute from all addresses together |
| AUTHBRIDGE_HOST / AUTHBRIDGE_PORT | 127.0.0.1 / 8000 | where `authbridge run` listens |
| AUTHBRIDGE_LOG_LEVEL | info | debug, info, warning, error |
| AUTHBRIDGE_LOG_FORMAT | text | text, or json: one JSON object per line (time, level, message, request id...) |
| AUTHBRIDGE_EVENT_RETENTION_DAYS | 30 | days events and their webhook deliveries are kept (0: forever) |
| AUTHBRIDGE_SHUTDOWN_DRAIN | 0 | seconds `/ready` answers 503 before the listener closes, on SIGTERM |
| AUTHBRIDGE_SHUTDOWN_TIMEOUT | 30 | seconds requests in flight (and refreshes) may take to finish on shutdown |
| AUTHBRIDGE_ADMIN_LISTEN | (none) | host:port: serve the admin surface (API, console, proxy, metrics) there only |
| AUTHBRIDGE_METRICS_TOKEN | (none) | bearer token of `GET /metrics` (or _FILE); metrics on when set (or ADMIN_LISTEN) |
| AUTHBRIDGE_CLIENT_METADATA_LOOPBACK_HTTP | false | true: client ID metadata document at loopback http PUBLIC_URL |
| AUTHBRIDGE_OTEL | false | true: OpenTelemetry spans (needs `authbridge[otel]`; exporter from the OTEL_* variables) |
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from pathlib import Path
from urllib.parse import urlsplit

from authbridge.errors import ConfigError

__all__ = ["Settings", "listen_address"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_HOST = re.compile(r"[A-Za-z0-9.-]+|\[?[0-9A-Fa-f:.]+\]?")


def _bool(env: typing.Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} has value {raw!r}: not a valid boolean (use true/false, 1/0, yes/no, on/off)")


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+/?")


def _seconds(env: typing.Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 600:
        raise ConfigError(f"{name} has value {raw!r}: use a number of seconds between 0 and 600")
    return value


def _count(env: typing.Mapping[str, str], name: str, default: int, *, low: int, high: int, unit: str) -> int:
    raw = env.get(name)
    if not raw:
        return default
    value = raw.strip()
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise ConfigError(f"{name} has value {raw!r}: use a whole number of {unit} from {low} to {high}")
    return int(value)


def _list(env: typing.Mapping[str, str], name: str, pattern: re.Pattern[str], accepts: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())
    for item in items:
        if not pattern.fullmatch(item):
            raise ConfigError(f"{name} has an entry {item!r}: use a comma-separated list of {accepts}")
    return items


def _secret(env: typing.Mapping[str, str], name: str) -> str | None:
    """``NAME``, or the content of the file ``NAME_FILE`` names (a container secret); never both."""
    value = env.get(name) or None
    path = env.get(f"{name}_FILE")
    if not path:
        return value
    if value:
        raise ConfigError(f"{name} and {name}_FILE are both set: set one of them")
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{name}_FILE names {path!r}, which cannot be read: {reason}") from None
    if not value:
        raise ConfigError(f"{name}_FILE names {path!r}, which is empty")
    return value


def listen_address(raw: str, name: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) as a pair; ConfigError naming ``name`` otherwise."""
    host, sep, port = raw.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not _HOST.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name} has value {raw!r}: use host:port, such as 127.0.0.1:9000")
    return host, int(port)


def _listen(raw: str | None, name: str) -> tuple[str, int] | None:
    return listen_address(raw, name) if raw and raw.strip() else None


def _metrics_token(env: typing.Mapping[str, str]) -> str | None:
    token = _secret(env, "AUTHBRIDGE_METRICS_TOKEN")
    if token is not None and len(token) < 16:
        raise ConfigError("AUTHBRIDGE_METRICS_TOKEN is shorter than 16 characters: use a long random value")
    return token


def _database_url(raw: str) -> str:
    for prefix, replacement in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if raw.startswith(prefix):
            return replacement + raw[len(prefix) :]
    if raw.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite:///")):
        return raw
    scheme = raw.split("://", 1)[0] if "://" in raw else "(none)"
    raise ConfigError(
        f"AUTHBRIDGE_DATABASE_URL has scheme {scheme!r}: use sqlite+aiosqlite:///PATH or "
        "postgresql+asyncpg://USER@HOST:PORT/DB"
    )


def _public_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            f"AUTHBRIDGE_PUBLIC_URL has value {raw!r}: use an http(s) URL such as https://auth.example.com"
        )
    return raw.rstrip("/")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting AuthBridge reads; built once by :meth:`from_env`."""

    data_dir: Path
    database_url: str = dataclasses.field(repr=False)  # may hold the database password
    encryption_keys: str | None = dataclasses.field(default=None, repr=False)
    public_url: str = "http://127.0.0.1:8000"
    allow_private_networks: bool = False
    allow_http_hosts: tuple[str, ...] = ()
    hook_modules: tuple[str, ...] = ()
    allowed_return_origins: tuple[str, ...] = ()
    http_timeout: float = 10.0
    max_upstream_body: int = 1024 * 1024
    background_tasks: bool = True
    refresh_interval: float = 30.0
    refresh_concurrency: int = 32
    proxy_connect_timeout: float = 10.0
    proxy_read_timeout: float = 60.0
    cache_sync_interval: float = 0.5
    max_body: int = 1024 * 1024
    sign_in_per_minute: int = 10
    sign_in_global_per_minute: int = 60
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    log_format: str = "text"
    max_parameter_length: int = 2048
    event_retention_days: int = 30
    shutdown_drain: int = 0
    shutdown_timeout: int = 30
    #: Where the admin surface listens when it is apart from the public one: (host, port), or None.
    admin_listen: tuple[str, int] | None = None
    metrics_token: str | None = dataclasses.field(default=None, repr=False)
    otel: bool = False
    #: Serve (and use) the client ID metadata document at an ``http://`` loopback public URL too.
    client_metadata_loopback_http: bool = False

    @classmethod
    def from_env(cls, env: typing.Mapping[str, str] | None = None) -> Settings:
        """Read the ``AUTHBRIDGE_*`` variables; a bad value raises ConfigError naming the variable."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("AUTHBRIDGE_DATA_DIR") or "./data")
        raw_db = _secret(env, "AUTHBRIDGE_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'authbridge.db'}"
        port_raw = env.get("AUTHBRIDGE_PORT") or "8000"
        if not port_raw.isascii() or not port_raw.isdigit() or not 0 < int(port_raw) < 65536:
            raise ConfigError(f"AUTHBRIDGE_PORT has value {port_raw!r}: use a port number from 1 to 65535")
        level_raw = env.get("AUTHBRIDGE_LOG_LEVEL") or "info"
        level = level_raw.strip().lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ConfigError(f"AUTHBRIDGE_LOG_LEVEL has value {level_raw!r}: use one of debug, info, warning, error")
        log_format = (env.get("AUTHBRIDGE_LOG_FORMAT") or "text").strip().lower()
        if log_format not in {"text", "json"}:
            raise ConfigError(f"AUTHBRIDGE_LOG_FORMAT has value {env.get('AUTHBRIDGE_LOG_FORMAT')!r}: use text or json")
        return cls(
            data_dir=data_dir,
            database_url=_database_url(raw_db),
            encryption_keys=_secret(env, "AUTHBRIDGE_ENCRYPTION_KEYS"),
            public_url=_public_url(env.get("AUTHBRIDGE_PUBLIC_URL") or "http://127.0.0.1:8000"),
            allow_private_networks=_bool(env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS", False),
            allow_http_hosts=tuple(
                h.strip("[]").lower()
                for h in _list(env, "AUTHBRIDGE_ALLOW_HTTP_HOSTS", _HOST, "host names or IP addresses, no port")
            ),
            hook_modules=_list(env, "AUTHBRIDGE_HOOK_MODULES", _MODULE, "Python module names such as myhooks.crm"),
            allowed_return_origins=tuple(
                o.rstrip("/").lower()
                for o in _list(
                    env, "AUTHBRIDGE_ALLOWED_RETURN_ORIGINS", _ORIGIN, "origins such as https://app.example.com"
                )
            ),
            http_timeout=_seconds(env, "AUTHBRIDGE_HTTP_TIMEOUT", 10.0),
            max_upstream_body=_count(
                env, "AUTHBRIDGE_MAX_UPSTREAM_BODY", 1024 * 1024, low=1024, high=256 * 1024 * 1024, unit="bytes"
            ),
            background_tasks=_bool(env, "AUTHBRIDGE_BACKGROUND_TASKS", True),
            refresh_interval=_seconds(env, "AUTHBRIDGE_REFRESH_INTERVAL", 30.0),
            refresh_concurrency=_count(env, "AUTHBRIDGE_REFRESH_CONCURRENCY", 32, low=1, high=1024, unit="refreshes"),
            proxy_connect_timeout=_seconds(env, "AUTHBRIDGE_PROXY_CONNECT_TIMEOUT", 10.0),
            proxy_read_timeout=_seconds(env, "AUTHBRIDGE_PROXY_READ_TIMEOUT", 60.0),
            cache_sync_interval=_seconds(env, "AUTHBRIDGE_CACHE_SYNC_INTERVAL", 0.5),
            max_body=_count(env, "AUTHBRIDGE_MAX_BODY", 1024 * 1024, low=1, high=2**40, unit="bytes"),
            sign_in_per_minute=_count(env, "AUTHBRIDGE_SIGN_IN_PER_MINUTE", 10, low=1, high=100_000, unit="attempts"),
            sign_in_global_per_minute=_count(
                env, "AUTHBRIDGE_SIGN_IN_GLOBAL_PER_MINUTE", 60, low=1, high=1_000_000, unit="attempts"
            ),
            host=env.get("AUTHBRIDGE_HOST") or "127.0.0.1",
            port=int(port_raw),
            log_level=level,
            log_format=log_format,
            max_parameter_length=_count(
                env, "AUTHBRIDGE_MAX_PARAMETER_LENGTH", 2048, low=1, high=1024 * 1024, unit="characters"
            ),
            event_retention_days=_count(env, "AUTHBRIDGE_EVENT_RETENTION_DAYS", 30, low=0, high=36500, unit="days"),
            shutdown_drain=_count(env, "AUTHBRIDGE_SHUTDOWN_DRAIN", 0, low=0, high=600, unit="seconds"),
            shutdown_timeout=_count(env, "AUTHBRIDGE_SHUTDOWN_TIMEOUT", 30, low=1, high=3600, unit="seconds"),
            admin_listen=_listen(env.get("AUTHBRIDGE_ADMIN_LISTEN"), "AUTHBRIDGE_ADMIN_LISTEN"),
            metrics_token=_metrics_token(env),
            otel=_bool(env, "AUTHBRIDGE_OTEL", False),
            client_metadata_loopback_http=_bool(env, "AUTHBRIDGE_CLIENT_METADATA_LOOPBACK_HTTP", False),
        )

    @property
    def metrics_enabled(self) -> bool:
        """Whether metrics are collected: ``GET /metrics`` has a token, or is served on the admin listener only."""
        return self.metrics_token is not None or self.admin_listen is not None

    @property
    def redirect_uri(self) -> str:
        """The OAuth redirect URI to register with providers: one per deployment."""
        return f"{self.public_url}/oauth/callback"

    @property
    def client_metadata_url(self) -> str | None:
        """AuthBridge's client ID metadata document URL (its OAuth ``client_id`` where servers accept one), or None.

        Only an https public URL qualifies (an authorization server fetches the document from there),
        or an http loopback one when AUTHBRIDGE_CLIENT_METADATA_LOOPBACK_HTTP is on.
        """
        parts = urlsplit(self.public_url)
        loopback = parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK | {"::1"}
        if parts.scheme == "https" or (loopback and self.client_metadata_loopback_http):
            return f"{self.public_url}/oauth/client-metadata.json"
        return None

    @property
    def key_file(self) -> Path:
        """Where the generated key ring lives when AUTHBRIDGE_ENCRYPTION_KEYS is not set."""
        return self.data_dir / "master.key"

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")

    def allow_http(self, host: str) -> bool:
        """Whether plain http may be used to reach ``host``."""
        host = host.strip("[]").lower()
        return host in self.allow_http_hosts or (self.allow_private_networks and host in _LOOPBACK)

    def return_origin_allowed(self, origin: str) -> bool:
        """Whether the OAuth callback may redirect the browser to this origin (``scheme://host[:port]``).

        AuthBridge's own origin (the console) always may.
        """
        origin = origin.rstrip("/").lower()
        own = urlsplit(self.public_url)
        return origin in self.allowed_return_origins or origin == f"{own.scheme}://{own.netloc}".lower()

    def hook_allowed(self, reference: str) -> bool:
        """Whether a ``module:function`` hook comes from an allowed module."""
        module = reference.partition(":")[0]
        return any(module == m or module.startswith(m + ".") for m in self.hook_modules)
