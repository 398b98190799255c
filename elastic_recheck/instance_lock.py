"""One ``watch`` per data directory.

Two daemons on one state database would both work through the same events:
each would announce every failure on IRC (the comment itself is guarded in
the database, an IRC line is not). The second one refuses to start instead.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import ConfigError


class InstanceLock:
    """An exclusive ``flock`` on a file beside the state database, held for
    the life of the process: the kernel drops it when the process dies, even
    by ``kill -9``, so a crash never leaves a stale lock behind."""

    def __init__(self, path: str | os.PathLike[str], what: str = "watch") -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> "InstanceLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise ConfigError(f"{self.path}: another {self.what} (pid {holder}) is running on this data dir; "
                              "only one may, or every IRC line would be sent twice") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "InstanceLock":
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


__all__ = ["InstanceLock"]
