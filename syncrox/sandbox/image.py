"""The execution image: its version, and building it in whichever way works here. Blocking.

The recipe is the files of ``sandbox/`` listed in ``RECIPE_FILES``; the image *version* is a
hash of them (and of the metadata ``docker import`` adds), so any change to the recipe gives a
new version, and an image or cached root file system of the current version is never rebuilt.
The image is tagged ``<repository>:<version>`` and with the configured tag (``latest``), and
labelled ``syncrox.sandbox.version=<version>``.

``build`` tries, in order, and says which one it used:

1. the image of the current version is already in the engine: nothing to do;
2. a cached root file system tarball of this version: ``docker import`` it (seconds);
3. the offline recipe, when we are root and ``debootstrap`` exists: ``sandbox/rootfs.sh``
   builds the root file system from the Debian mirror (about a minute), cached for next time;
4. the Dockerfile, which needs an image registry.

Decision: the offline recipe is preferred over the Dockerfile because it works without a
registry (the machines CI runs on have none) and gives the same image either way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from syncrox.sandbox.engine import VERSION_LABEL, Engine, EngineError, engine_errors

RECIPE_FILES = ("Dockerfile", "packages", "setup.sh", "rootfs.sh")
# The root file system tarball depends only on these (not on the Dockerfile).
ROOTFS_FILES = ("packages", "setup.sh", "rootfs.sh")
CACHE_ENV = "SYNCROX_SANDBOX_CACHE"
TARBALL_PREFIX = "sandbox-rootfs-"
ROOTFS_BUILD_LIMIT_S = 1800
# What `docker import` adds to the bare root file system (the Dockerfile says the same).
IMPORT_CHANGES = (
    "USER 1000:1000",
    "WORKDIR /sandbox",
    "ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
)

Say = Callable[[str], None]


class BuildError(EngineError):
    """No way of building the image worked; the message says what each attempt hit."""


@dataclass(frozen=True)
class Recipe:
    directory: Path
    version: str  # of the image
    rootfs_version: str  # of the root file system tarball (cache key)

    @classmethod
    def load(cls, directory: Path | None = None) -> Recipe:
        directory = directory or default_recipe_dir()
        for name in RECIPE_FILES:
            if not (directory / name).is_file():
                raise BuildError(f"the image recipe is incomplete: {directory / name} is missing")
        extra = "\n".join(IMPORT_CHANGES).encode()
        return cls(
            directory,
            _digest(directory, RECIPE_FILES, extra),
            _digest(directory, ROOTFS_FILES, b""),
        )


def _digest(directory: Path, names: tuple[str, ...], extra: bytes) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + (directory / name).read_bytes() + b"\0")
    digest.update(extra)
    return digest.hexdigest()[:12]


def default_recipe_dir() -> Path:
    """``sandbox/`` of the source tree this package runs from."""
    return Path(__file__).resolve().parents[2] / "sandbox"


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/cache/syncrox")
    return Path.home() / ".cache" / "syncrox"


def split_image(image: str) -> tuple[str, str]:
    """``repo:tag`` -> ``(repo, tag)`` (``latest`` when no tag is given)."""
    repository, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, "latest"
    return repository, tag


def build(engine: Engine, recipe: Recipe, *, say: Say, method: str = "auto") -> str:
    """Make ``engine.config.image`` hold the recipe's current version; return what was done."""
    repository, tag = split_image(engine.config.image)
    versioned = f"{repository}:{recipe.version}"
    if method == "auto" and _present(engine, versioned):
        _tag(engine, versioned, repository, tag)
        return f"image {versioned} already built; tagged {repository}:{tag}"
    attempts: list[str] = []
    for name, step in (("rootfs", _from_rootfs), ("dockerfile", _from_dockerfile)):
        if method not in ("auto", name):
            continue
        try:
            done = step(engine, recipe, versioned, say)
        except (BuildError, EngineError, OSError) as exc:
            attempts.append(f"{name}: {exc}")
            say(f"{name} recipe failed: {exc}")
            continue
        _tag(engine, versioned, repository, tag)
        return f"{done}; tagged {repository}:{tag}"
    raise BuildError("no way to build the image worked: " + "; ".join(attempts))


def _present(engine: Engine, image: str) -> bool:
    image_id, _ = engine.image_info(image)
    return image_id is not None


def _tag(engine: Engine, source: str, repository: str, tag: str) -> None:
    with engine_errors(f"tag {source}"):
        engine.client.api.tag(source, repository, tag)


def _from_rootfs(engine: Engine, recipe: Recipe, versioned: str, say: Say) -> str:
    tarball = cache_dir() / f"{TARBALL_PREFIX}{recipe.rootfs_version}.tar"
    how = f"imported the cached root file system {tarball}"
    if not tarball.is_file():
        _make_rootfs(recipe, tarball, say)
        how = f"built the root file system with debootstrap (cached at {tarball}) and imported it"
    say(f"importing {tarball} as {versioned}")
    repository, tag = split_image(versioned)
    changes = [*IMPORT_CHANGES, f"LABEL {VERSION_LABEL}={recipe.version}"]
    with engine_errors("docker import"):
        engine.client.api.import_image_from_file(
            str(tarball), repository=repository, tag=tag, changes=changes
        )
    if not _present(engine, versioned):
        raise BuildError(f"docker import did not produce {versioned}")
    return how


def _make_rootfs(recipe: Recipe, tarball: Path, say: Say) -> None:
    if os.geteuid() != 0:
        raise BuildError("the offline recipe needs root (debootstrap and chroot)")
    if shutil.which("debootstrap") is None:
        raise BuildError("debootstrap is not installed (apt-get install debootstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    say(f"building the root file system with debootstrap into {tarball} (about a minute)")
    try:
        subprocess.run(
            ["bash", str(recipe.directory / "rootfs.sh"), str(tarball)],
            check=True,
            timeout=ROOTFS_BUILD_LIMIT_S,
        )
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"rootfs.sh failed with status {exc.returncode}") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"rootfs.sh took longer than {ROOTFS_BUILD_LIMIT_S} s") from None
    for old in tarball.parent.glob(f"{TARBALL_PREFIX}*.tar"):
        if old != tarball:  # keep one version: each is about 650 MB
            old.unlink(missing_ok=True)


def _from_dockerfile(engine: Engine, recipe: Recipe, versioned: str, say: Say) -> str:
    say(f"building {versioned} from {recipe.directory / 'Dockerfile'} (needs a registry)")
    with engine_errors("docker build"):
        engine.client.images.build(
            path=str(recipe.directory),
            tag=versioned,
            buildargs={"SYNCROX_SANDBOX_VERSION": recipe.version},
            rm=True,
            forcerm=True,
        )
    return f"built {versioned} from the Dockerfile"


@dataclass(frozen=True)
class CheckReport:
    ok: bool
    lines: tuple[str, ...]


def check(engine: Engine, recipe: Recipe | None) -> CheckReport:
    """Engine reachable (we are given one), image present, and its version."""
    info = engine.info()
    lines = [f"engine: reachable, Docker {info.server_version} (API {info.api_version})"]
    if info.image_id is None:
        lines.append(f"image: {engine.config.image} is missing (run `syncrox-trio sandbox build`)")
        return CheckReport(False, tuple(lines))
    version = info.image_version or "unknown"
    lines.append(
        f"image: {engine.config.image} present, id {info.image_id[7:19]}, version {version}"
    )
    if recipe is None:
        return CheckReport(True, tuple(lines))
    if version != recipe.version:
        lines.append(f"recipe: version {recipe.version}; the image is stale, rebuild it")
        return CheckReport(False, tuple(lines))
    lines.append(f"recipe: version {recipe.version}, up to date")
    return CheckReport(True, tuple(lines))
