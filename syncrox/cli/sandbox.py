"""``syncrox-trio sandbox build|check``: the execution image and the engine that runs it.

``build`` makes the configured image (``exec.sandbox.image``) hold the current recipe version,
choosing among an existing image, a cached root file system, the offline debootstrap recipe
and the Dockerfile (``syncrox.sandbox.image``), and says what it did. ``check`` reports
whether the engine is reachable, whether the image is there, and its version; it exits 0
only if code execution can work.

Both are plain blocking commands: they talk to the engine directly, not to a server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from syncrox.cli.common import EXIT_FAILED, EXIT_OK, add_config_options, config_from_args
from syncrox.sandbox.engine import Engine, EngineError, engine_url
from syncrox.sandbox.image import BuildError, Recipe, build, check


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("sandbox", help="build or check the code-execution image")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build_parser = actions.add_parser(
        "build", help="build the image if needed (offline recipe or Dockerfile); say how"
    )
    build_parser.add_argument(
        "--method",
        choices=("auto", "rootfs", "dockerfile"),
        default="auto",
        help="auto: reuse, else cached root fs, else debootstrap, else Dockerfile",
    )
    check_parser = actions.add_parser(
        "check", help="is the engine reachable, the image present, and its version current?"
    )
    for sub in (build_parser, check_parser):
        add_config_options(sub)
        sub.add_argument("--recipe", type=Path, help="the recipe directory (default: sandbox/)")
        sub.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    config = config_from_args(args).exec.sandbox
    try:
        engine = Engine.connect(config)
    except EngineError as exc:
        print(f"engine: unreachable ({engine_url(config)}): {exc}")
        return EXIT_FAILED
    try:
        if args.action == "build":
            return _build(engine, args)
        return _check(engine, args)
    finally:
        engine.close()


def _build(engine: Engine, args: argparse.Namespace) -> int:
    try:
        recipe = Recipe.load(args.recipe)
        done = build(engine, recipe, say=_say, method=args.method)
    except BuildError as exc:
        print(f"sandbox build: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"sandbox build: {done} (version {recipe.version})")
    return EXIT_OK


def _check(engine: Engine, args: argparse.Namespace) -> int:
    try:
        recipe: Recipe | None = Recipe.load(args.recipe)
    except BuildError as exc:
        print(f"recipe: not available here ({exc})")
        recipe = None
    try:
        report = check(engine, recipe)
    except EngineError as exc:
        print(f"engine: error: {exc}")
        return EXIT_FAILED
    print(f"engine: {engine_url(engine.config)}")
    for line in report.lines:
        print(line)
    return EXIT_OK if report.ok else EXIT_FAILED


def _say(text: str) -> None:
    print(f"sandbox build: {text}", file=sys.stderr, flush=True)
