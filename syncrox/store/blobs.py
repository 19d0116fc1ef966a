"""Content-addressed blobs on disk: uploads, chat images.

A blob lives at ``<root>/<aa>/<bb>/<sha256 hex>``. It is written to a temporary file in
``<root>/tmp``, flushed and fsynced, then renamed into place and the directory fsynced, so a
reader (or a restart after ``kill -9``) sees either the whole blob or nothing. Because the
name is the hash of the content, writing the same bytes twice is a no-op and a new upload
can never overwrite an old one.

``BlobWriter`` streams large blobs chunk by chunk (hashing as it goes), so a file transfer
never has to hold a whole file in memory.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from pathlib import Path
from types import TracebackType

from syncrox.errors import StoreError

_HEX = frozenset("0123456789abcdef")

# Held while a blob is renamed into place and while a sweep checks a blob's age and deletes
# it. Without it a sweep could see an old orphan, a new upload of the same bytes could
# replace it (its message row not yet written), and the sweep's unlink would then delete
# the new upload. One lock for the process: both sides hold it for microseconds.
_PLACING = threading.Lock()


def is_digest(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create blob directory {root}: {exc.strerror}") from exc
        self.discard_temporaries()

    def path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise StoreError(f"not a SHA-256 digest: {digest[:80]!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> str:
        with self.writer() as writer:
            writer.write(data)
            return writer.commit()

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"no blob {digest}") from None
        except OSError as exc:
            raise StoreError(f"cannot read blob {digest}: {exc.strerror}") from exc

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except OSError:
            raise StoreError(f"no blob {digest}") from None

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def delete_if_older(self, path: Path, cutoff: float) -> bool:
        """Delete the blob at ``path`` if it was last written before ``cutoff`` (a Unix
        time); never the copy a concurrent commit of the same bytes is putting in place."""
        with _PLACING:
            try:
                if path.stat().st_mtime >= cutoff:
                    return False
                os.unlink(path)
            except FileNotFoundError:
                return False
        return True

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def discard_temporaries(self) -> None:
        """Remove half-written blobs left by a crash (they were never renamed into place)."""
        for leftover in self.tmp_dir.glob("*.part"):
            leftover.unlink(missing_ok=True)


class BlobWriter:
    """Write a blob incrementally; ``commit()`` makes it visible, anything else discards it."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self.size = 0
        self._tmp_path = store.tmp_dir / f"{secrets.token_hex(12)}.part"
        try:
            self._file = self._tmp_path.open("xb")
        except OSError as exc:
            raise StoreError(f"cannot create temporary blob: {exc.strerror}") from exc
        self._done = False

    @property
    def closed(self) -> bool:
        """Committed or discarded (also after a failed write): it takes no more data."""
        return self._done

    def write(self, data: bytes) -> None:
        if self._done:  # its file is closed (and, unless committed, deleted)
            raise StoreError("the blob is already committed or discarded")
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise StoreError(f"cannot write blob: {exc.strerror}") from exc
        self._hash.update(data)
        self.size += len(data)

    def commit(self) -> str:
        digest = self._hash.hexdigest()
        final = self._store.path(digest)
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            final.parent.mkdir(parents=True, exist_ok=True)
            with _PLACING:
                os.replace(self._tmp_path, final)
            _fsync_directory(final.parent)
        except OSError as exc:
            self.abort()
            raise StoreError(f"cannot store blob {digest}: {exc.strerror}") from exc
        self._done = True
        return digest

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._file.close()
            self._tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.abort()


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_file_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, whole."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with tmp.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {path}: {exc.strerror}") from exc
