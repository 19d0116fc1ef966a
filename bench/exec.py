"""End-to-end latency of code execution, with and without the warm pool, against plain
``docker run --rm`` with the same flags, all measured in this run on this machine.

    python -m bench.exec [--quick]

Subject: a Python hello world (reads one line of stdin, prints it) submitted through the exec
service (TCP, admission, queue, sandbox, history in SQLite, reply), measured at the client from
sending ``RUN`` to having the whole reply; once with ``pool_size=2`` and once with ``0``.
Baseline: ``docker run --rm -i`` with every flag the sandbox uses, the code and stdin on its
stdin, measured from process start to exit. Samples are spaced ``SPACING_S`` apart (people
submit code seconds apart, and the pool refills in between); then 20 submissions arrive at
once, and every one must come back with its own answer.

Target: pool p50 <= 0.5 x the docker run p50. The last line is the RESULT line.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from bench.common import parser, percentile, result_line
from syncrox.client.exec import ExecClient
from syncrox.client.rooms import RoomsClient
from syncrox.config import Config, ExecConfig, Ports, SandboxConfig
from syncrox.sandbox.engine import Engine, EngineError
from syncrox.sandbox.model import Verdict
from syncrox.services.runner import run_services

TARGET_RATIO = 0.5
SPACING_S = 1.0
QUICK_SPACING_S = 0.7  # still longer than a pool refill (create + start: ~0.3-0.5 s)
CONCURRENT = 20
CODE = b"import sys\nprint('hello', sys.stdin.readline().strip())\n"
SAMPLE_TIMEOUT_S = 60.0


def docker_run_argv(config: SandboxConfig) -> list[str]:
    """``docker run --rm`` with the flags of ``syncrox.sandbox.engine.container_options``."""
    tmpfs = (
        f"/sandbox:rw,exec,nosuid,nodev,size={config.workdir_size_bytes},"
        "uid=1000,gid=1000,mode=0700"
    )
    return [
        "docker", "run", "--rm", "-i", "--network", "none",
        "--memory", str(config.memory_limit_bytes),
        "--memory-swap", str(config.memory_limit_bytes),
        "--cpus", str(config.cpus), "--pids-limit", str(config.pids_limit),
        "--read-only", "--tmpfs", tmpfs, "--shm-size", str(config.shm_size_bytes),
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--user", "1000:1000", "--init", "-w", "/sandbox",
        "--ulimit", f"nofile={config.open_files_limit}:{config.open_files_limit}",
        "--ulimit", f"fsize={config.file_size_limit_bytes}:{config.file_size_limit_bytes}",
        "--ulimit", "core=0:0", "--oom-score-adj", "500", "--label", "syncrox.bench=1",
        config.image,
        "bash", "-c", f"head -c {len(CODE)} > main.py && exec python3 -u -B main.py",
    ]  # fmt: skip


async def docker_run_once(argv: list[str], index: int) -> float:
    started = time.perf_counter()
    done = await trio.run_process(argv, stdin=CODE + f"d{index}\n".encode(), capture_stdout=True)
    elapsed = time.perf_counter() - started
    if done.stdout != f"hello d{index}\n".encode():
        raise RuntimeError(f"docker run answered {done.stdout!r}")
    return elapsed


async def sample(
    measure: Callable[[int], Awaitable[float]], count: int, spacing_s: float
) -> list[float]:
    samples = []
    for index in range(count):
        await trio.sleep(spacing_s)
        with trio.fail_after(SAMPLE_TIMEOUT_S):
            samples.append(await measure(index))
    return samples


def service_config(data_dir: Path, pool_size: int) -> Config:
    zero_ports = Ports(**dict.fromkeys(Ports.__dataclass_fields__, 0))
    sandbox = SandboxConfig(pool_size=pool_size)
    return Config(
        data_dir=data_dir,
        ports=zero_ports,
        exec=ExecConfig(max_queued_runs=CONCURRENT + 8, sandbox=sandbox),
    )


async def timed_run(client: ExecClient, index: int) -> float:
    started = time.perf_counter()
    reply = await client.run("python", CODE, f"s{index}\n".encode())
    elapsed = time.perf_counter() - started
    if reply.verdict is not Verdict.OK or reply.stdout != f"hello s{index}\n".encode():
        raise RuntimeError(f"service answered {reply.header} {reply.stdout!r} {reply.diag!r}")
    return elapsed


async def concurrent_burst(port: int, room: str) -> tuple[list[float], int]:
    """``CONCURRENT`` clients at once; returns their latencies and how many were lost."""
    latencies: list[float] = []
    lost = 0

    async def one(index: int) -> None:
        nonlocal lost
        try:
            async with ExecClient.connect("127.0.0.1", port) as client:
                await client.hello(f"burst{index}", room)
                latencies.append(await timed_run(client, 1000 + index))
        except Exception as exc:  # a lost submission is counted, not raised
            print(f"  submission {index} lost: {exc}", file=sys.stderr)
            lost += 1

    with trio.fail_after(SAMPLE_TIMEOUT_S * 2):
        async with trio.open_nursery() as nursery:
            for index in range(CONCURRENT):
                nursery.start_soon(one, index)
    return latencies, lost


async def measure_service(
    pool_size: int, count: int, spacing_s: float, *, burst: bool
) -> tuple[list[float], ...]:
    with tempfile.TemporaryDirectory(prefix="syncrox-bench-") as tmp:
        config = service_config(Path(tmp), pool_size)
        async with trio.open_nursery() as nursery:
            ports = await nursery.start(functools.partial(run_services, config, ui=False))
            async with RoomsClient.connect("127.0.0.1", ports["rooms"]) as rooms:
                room, token = await rooms.create("bench")
            async with ExecClient.connect("127.0.0.1", ports["exec"]) as client:
                await client.hello("bench", room, token)
                await timed_run(client, -1)  # warm-up: first connection to the engine
                samples = await sample(functools.partial(timed_run, client), count, spacing_s)
            extra: tuple[list[float], ...] = ()
            if burst:
                await trio.sleep(spacing_s * 2)
                latencies, lost = await concurrent_burst(ports["exec"], room)
                extra = (latencies, [float(lost)])
            nursery.cancel_scope.cancel()
    return (samples, *extra)


def ms(samples: list[float], fraction: float) -> float:
    return percentile(samples, fraction) * 1000


def report(name: str, samples: list[float]) -> None:
    print(f"{name:>18}: n={len(samples):3d}  p50={ms(samples, 0.5):7.1f} ms  "
          f"p95={ms(samples, 0.95):7.1f} ms")  # fmt: skip


async def main(quick: bool) -> int:
    count, spacing_s = (8, QUICK_SPACING_S) if quick else (30, SPACING_S)
    config = SandboxConfig()
    try:
        engine = Engine.connect(config)
        image_id, _ = engine.image_info(config.image)
        engine.close()
    except EngineError as exc:
        print(result_line("exec", error=f"engine unavailable: {exc}"[:80], target_met=False))
        return 1
    if image_id is None:
        print(result_line("exec", error="sandbox image missing", target_met=False))
        return 1
    argv = docker_run_argv(config)
    await docker_run_once(argv, -1)  # warm-up: page cache, image layers
    baseline = await sample(functools.partial(docker_run_once, argv), count, spacing_s)
    report("docker run --rm", baseline)
    no_pool = (await measure_service(0, count, spacing_s, burst=False))[0]
    report("service, no pool", no_pool)
    pooled, burst, lost = await measure_service(2, count, spacing_s, burst=True)
    report("service, pool 2", pooled)
    report(f"{CONCURRENT} at once, pool", burst)
    ratio = percentile(pooled, 0.5) / percentile(baseline, 0.5)
    lost_count = int(lost[0])
    print(result_line(
        "exec",
        pool_p50_ms=ms(pooled, 0.5), pool_p95_ms=ms(pooled, 0.95),
        nopool_p50_ms=ms(no_pool, 0.5), nopool_p95_ms=ms(no_pool, 0.95),
        docker_run_p50_ms=ms(baseline, 0.5), docker_run_p95_ms=ms(baseline, 0.95),
        pool_ratio=ratio, nopool_ratio=percentile(no_pool, 0.5) / percentile(baseline, 0.5),
        burst=CONCURRENT, burst_p50_ms=ms(burst, 0.5), burst_p95_ms=ms(burst, 0.95),
        lost=lost_count, target=TARGET_RATIO,
        target_met=ratio <= TARGET_RATIO and lost_count == 0,
    ))  # fmt: skip
    return 0


if __name__ == "__main__":
    arguments = parser(__doc__.splitlines()[0]).parse_args()
    sys.exit(trio.run(main, arguments.quick))
