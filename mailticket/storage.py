"""A content-addressed file store for raw messages and attachments: a blob's name is its sha256,
so storing the same bytes twice is free and no sender-chosen name ever reaches the file system.

Writing is split from making durable: ``put`` writes and renames into place, ``sync`` fsyncs
everything written since, several files at once, and is called just before the transaction that
refers to them commits. One fsync per file, one after another, was the largest single cost of
taking a message in.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_SYNC_THREADS = 8


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._made_dirs: set[Path] = set()
        self._unsynced: list[Path] = []
        self._lock = threading.Lock()       # guards the list of files not yet synced
        self._sync_lock = threading.Lock()  # held while syncing: see sync()
        self._pool: ThreadPoolExecutor | None = None

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        """Store data (durable after the next ``sync``); return its digest."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        try:
            if target.stat().st_size == len(data):
                return digest
            # A file cut short by a crash before it was synced: written again below.
        except FileNotFoundError:
            pass
        if target.parent not in self._made_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(target.parent)
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        except FileNotFoundError:
            # Made before, gone now (the store was restored empty, or remounted): make it again.
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        with self._lock:
            self._unsynced.append(target)
        return digest

    def sync(self) -> None:
        """Make every file written since the last sync durable (data and directory entries).

        The whole sync holds a lock: a caller whose files another thread took over to sync
        returns only when they are on disk, never while they are still being written out.
        """
        with self._sync_lock:
            with self._lock:
                paths, self._unsynced = self._unsynced, []
            if not paths:
                return
            targets = paths + sorted({p.parent for p in paths})
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="store-sync")
            # fsync releases the GIL; issued together, the file system commits them in one go.
            list(self._pool.map(_fsync, targets))

    def get(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
