"""Directories and files only their owner can read.

The data directory holds the state database (every failure report received,
with its change, project and comments) and the embedded index (the CI logs,
which can hold anything a job printed). What elastic-recheck creates there is
mode 0700 (directories) and 0600 (files), whatever the umask. What exists
already is left as it is: an operator may have opened it up on purpose (a
group that runs ``status``); ``looser_than_private`` lets the caller say so.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` as 0700 if it is missing (its missing parents with the
    default mode, like ``mkdir -p``); an existing directory is left alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        if not path.is_dir():  # as mkdir(exist_ok=True) does
            raise


def private_file(path: Path) -> None:
    """Create ``path`` empty as 0600 if it is missing; an existing file is left alone.

    SQLite gives its -wal, -shm and -journal files the mode of the database
    file, so creating the database this way keeps them private too.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass


def looser_than_private(path: Path) -> str | None:
    """``path``'s mode (``"0755"``) when its group or others have any access to it, else None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return f"{mode:04o}" if mode & 0o077 else None


__all__ = ["DIR_MODE", "FILE_MODE", "looser_than_private", "private_dir", "private_file"]
