"""The one way this project opens a SQLite file: WAL, a busy timeout, the file created owner-only
(0600: it may hold call records or household events) and `synchronous=FULL` by default, because a
power cut must not undo a step that outputs were already sent for. `read_only` opens an existing
database without ever writing to it (the `log` command on the hub's live database): a WAL reader
needs the -shm index, so while the writer runs (its -wal exists) its own -wal and -shm are read;
with no -wal every row is in the database file, which is then opened `immutable`, so SQLite
creates no -wal or -shm beside it (a reader's new -shm, owned by whoever ran the command, could
lock the writer out of its own database). The writer starting or stopping in the instant between
that check and the open is the one race left."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal

from core.errors import StorageError

Synchronous = Literal["FULL", "NORMAL", "OFF"]


def open_durable(path: Path | str, *, synchronous: Synchronous = "FULL",
                 read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (the caller runs BEGIN/COMMIT), usable from several
    threads behind the caller's own lock."""
    path = Path(path)
    if synchronous not in ("FULL", "NORMAL", "OFF"):
        raise ValueError(f"synchronous must be FULL, NORMAL or OFF, not {synchronous!r}")
    try:
        if read_only:
            if not path.is_file():
                raise StorageError(f"{path}: no such database")
            absolute = path.resolve()
            mode = "mode=ro" if absolute.with_name(absolute.name + "-wal").exists() else "immutable=1"
            return sqlite3.connect(f"{absolute.as_uri()}?{mode}", uri=True, timeout=30,
                                   check_same_thread=False, isolation_level=None)
        if path.parent.exists() and not path.parent.is_dir():
            raise StorageError(f"{path}: cannot open the database: {path.parent} is not a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        return conn
    except sqlite3.Error as e:
        raise StorageError(f"{path}: cannot open the database: {e}") from e
    except StorageError:
        raise
    except OSError as e:      # a read-only or full SD card, a folder that is a file
        raise StorageError(f"{path}: cannot open the database: {e.strerror or e}") from e


def write_atomic(path: Path, data: str | bytes, mode: int) -> None:
    """Write a whole file so that a power cut leaves the old one or the new one, never half:
    a temporary file beside it, with its mode from the start (a secret is never readable by
    others, not even for a moment), flushed to the disk, then renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
