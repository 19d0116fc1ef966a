from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from syncrox.errors import StoreError
from syncrox.store.blobs import BlobStore, write_file_atomically


def test_put_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = blobs.put(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert blobs.put(b"hello") == digest
    assert blobs.get(digest) == b"hello"
    assert blobs.size(digest) == 5
    assert blobs.path(digest).parent.parent.name == digest[:2]


def test_streaming_writer_commits_or_leaves_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with blobs.writer() as writer:
        writer.write(b"part one, ")
        writer.write(b"part two")
        digest = writer.commit()
    assert blobs.get(digest) == b"part one, part two"
    with blobs.writer() as writer:
        writer.write(b"never committed")
    assert list(blobs.tmp_dir.iterdir()) == []


def test_leftover_temporaries_are_discarded_on_open(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    (blobs.tmp_dir / "crash.part").write_bytes(b"half")
    BlobStore(tmp_path)
    assert list(blobs.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("bad", ["../../etc/passwd", "abc", "G" * 64, ""])
def test_only_digests_name_blobs(tmp_path: Path, bad: str) -> None:
    with pytest.raises(StoreError):
        BlobStore(tmp_path).path(bad)


def test_missing_blob_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        BlobStore(tmp_path).get("0" * 64)


def test_atomic_file_write_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "ports.json"
    write_file_atomically(target, b"first")
    write_file_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["ports.json"]
