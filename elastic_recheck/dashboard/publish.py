"""Publishing a site so that whoever serves it never sees half of one.

``--output DIR`` is a symbolic link to a complete, finished copy of the
site. Each run writes a new copy beside it, then swaps the link with one
``rename`` — atomic on POSIX — so a web server serving DIR sees the old
site or the new one, never a mix. A few old copies stay for requests still
reading them.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from ..errors import RecheckError

KEEP = 3  # published copies kept, the current one included


class PublishError(RecheckError):
    """The site could not be written or swapped in."""


class Busy(PublishError):
    """Another dashboard run holds the lock for this output."""


class Publisher:
    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.output = Path(output).absolute()
        self.versions = self.output.parent / f".{self.output.name}.versions"
        self.lock_path = self.output.parent / f".{self.output.name}.lock"

    def check(self) -> None:
        """Refuse an output that cannot be swapped atomically, before any work."""
        if self.output.exists() and not self.output.is_symlink():
            raise PublishError(
                f"{self.output} is a real directory; the dashboard publishes by atomically replacing a "
                "symbolic link there — remove it, or choose a new --output"
            )

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One run at a time per output, across processes (cron and --every alike)."""
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_path, "a+")
        except OSError as exc:
            raise PublishError(f"cannot write the dashboard beside {self.output}: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(f"another dashboard run is writing {self.output}") from None
            yield
        finally:
            handle.close()

    def publish(self, files: Mapping[str, bytes]) -> Path:
        """Write every file of the new site, then make it the one DIR shows."""
        self.check()
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.versions / f"{stamp}-{os.getpid()}"
        try:
            written = []
            for name, data in files.items():
                path = target / name
                if Path(name).is_absolute() or ".." in Path(name).parts:
                    raise PublishError(f"refusing to write {name!r} outside the site")
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as handle:
                    handle.write(data)
                written.append(path)
            _sync(target, written)  # every file on disk before the link moves
            link = self.output.parent / f".{self.output.name}.new-{os.getpid()}"
            if link.is_symlink():
                link.unlink()
            link.symlink_to(os.path.relpath(target, self.output.parent), target_is_directory=True)
            os.replace(link, self.output)
        except OSError as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise PublishError(f"cannot publish the dashboard to {self.output}: {exc}") from None
        self._prune(current=target)
        return target

    def _prune(self, current: Path) -> None:
        copies = sorted(p for p in self.versions.iterdir() if p.is_dir())
        for old in copies[:-KEEP]:
            if old != current:
                shutil.rmtree(old, ignore_errors=True)


def _sync(directory: Path, paths: list[Path]) -> None:
    """The new copy's files durably written. A site has a page per bug
    (a thousand files): one ``syncfs`` of the file system holding them
    costs what one ``fsync`` does, where a thousand ``fsync`` calls take
    seconds; without ``syncfs`` (not Linux), each file is synced."""
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is not None:
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            if syncfs(descriptor) == 0:
                return
        finally:
            os.close(descriptor)
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _libc() -> object:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


__all__ = ["Busy", "PublishError", "Publisher"]
