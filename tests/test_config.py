from __future__ import annotations

from pathlib import Path

import pytest

from syncrox.config import (
    Config,
    config_keys,
    env_name,
    environment_of,
    load_config,
    parse_assignment,
)
from syncrox.errors import ConfigError


def test_defaults_are_the_seed_ports_on_loopback() -> None:
    config = load_config(environ={})
    assert config.host == "127.0.0.1"
    ports = config.ports
    assert (ports.rooms, ports.chat, ports.files_tcp, ports.files_udp) == (9013, 9009, 9010, 9011)
    assert (ports.collab, ports.exec, ports.ui) == (9011, 9012, 8501)
    assert config.data_dir.is_absolute()


def test_toml_then_environment_then_cli(tmp_path: Path) -> None:
    toml = tmp_path / "syncrox.toml"
    toml.write_text(
        'host = "10.0.0.1"\nlog_level = "DEBUG"\n[ports]\nchat = 7000\nrooms = 7001\n'
        "[rooms]\nroom_idle_expiry_s = 60\n"
    )
    environ = {"SYNCROX_PORTS_CHAT": "8000", "SYNCROX_HOST": "10.0.0.2"}
    config = load_config(config_file=toml, environ=environ, cli_overrides={"host": "10.0.0.3"})
    assert config.host == "10.0.0.3"  # CLI beats environment beats file
    assert config.ports.chat == 8000  # environment beats file
    assert config.ports.rooms == 7001  # file beats default
    assert config.rooms.room_idle_expiry_s == 60.0
    assert config.log_level == "DEBUG"


def test_config_file_from_environment(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("[ports]\nexec = 1234\n")
    assert load_config(environ={"SYNCROX_CONFIG": str(toml)}).ports.exec == 1234


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ports.chat", "70000"),
        ("ports.chat", "abc"),
        ("ports.chat", "1.5"),
        ("rooms.room_idle_expiry_s", "-1"),
        ("tcp.idle_timeout_s", "nan"),  # NaN passes every comparison
        ("files.rto_max_ms", "inf"),
        ("chat.orphan_sweep_interval_s", "0"),  # it swept images being uploaded
        ("chat.msg_burst", "0"),
        ("files.recv_buffer_bytes", "0"),
        ("files.rto_max_ms", "100"),  # below the 200 ms floor
        ("log_level", "LOUD"),
        ("no.such.key", "1"),
    ],
)
def test_bad_values_are_refused_with_a_clear_error(key: str, value: str) -> None:
    with pytest.raises(ConfigError):
        load_config(environ={}, cli_overrides={key: value})


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("host = ")
    with pytest.raises(ConfigError):
        load_config(config_file=toml, environ={})
    with pytest.raises(ConfigError):
        load_config(config_file=tmp_path / "missing.toml", environ={})


def test_toml_types_are_checked(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("[ports]\nchat = true\n")
    with pytest.raises(ConfigError):
        load_config(config_file=toml, environ={})


def test_every_key_has_an_environment_name() -> None:
    keys = config_keys()
    assert "ports.files_udp" in keys
    assert env_name("ports.files_udp") == "SYNCROX_PORTS_FILES_UDP"
    assert parse_assignment("rooms.create_burst=3") == ("rooms.create_burst", "3")
    with pytest.raises(ConfigError):
        parse_assignment("nonsense")


def test_with_overrides_converts_strings() -> None:
    config = Config().with_overrides({"tcp.idle_timeout_s": "2.5", "ports.ui": "0"})
    assert config.tcp.idle_timeout_s == 2.5
    assert config.ports.ui == 0


def test_zero_is_accepted_where_it_means_none() -> None:
    config = load_config(
        environ={}, cli_overrides={"exec.sandbox.pool_size": "0", "files.linger_s": "0"}
    )
    assert config.exec.sandbox.pool_size == 0 and config.files.linger_s == 0.0


def test_a_child_process_rebuilds_the_effective_config_from_its_environment(
    tmp_path: Path,
) -> None:
    # How `run` hands file, environment and --set settings alike to the web UI.
    toml = tmp_path / "syncrox.toml"
    toml.write_text('host = "0.0.0.0"\n[exec]\nmax_code_bytes = 1000\n[files]\nlinger_s = 2.5\n')
    effective = load_config(
        config_file=toml,
        environ={"SYNCROX_CHAT_HISTORY_MAX_LIMIT": "42"},
        cli_overrides={"files.allow_binary_codec": "false", "exec.max_code_bytes": "65536"},
    )
    variables = environment_of(effective)
    assert "SYNCROX_EXEC_MAX_CODE_BYTES" not in variables  # back to its default by --set
    assert load_config(environ=variables) == effective
