from __future__ import annotations

import hashlib
import os
import threading
import time
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


def test_an_age_sweep_deletes_only_old_blobs(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    old, young = store.put(b"old"), store.put(b"young")
    os.utime(store.path(old), (1_000, 1_000))
    cutoff = time.time() - 60
    assert store.delete_if_older(store.path(old), cutoff) is True
    assert store.delete_if_older(store.path(young), cutoff) is False
    assert store.delete_if_older(store.path(old), cutoff) is False  # already gone
    assert not store.exists(old) and store.exists(young)


def test_a_sweep_never_deletes_the_same_bytes_uploaded_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sweep has found an old orphan and is about to delete it when an upload of the
    # same bytes (its message row not yet written) renames its copy into place: the
    # upload's copy must survive.
    store = BlobStore(tmp_path)
    digest = store.put(b"the same picture")
    target = store.path(digest)
    os.utime(target, (1_000, 1_000))
    upload = store.writer()
    upload.write(b"the same picture")
    committer = threading.Thread(target=upload.commit)
    real_unlink = os.unlink

    def unlink_while_an_upload_commits(path: object) -> None:
        if path == target and not committer.is_alive() and not upload.closed:
            committer.start()
            committer.join(timeout=0.5)  # it waits for the sweep, or lands first
        real_unlink(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", unlink_while_an_upload_commits)
    store.delete_if_older(target, time.time() - 60)
    committer.join(timeout=10)
    assert upload.closed and store.get(digest) == b"the same picture"
