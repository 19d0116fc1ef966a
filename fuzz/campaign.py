"""Run every fuzz target under atheris for a bounded time; keep new corpus entries.

    python -m fuzz.campaign --seconds-per-target 300     # make fuzz
    python -m fuzz.campaign --total-seconds 60           # make fuzz-ci (CI, every submission)

New inputs that reach new coverage are written to ``fuzz/corpus/<target>/``; a crash
writes its input to ``fuzz/crashes/`` and makes the campaign exit non-zero.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent
MAX_INPUT_BYTES = 4096


def run_target(name: str, seconds: int) -> int:
    corpus = ROOT / "corpus" / name
    crashes = ROOT / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "fuzz.main", name, str(corpus),
        f"-max_total_time={seconds}", f"-max_len={MAX_INPUT_BYTES}", "-timeout=10",
        "-rss_limit_mb=2048", f"-artifact_prefix={crashes}/{name}-", "-print_final_stats=1",
    ]  # fmt: skip
    print(f"fuzz: {name} for {seconds} s", flush=True)
    result = subprocess.run(command, cwd=ROOT.parent, check=False, capture_output=True, text=True)
    summary = [
        line for line in result.stderr.splitlines() if line.startswith(("stat::", "#", "=="))
    ]
    print("\n".join(summary[-4:]), flush=True)
    if result.returncode != 0:
        print(result.stderr[-4000:], file=sys.stderr)
    return result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--seconds-per-target", type=int)
    group.add_argument("--total-seconds", type=int)
    args = parser.parse_args()
    per_target = args.seconds_per_target or max(5, args.total_seconds // len(TARGETS))
    failed = [name for name in TARGETS if run_target(name, per_target) != 0]
    if failed:
        print(f"fuzz: FAILED targets: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"fuzz: {len(TARGETS)} targets clean", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
