"""The image recipe's version and the build's bookkeeping (no engine needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from syncrox.sandbox.image import RECIPE_FILES, BuildError, Recipe, cache_dir, split_image


def copy_recipe(tmp_path: Path) -> Path:
    target = tmp_path / "recipe"
    shutil.copytree(Recipe.load().directory, target)
    return target


def test_the_version_follows_every_recipe_file(tmp_path: Path) -> None:
    directory = copy_recipe(tmp_path)
    first = Recipe.load(directory)
    assert first == Recipe(directory, first.version, first.rootfs_version)
    for name in RECIPE_FILES:
        path = directory / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n# changed\n")
        changed = Recipe.load(directory)
        assert changed.version != first.version, name
        # The Dockerfile is not part of the root file system tarball.
        assert (changed.rootfs_version != first.rootfs_version) == (name != "Dockerfile")
        path.write_bytes(original)
    assert Recipe.load(directory) == first


def test_an_incomplete_recipe_is_refused(tmp_path: Path) -> None:
    directory = copy_recipe(tmp_path)
    (directory / "packages").unlink()
    with pytest.raises(BuildError, match="packages"):
        Recipe.load(directory)


def test_the_recipe_installs_every_language() -> None:
    packages = (Recipe.load().directory / "packages").read_text().split()
    for needed in ("python3", "gcc", "g++", "openjdk-17-jdk-headless"):
        assert needed in packages


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("syncrox-sandbox:latest", ("syncrox-sandbox", "latest")),
        ("syncrox-sandbox", ("syncrox-sandbox", "latest")),
        ("registry:5000/sandbox", ("registry:5000/sandbox", "latest")),
        ("registry:5000/sandbox:v1", ("registry:5000/sandbox", "v1")),
    ],
)
def test_split_image(image: str, parts: tuple[str, str]) -> None:
    assert split_image(image) == parts


def test_the_cache_directory_can_be_chosen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNCROX_SANDBOX_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
