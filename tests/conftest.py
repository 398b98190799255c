from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from elastic_recheck.config import RetentionSettings
from elastic_recheck.search.embedded import EmbeddedBackend

UTC = dt.timezone.utc
SHARED = Path(__file__).resolve().parents[2] / "shared" / "realdata"
# The example builds' lines (examples/builds) are dated 2026-11-20: a daemon over an index
# they were ingested into keeps them whatever today is, where retention would prune them
# a month on. As the environment of a `watch` process, and as its settings in this one.
KEEP_ALL = {"ER_RETENTION_DAYS": "0"}
KEEP_ALL_SETTINGS = RetentionSettings(days=0)


@pytest.fixture
def backend(tmp_path: Path) -> EmbeddedBackend:
    return EmbeddedBackend(tmp_path / "index")


def make_doc(message: str, **fields: Any) -> dict[str, Any]:
    doc = {
        "message": message,
        "@timestamp": "2026-11-20T10:00:00+00:00",
        "build_uuid": "b1",
        "build_name": "tempest-full",
        "build_status": "FAILURE",
        "voting": "1",
        "filename": "job-output.txt",
        "tags": ["job-output.txt", "console"],
    }
    doc.update(fields)
    return doc


@pytest.fixture
def index_docs(backend: EmbeddedBackend) -> Callable[[Iterable[dict[str, Any]]], EmbeddedBackend]:
    def index(docs: Iterable[dict[str, Any]]) -> EmbeddedBackend:
        with backend.writer() as writer:
            for doc in docs:
                stamp = dt.datetime.fromisoformat(doc["@timestamp"])
                writer.add(doc, stamp)
        return backend

    return index


@pytest.fixture
def realdata() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/realdata is not beside the checkout")
    return SHARED
