"""Where the services are: a host plus a port per service.

Ports come, most specific first, from explicit flags, a ``ports.json`` written by
``syncrox-trio run`` (``--ports-file``), then the config (TOML / ``SYNCROX_*`` / defaults).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from syncrox.config import Config
from syncrox.errors import ConfigError
from syncrox.services.ui import connect_host

MAX_PORTS_FILE_BYTES = 4096


@dataclass(frozen=True)
class Endpoints:
    host: str
    ports: Mapping[str, int]

    def port(self, service: str) -> int:
        port = self.ports.get(service)
        if not port:
            raise ConfigError(f"no port known for the {service} service (is it running?)")
        return port

    @classmethod
    def resolve(
        cls,
        config: Config,
        *,
        ports_file: Path | None = None,
        explicit_ports: Mapping[str, int] | None = None,
    ) -> Endpoints:
        # A ports file lists every service that runs: one it does not list is not running,
        # and must not be looked for on its default port (another server may be there).
        ports = read_ports_file(ports_file) if ports_file else dict(asdict(config.ports))
        ports.update(explicit_ports or {})
        return cls(connect_host(config.host), ports)


def read_ports_file(path: Path) -> dict[str, int]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_PORTS_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read ports file {path}: {exc.strerror}") from exc
    try:
        if len(raw) > MAX_PORTS_FILE_BYTES:
            raise ValueError("file too large")
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return {str(k): _port(v) for k, v in data.items()}
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise ConfigError(f"ports file {path} is not a ports.json: {exc}") from exc


def _port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"bad port {value!r}")
    return value
