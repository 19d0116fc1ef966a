"""One typed configuration object for every SyncroX process.

Values come from four layers; each later layer overrides the earlier ones:

1. the defaults below (the seed's ports, host 127.0.0.1, ``./data``);
2. a TOML file (``--config PATH`` or ``SYNCROX_CONFIG``), whose tables mirror the sections
   (``host = "..."``, ``[ports] chat = 9009``, ``[rooms] room_idle_expiry_s = 3600``);
3. ``SYNCROX_*`` environment variables, named after the dotted key in upper case with dots
   turned into underscores (``ports.chat`` → ``SYNCROX_PORTS_CHAT``);
4. command-line flags (``--host``, ``--chat-port``, ``--set rooms.room_idle_expiry_s=60``).

Units live in field names (``_s`` seconds, ``_ms`` milliseconds, ``_bytes``) so that a value
is never read with the wrong unit. A port of 0 asks the OS for any free port.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncrox.errors import ConfigError

ENV_PREFIX = "SYNCROX_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"  # the TOML file's path
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Ports:
    """Listening ports, keyed by the service names used in ``ports.json``."""

    rooms: int = 9013
    chat: int = 9009
    files_tcp: int = 9010
    files_udp: int = 9011
    collab: int = 9011
    exec: int = 9012
    ui: int = 8501


@dataclass(frozen=True)
class TcpLimits:
    """Bounds every TCP service applies to every connection."""

    max_line_bytes: int = 4096
    idle_timeout_s: float = 300.0
    max_connections: int = 1024
    # A peer that keeps sending lines we must refuse is closed after this many in a row.
    max_consecutive_errors: int = 10
    send_timeout_s: float = 10.0


@dataclass(frozen=True)
class RoomsConfig:
    """Room manager policy."""

    # A room with no members is deleted once it has seen no activity for this long.
    room_idle_expiry_s: float = 24 * 3600.0
    # A membership (token) unused for this long, and not held by a live connection, lapses.
    member_idle_expiry_s: float = 6 * 3600.0
    expiry_sweep_interval_s: float = 60.0
    # Wrong room codes cost one token from a per-address bucket; successful joins are free,
    # so classes behind one NAT are not punished, while guessing 9000 codes takes hours.
    join_failure_burst: int = 5
    join_failure_refill_s: float = 10.0
    create_burst: int = 20
    create_refill_s: float = 3.0
    # Rooms an address created that still exist (counted since the server started): one
    # address must not hold all 9000 codes.
    max_live_rooms_per_address: int = 200
    max_members_per_room: int = 64


KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class SandboxConfig:
    """Limits of every code-execution container (docs/SECURITY.md explains each one)."""

    image: str = "syncrox-sandbox:latest"
    # Empty: the engine $DOCKER_HOST names, else the default local socket.
    docker_host: str = ""
    memory_limit_bytes: int = 256 * MIB  # also the memory+swap limit: no swap at all
    cpus: float = 0.5
    pids_limit: int = 64
    workdir_size_bytes: int = 16 * MIB  # the tmpfs at /sandbox, the only writable place
    shm_size_bytes: int = 1 * MIB
    open_files_limit: int = 256
    file_size_limit_bytes: int = 16 * MIB
    # Per stream (stdout, stderr, compiler output); capped inside the container.
    output_limit_bytes: int = 64 * KIB
    compile_time_limit_s: float = 15.0
    run_time_limit_s: float = 5.0
    # Idle containers started ahead of time; each serves one job, then is destroyed. 0: none.
    pool_size: int = 2
    # A container's main process exits (and the engine removes it) after this long, so even a
    # server killed with -9 leaves nothing running for longer.
    container_lifetime_s: float = 600.0
    # Backstop for one engine API call; wall time of programs is enforced by cancel scopes.
    docker_api_timeout_s: float = 30.0
    # While the engine is unreachable, it is probed again at most this often.
    engine_retry_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.compile_time_limit_s <= 0 or self.run_time_limit_s <= 0:
            raise ConfigError("exec.sandbox: cpus and time limits must be positive")
        if self.memory_limit_bytes < 16 * MIB or self.pids_limit < 16:
            raise ConfigError("exec.sandbox: at least 16 MiB of memory and 16 pids are needed")
        if self.output_limit_bytes < 1 or self.workdir_size_bytes < 1 * MIB:
            raise ConfigError("exec.sandbox: output limit >= 1 byte, work dir >= 1 MiB")
        if self.container_lifetime_s < self.compile_time_limit_s + self.run_time_limit_s + 60:
            raise ConfigError(
                "exec.sandbox.container_lifetime_s must exceed both time limits plus 60 s"
            )


@dataclass(frozen=True)
class ExecConfig:
    """The code-execution service (TCP 9012) and its sandbox."""

    max_code_bytes: int = 64 * KIB
    max_stdin_bytes: int = 1 * MIB
    max_concurrent_runs: int = 2
    # Requests beyond running + queued are answered BUSY at once.
    max_queued_runs: int = 16
    history_per_room: int = 500
    # What a room's history keeps of a run's stdin: its first bytes, like each output stream
    # (a longer one is marked truncated `stdin`); 500 runs x 64 KiB bounds it per room.
    history_stdin_bytes: int = 64 * KIB
    history_page_max: int = 100
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)

    def __post_init__(self) -> None:
        if self.max_concurrent_runs < 1 or self.history_page_max < 1:
            raise ConfigError("exec: max_concurrent_runs and history_page_max must be >= 1")
        if self.history_stdin_bytes < 0:
            raise ConfigError("exec.history_stdin_bytes must be >= 0")


@dataclass(frozen=True)
class ChatConfig:
    """Chat service policy (see docs/SECURITY.md for why each bound is what it is)."""

    # Images arrive as one base64 line, decoded to disk as they stream in.
    max_image_bytes: int = 5 * 1024 * 1024
    image_upload_timeout_s: float = 60.0
    # Uploads beyond this wait (TCP backpressure) instead of filling the disk in parallel.
    max_concurrent_uploads: int = 8
    max_concurrent_downloads: int = 16
    # Per user in a room: a burst, then one more every refill period.
    msg_burst: int = 10
    msg_refill_s: float = 0.2
    image_burst: int = 3
    image_refill_s: float = 10.0
    # Typing notices are relayed at most this often per connection; extras are dropped.
    typing_interval_s: float = 2.0
    history_max_limit: int = 100
    # A client's queue of broadcasts it has not taken yet; beyond it, it is disconnected.
    outbox_max_bytes: int = 1024 * 1024
    # Replies to a client's own requests wait (it stops being read) above this much queued.
    outbox_reply_threshold_bytes: int = 64 * 1024
    max_clients_per_room: int = 256
    orphan_sweep_interval_s: float = 3600.0


@dataclass(frozen=True)
class StoreConfig:
    # False runs SQLite on the event loop instead of a worker thread: for tests in virtual
    # time (MockClock autojump leaps over deadlines while a thread runs) and tiny setups.
    sqlite_worker_thread: bool = True


@dataclass(frozen=True)
class FilesConfig:
    """File Control (TCP) and File Data (reliable UDP) policy; docs/SECURITY.md explains."""

    max_file_bytes: int = 1 << 30
    max_sessions: int = 256  # transfers in progress on the whole server
    max_sessions_per_room: int = 16
    # Files a room may hold: LIST answers with all of them at once, from the database
    # worker every service shares, so their number is bounded too.
    max_files_per_room: int = 1000
    max_mss_bytes: int = 60 * 1024  # the largest chunk a client may negotiate
    allow_binary_codec: bool = True
    recv_buffer_bytes: int = 2 << 20  # per receiving session: bounds rwnd and memory
    rto_min_ms: float = 200.0
    rto_max_ms: float = 30_000.0
    max_retries: int = 8  # timeouts in a row, with no answer at all, before giving up
    session_idle_s: float = 60.0  # a session hearing nothing valid this long is dropped
    session_stall_s: float = 300.0  # a session whose data has not moved this long is dropped
    linger_s: float = 60.0  # TIME_WAIT after storing an upload (re-answers a lost FIN-ACK)
    partial_expiry_s: float = 3600.0  # how long an interrupted upload can be resumed
    max_partials: int = 64
    max_events_per_transfer: int = 50_000  # congestion events kept per transfer
    # Tickets (UPLOAD, DOWNLOAD) per user in a room: a burst, then one per refill period.
    ticket_burst: int = 32
    ticket_refill_s: float = 0.5
    # EVENTS report bytes per user in a room (parsing them costs CPU): a burst, then this
    # many per second. The burst is raised to hold at least one maximal report.
    report_burst_bytes: int = 32 << 20
    report_bytes_per_s: float = 1_000_000.0
    transfers_listed: int = 50
    # False: verify/fsync/commit on the event loop (tests in virtual time, see store).
    disk_worker_thread: bool = True

    def __post_init__(self) -> None:
        if self.ticket_burst < 1 or self.ticket_refill_s <= 0 or self.report_bytes_per_s <= 0:
            raise ConfigError("files: ticket_burst >= 1, ticket_refill_s > 0, report rate > 0")


@dataclass(frozen=True)
class CollabConfig:
    """Collaborative editor policy (docs/SECURITY.md explains each bound)."""

    # The text of one document, in UTF-8 bytes: an edit that would grow it beyond is refused.
    max_document_bytes: int = 1 * MIB
    # The whole document encoded (text, history, anything else a client put in it).
    max_state_bytes: int = 4 * MIB
    # One YMSG body, hence every update, sync step or awareness message a client sends.
    max_update_bytes: int = 2 * MIB
    max_messages_per_frame: int = 4096
    max_clients_per_document: int = 128
    # Awareness (who is here, cursors, typing): a state not renewed this long is dropped.
    awareness_timeout_s: float = 30.0
    max_awareness_state_bytes: int = 4 * KIB
    max_awareness_clients_per_connection: int = 4
    # Awareness messages a connection may send: a burst, then one per refill period.
    awareness_burst: int = 50
    awareness_refill_s: float = 0.02
    # Frames a document has received but not yet applied; beyond, readers wait.
    inbox_frames: int = 256
    inbox_bytes: int = 16 * MIB  # frames' bytes waiting for a document (one always fits)
    # What a client has not yet taken of what the server sends it; beyond, it is cut off
    # (nothing is lost: it resyncs by state vector when it reconnects).
    outbox_max_bytes: int = 16 * MIB
    # The update log is folded into a snapshot after this many entries or bytes.
    compact_every_updates: int = 500
    compact_log_bytes: int = 4 * MIB
    # A document nobody has open is unloaded from memory after this long.
    unload_grace_s: float = 10.0

    def __post_init__(self) -> None:
        if min(self.max_document_bytes, self.max_update_bytes, self.max_messages_per_frame) < 1:
            raise ConfigError("collab: document, update and frame limits must be positive")
        if self.max_state_bytes < self.max_document_bytes:
            raise ConfigError("collab.max_state_bytes must be at least max_document_bytes")
        if self.awareness_timeout_s <= 0 or self.compact_every_updates < 1:
            raise ConfigError("collab: awareness_timeout_s and compact_every_updates > 0")


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    ports: Ports = field(default_factory=Ports)
    tcp: TcpLimits = field(default_factory=TcpLimits)
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    exec: ExecConfig = field(default_factory=ExecConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    collab: CollabConfig = field(default_factory=CollabConfig)

    def with_overrides(self, overrides: Mapping[str, object]) -> Config:
        """A copy with dotted keys replaced (values already typed or strings to convert)."""
        built: Config = _build(type(self), _nest(overrides), base=self, prefix="")
        return built


# --------------------------------------------------------------------------------------
# Loading


def load_config(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cli_overrides: Mapping[str, object] | None = None,
) -> Config:
    """Build the config from defaults, then TOML, then the environment, then the CLI."""
    environ = os.environ if environ is None else environ
    config = Config()
    file_path = config_file or _env_config_path(environ)
    if file_path is not None:
        config = config.with_overrides(_flatten(_read_toml(file_path)))
    config = config.with_overrides(_env_overrides(environ))
    if cli_overrides:
        config = config.with_overrides(cli_overrides)
    validate(config)
    # Absolute, so that a child process (the UI) or a later chdir sees the same directory.
    return dataclasses.replace(config, data_dir=config.data_dir.expanduser().absolute())


def config_keys(cls: type[Any] = Config, prefix: str = "") -> dict[str, Any]:
    """Every dotted key of the config mapped to its annotated type."""
    keys: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            keys.update(config_keys(typing.cast(type[Any], hint), f"{prefix}{f.name}."))
        else:
            keys[prefix + f.name] = hint
    return keys


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace(".", "_")


def environment_of(config: Config) -> dict[str, str]:
    """``SYNCROX_*`` variables that make ``load_config`` rebuild ``config`` from defaults:
    how ``run`` hands its effective settings (file, environment and ``--set`` alike) to a
    child process such as the web UI."""
    defaults = Config()
    variables: dict[str, str] = {}
    for key in config_keys():
        value = _get(config, key)
        if value is None or value == _get(defaults, key):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = repr(value) if isinstance(value, float) else str(value)
        variables[env_name(key)] = text
    return variables


def parse_assignment(text: str) -> tuple[str, str]:
    """Parse a ``--set key=value`` argument."""
    key, sep, value = text.partition("=")
    if not sep or key.strip() not in config_keys():
        raise ConfigError(f"--set expects KEY=VALUE with a known key, got {text!r}")
    return key.strip(), value


# Numbers where 0 means "none" and is a sensible setting; every other limit, timeout and
# interval must be above 0 (a zero buffer, burst or timeout silently breaks its feature,
# a zero sweep interval spins) and every number must be finite (NaN passes comparisons).
ZERO_ALLOWED = frozenset(
    {"exec.sandbox.pool_size", "exec.max_queued_runs", "files.linger_s", "collab.unload_grace_s"}
)


def validate(config: Config) -> None:
    for name, port in dataclasses.asdict(config.ports).items():
        if not 0 <= port <= 65535:
            raise ConfigError(f"ports.{name} must be 0..65535, got {port}")
    if config.log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    for key in config_keys():
        value = _get(config, key)
        if key.startswith("ports.") or not isinstance(value, int | float):
            continue
        if isinstance(value, bool):
            continue
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}")
        if value < 0 or (value == 0 and key not in ZERO_ALLOWED):
            floor = "must not be negative" if key in ZERO_ALLOWED else "must be above 0"
            raise ConfigError(f"{key} {floor}, got {value}")
    if config.files.rto_max_ms < config.files.rto_min_ms:
        raise ConfigError("files.rto_max_ms must not be below files.rto_min_ms")


def _env_config_path(environ: Mapping[str, str]) -> Path | None:
    raw = environ.get(CONFIG_ENV)
    return Path(raw) if raw else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _env_overrides(environ: Mapping[str, str]) -> dict[str, object]:
    return {key: environ[env_name(key)] for key in config_keys() if env_name(key) in environ}


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _nest(flat: Mapping[str, object]) -> dict[str, Any]:
    known = config_keys()
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in known:
            raise ConfigError(f"unknown config key {key!r}")
        *sections, leaf = key.split(".")
        table = nested
        for section in sections:
            table = table.setdefault(section, {})
        table[leaf] = value
    return nested


def _build(cls: type[Any], values: Mapping[str, Any], *, base: Any, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    changes: dict[str, Any] = {}
    for name, value in values.items():
        hint = hints[name]
        current = getattr(base, name)
        if dataclasses.is_dataclass(hint):
            changes[name] = _build(
                typing.cast(type[Any], hint), value, base=current, prefix=f"{prefix}{name}."
            )
        else:
            changes[name] = _coerce(prefix + name, hint, value)
    return dataclasses.replace(base, **changes)


def _coerce(key: str, hint: Any, value: object) -> object:
    """Turn a TOML value or a string from the environment / CLI into the field's type."""
    if isinstance(hint, types.UnionType):  # e.g. ``int | None``: try the concrete member
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    try:
        if hint is bool:
            return _to_bool(value)
        if hint is Path:
            return Path(str(value))
        if hint in (int, float) and isinstance(value, bool):
            raise ValueError("a boolean is not a number")
        if hint is int and isinstance(value, float):
            raise ValueError("expected a whole number")
        if hint in (int, float, str):
            return hint(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: cannot use {value!r} ({exc})") from exc
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _get(config: Config, key: str) -> object:
    value: object = config
    for part in key.split("."):
        value = getattr(value, part)
    return value
