"""Where the client looks for the services: flags, a ports.json, then the config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncrox.client.endpoints import Endpoints
from syncrox.config import Config
from syncrox.errors import ConfigError


def test_a_service_the_ports_file_does_not_list_is_not_running(tmp_path: Path) -> None:
    # It fell back to the service's default port, where another server may answer.
    ports_file = tmp_path / "ports.json"
    ports_file.write_text(json.dumps({"rooms": 40001}))
    config = Config()  # its default ports must not stand in for the file's missing ones
    where = Endpoints.resolve(config, ports_file=ports_file)
    assert where.port("rooms") == 40001
    with pytest.raises(ConfigError, match="no port known for the exec service"):
        where.port("exec")
    flagged = Endpoints.resolve(config, ports_file=ports_file, explicit_ports={"exec": 40002})
    assert flagged.port("exec") == 40002  # a flag still names it


def test_without_a_ports_file_the_config_says_where() -> None:
    assert Endpoints.resolve(Config()).port("exec") == Config().ports.exec == 9012


@pytest.mark.parametrize("content", ["[" * 4000, "{}}", '{"rooms": "9013"}', "[1, 2]"])
def test_a_broken_ports_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    ports_file = tmp_path / "ports.json"
    ports_file.write_text(content)
    with pytest.raises(ConfigError, match=r"is not a ports\.json"):
        Endpoints.resolve(Config(), ports_file=ports_file)
