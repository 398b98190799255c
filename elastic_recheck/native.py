"""The C speed-ups are optional: an install without a compiler (or without
Python's headers) still works, on each module's pure-Python twin, with the
same answers. Using a twin is said once per process, since the daemon is
then several times slower at ingest and an operator should know why."""

from __future__ import annotations

import functools
import logging

log = logging.getLogger("elastic_recheck")


@functools.cache
def without(module: str, what: str) -> None:
    """Say, once, that ``module`` is not built and ``what`` runs in Python."""
    log.warning("%s is not built (no C compiler when elastic-recheck was installed?): %s runs in pure Python, "
                "with the same results, slower; reinstall with gcc and the Python headers for speed",
                module, what)
