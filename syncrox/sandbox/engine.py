"""Blocking calls to the Docker engine (the docker SDK), for worker threads only.

Nothing here is async: ``syncrox.sandbox.runner`` calls each function through
``trio.to_thread.run_sync`` and owns every timeout and cancellation. Every engine failure is
raised as ``EngineError`` with a one-line reason, so the caller can answer
SANDBOX_UNAVAILABLE without knowing the SDK's exception zoo.

``container_options`` is the single place where the security profile of a container is
written down (docs/SECURITY.md lists the same flags); it is pure and tested on its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.constants
import docker.errors
import docker.utils
import requests
from docker.types import Ulimit

from syncrox.config import SandboxConfig
from syncrox.errors import SyncroxError
from syncrox.sandbox.driver import ENVIRONMENT, WORKDIR

DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"
MIN_API_VERSION = "1.24"  # spoken by every engine; only used to ask for the engine's own
SANDBOX_LABEL = "syncrox.sandbox"
OWNER_LABEL = "syncrox.sandbox.owner"
VERSION_LABEL = "syncrox.sandbox.version"
SANDBOX_USER = "1000:1000"
READ_CHUNK_BYTES = 65536
WRITE_CHUNK_BYTES = 65536
REMOVAL_WAIT_S = 10.0
# Linux OOM-killer preference: under host memory pressure, sandboxes die before the host.
OOM_SCORE_ADJ = 500


def _client(config: SandboxConfig, version: str) -> docker.DockerClient:
    """A client (no I/O yet) for the configured engine, else the one $DOCKER_HOST names."""
    timeout = int(max(1.0, config.docker_api_timeout_s))
    if config.docker_host:
        return docker.DockerClient(base_url=config.docker_host, version=version, timeout=timeout)
    return docker.from_env(version=version, timeout=timeout)


def engine_url(config: SandboxConfig) -> str:
    return config.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE_URL


def _preflight(url: str, timeout_s: float) -> None:
    """Connect once with our own socket, closed whatever happens. The SDK leaves its socket
    open when a connection fails, which would surface later as a ResourceWarning."""
    scheme, _, rest = url.partition("://")
    if scheme in ("unix", "http+unix"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout_s)
            probe.connect(rest if rest.startswith("/") else "/" + rest)
    elif scheme in ("tcp", "http", "https"):
        host, _, port = rest.rstrip("/").rpartition(":")
        with socket.create_connection((host.strip("[]"), int(port or 2375)), timeout_s):
            pass


def _negotiated(offered: str) -> str:
    """The newest API version both the engine and this SDK speak."""
    ours = docker.constants.DEFAULT_DOCKER_API_VERSION
    return offered if docker.utils.version_lt(offered, ours) else ours


class EngineError(SyncroxError):
    """The Docker engine could not be reached or refused a call."""


@contextlib.contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Turn whatever the SDK raises into ``EngineError("<what>: <reason>")``."""
    try:
        yield
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise EngineError(f"{what}: {reason[:300]}") from exc


def container_options(
    config: SandboxConfig, *, name: str, labels: Mapping[str, str]
) -> dict[str, Any]:
    """Keyword arguments of ``containers.create`` for one sandbox container: every limit."""
    return {
        "image": config.image,
        # The main process only keeps the container alive; jobs run as `docker exec`. It
        # ends by itself after the lifetime, and auto_remove then deletes the container.
        "command": ["sleep", str(int(config.container_lifetime_s))],
        "name": name,
        "labels": dict(labels),
        "hostname": "sandbox",
        "user": SANDBOX_USER,
        "working_dir": WORKDIR,
        "environment": list(ENVIRONMENT),
        "network_mode": "none",
        "mem_limit": config.memory_limit_bytes,
        "memswap_limit": config.memory_limit_bytes,  # equal: no swap on top of memory
        "nano_cpus": int(config.cpus * 1e9),
        "pids_limit": config.pids_limit,
        "read_only": True,
        "tmpfs": {
            WORKDIR: f"rw,exec,nosuid,nodev,size={config.workdir_size_bytes},"
            "uid=1000,gid=1000,mode=0700"
        },
        "shm_size": config.shm_size_bytes,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "init": True,
        "ulimits": [
            Ulimit(name="nofile", soft=config.open_files_limit, hard=config.open_files_limit),
            Ulimit(
                name="fsize", soft=config.file_size_limit_bytes, hard=config.file_size_limit_bytes
            ),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "oom_score_adj": OOM_SCORE_ADJ,
        "auto_remove": True,
        "detach": True,
    }


@dataclass(frozen=True)
class EngineInfo:
    server_version: str
    api_version: str
    image_id: str | None
    image_version: str | None


class ExecStream:
    """The hijacked connection of one ``docker exec``: we write its stdin, read its output.

    ``abort`` may be called from another thread while a read or write blocks: it shuts the
    socket down, which wakes them, and never takes a buffer lock. ``close`` releases the
    objects once no thread uses them any more.
    """

    def __init__(self, exec_id: str, sock_io: Any) -> None:
        self.exec_id = exec_id
        self._io = sock_io
        self._sock: socket.socket = getattr(sock_io, "_sock", sock_io)
        self._sock.settimeout(None)  # wall time is the caller's cancel scope, not a socket timeout
        self._response: Any = getattr(sock_io, "_response", None)
        self._reader = self._buffered_reader(sock_io)

    def _buffered_reader(self, sock_io: Any) -> Any:
        # The HTTP layer may already hold the first output bytes (read together with the
        # upgrade headers) in its buffer; reading the raw socket would lose them.
        with contextlib.suppress(AttributeError):
            fp = self._response.raw._fp.fp
            if getattr(fp, "raw", None) is sock_io:
                return fp
        return sock_io

    def write_stdin(self, data: bytes) -> None:
        """Send ``data`` then end the stdin; a program that exits without reading is fine."""
        with contextlib.suppress(OSError, ValueError):
            view = memoryview(data)
            for start in range(0, len(view), WRITE_CHUNK_BYTES):
                self._sock.sendall(view[start : start + WRITE_CHUNK_BYTES])
            self._sock.shutdown(socket.SHUT_WR)

    def read_chunk(self) -> bytes:
        """Up to ``READ_CHUNK_BYTES`` of output; ``b""`` at the end or after ``abort``."""
        try:
            data: bytes = self._reader.read1(READ_CHUNK_BYTES)
        except (OSError, ValueError):
            return b""
        return data

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for closable in (self._reader, self._io, self._response, self._sock):
            with contextlib.suppress(Exception):
                closable.close()


class Engine:
    """One connection to the engine (the SDK client is safe to share between threads)."""

    def __init__(self, client: docker.DockerClient, config: SandboxConfig) -> None:
        self.client = client
        self.config = config

    @classmethod
    def connect(cls, config: SandboxConfig) -> Engine:
        """Negotiate the API version, then connect. Not ``version="auto"``: when that fails
        inside the SDK's constructor, its socket is left open (a ResourceWarning)."""
        with engine_errors("cannot reach the Docker engine"):
            _preflight(engine_url(config), config.docker_api_timeout_s)
            probe = _client(config, MIN_API_VERSION)
            try:
                server = probe.api.version(api_version=False)
            finally:
                probe.close()
            offered = str(server.get("ApiVersion", MIN_API_VERSION))
            client = _client(config, _negotiated(offered))
        return cls(client, config)

    def close(self) -> None:
        self.client.close()

    def info(self) -> EngineInfo:
        with engine_errors("engine version"):
            version = self.client.version()
        image_id, image_version = self.image_info(self.config.image)
        return EngineInfo(
            str(version.get("Version", "?")),
            str(version.get("ApiVersion", "?")),
            image_id,
            image_version,
        )

    def image_info(self, image: str) -> tuple[str | None, str | None]:
        """``(id, version label)`` of an image, or ``(None, None)`` if it is absent."""
        with engine_errors(f"inspect image {image}"):
            try:
                found = self.client.images.get(image)
            except docker.errors.ImageNotFound:
                return None, None
        labels = found.labels or {}
        return found.id, labels.get(VERSION_LABEL)

    def create_container(self, name: str, labels: Mapping[str, str]) -> str:
        """Create and start one sandbox container; return its id."""
        options = container_options(self.config, name=name, labels=labels)
        with engine_errors("create container"):
            container = self.client.containers.create(**options)
        try:
            with engine_errors("start container"):
                container.start()
        except EngineError:
            self.remove_container(str(container.id))
            raise
        return str(container.id)

    def open_exec(self, container_id: str, argv: Sequence[str]) -> ExecStream:
        with engine_errors("start exec"):
            created = self.client.api.exec_create(
                container_id,
                list(argv),
                stdout=True,
                stderr=True,
                stdin=True,
                tty=False,
                privileged=False,
                user=SANDBOX_USER,
                environment=list(ENVIRONMENT),
                workdir=WORKDIR,
            )
            exec_id = str(created["Id"])
            sock_io = self.client.api.exec_start(exec_id, socket=True)
        return ExecStream(exec_id, sock_io)

    def exit_code(self, exec_id: str) -> int | None:
        """The exit status of a finished exec (it may lag its stream's end by a moment)."""
        deadline = time.monotonic() + 2.0
        with engine_errors("inspect exec"):
            while True:
                state = self.client.api.exec_inspect(exec_id)
                if not state.get("Running") and state.get("ExitCode") is not None:
                    return int(state["ExitCode"])
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.01)

    def remove_container(self, container_id: str) -> None:
        """Kill and remove; returns once the engine no longer lists the container."""
        with engine_errors("remove container"):
            try:
                self.client.api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: auto-removal already under way
                    raise
            self._wait_gone(container_id)

    def _wait_gone(self, container_id: str) -> None:
        deadline = time.monotonic() + REMOVAL_WAIT_S
        while time.monotonic() < deadline:
            try:
                self.client.api.inspect_container(container_id)
            except docker.errors.NotFound:
                return
            time.sleep(0.05)
        raise EngineError(f"container {container_id[:12]} still exists after removal")

    def list_containers(self, labels: Mapping[str, str]) -> list[tuple[str, dict[str, str]]]:
        """``(id, labels)`` of every container (running or not) with all of ``labels``."""
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with engine_errors("list containers"):
            found = self.client.api.containers(all=True, filters=filters)
        return [(str(item["Id"]), dict(item.get("Labels") or {})) for item in found]
