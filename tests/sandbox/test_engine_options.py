"""Every container gets the whole security profile (docs/SECURITY.md lists the same)."""

from __future__ import annotations

from syncrox.config import SandboxConfig
from syncrox.sandbox.engine import container_options


def test_every_flag_of_the_profile_is_set() -> None:
    config = SandboxConfig()
    options = container_options(config, name="syncrox-sbx-x", labels={"syncrox.sandbox": "1"})
    assert options["network_mode"] == "none"
    assert options["mem_limit"] == 256 * 1024 * 1024
    assert options["memswap_limit"] == options["mem_limit"]
    assert options["nano_cpus"] == 500_000_000
    assert options["pids_limit"] == 64
    assert options["read_only"] is True
    assert options["cap_drop"] == ["ALL"]
    assert options["security_opt"] == ["no-new-privileges"]
    assert options["user"] == "1000:1000"
    assert options["init"] is True
    assert options["auto_remove"] is True
    assert options["shm_size"] == 1024 * 1024
    tmpfs = options["tmpfs"]["/sandbox"]
    for part in ("rw", "exec", f"size={16 * 1024 * 1024}", "uid=1000", "gid=1000"):
        assert part in tmpfs.split(",")
    limits = {u["Name"]: (u["Soft"], u["Hard"]) for u in options["ulimits"]}
    assert limits["nofile"] == (256, 256)
    assert limits["fsize"] == (16 * 1024 * 1024,) * 2
    assert options["labels"] == {"syncrox.sandbox": "1"}
    # No bind mounts, no devices, no privileges of any kind.
    for forbidden in ("volumes", "mounts", "devices", "privileged", "cap_add", "network"):
        assert forbidden not in options


def test_the_main_process_outlives_both_phases() -> None:
    config = SandboxConfig(compile_time_limit_s=10, run_time_limit_s=5, container_lifetime_s=300)
    options = container_options(config, name="n", labels={})
    assert options["command"] == ["sleep", "300"]
