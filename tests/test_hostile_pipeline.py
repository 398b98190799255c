"""The build pipeline against hostile answers and crashes: a red-team pass.

Each test names a way outside input or a crash could make the daemon fetch
from where it must not, wedge, lose or double a build; real servers on
127.0.0.1, real files, the real index.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elastic_recheck.build_queue import fetch_with_zuul
from elastic_recheck.builds import Build
from elastic_recheck.config import load_settings
from elastic_recheck.errors import IngestError
from elastic_recheck.ingest.fetch import ConnectionPool, LogHosts
from tests.test_hostile_ingest import HostileLogServer, redirect, serve

UUID = "0123456789abcdef0123456789abcdef"


def zuul_record(log_url: str, uuid: str = UUID) -> bytes:
    return json.dumps({"_id": 7, "uuid": uuid, "job_name": "tempest-full", "result": "FAILURE",
                       "log_url": log_url, "voting": True}).encode()


@pytest.fixture
def servers():
    allowed, elsewhere = HostileLogServer(), HostileLogServer()
    yield allowed, elsewhere
    allowed.close()
    elsewhere.close()


def test_a_redirect_from_the_zuul_api_a_build_page_implies_is_not_followed_off_the_log_hosts(servers, tmp_path):
    """A v3 report's build page is on an allowed host, so the API beside it
    is asked; that API's redirect to a host not in ingest.log_hosts (here
    "localhost", the same machine under a name not allowed) is refused like
    a log server's."""
    allowed, elsewhere = servers
    other = elsewhere.url.replace("127.0.0.1", "localhost")
    allowed.routes[f"/api/tenant/openstack/build/{UUID}"] = redirect(f"{other}api/build/{UUID}")
    elsewhere.routes[f"/api/build/{UUID}"] = serve(zuul_record(f"{allowed.url}logs/"), "application/json")
    allowed.routes["/logs/job-output.txt"] = serve(b"2026-11-20 12:00:00.000 | line\n")
    settings = load_settings(data_dir=str(tmp_path / "data"), env={"ER_INGEST_LOG_HOSTS": "127.0.0.1"})
    build = Build(job="tempest-full", status="FAILURE", uuid=UUID, build_url=f"{allowed.url}t/openstack/build/{UUID}")
    fetch_one = fetch_with_zuul(settings)
    pool = ConnectionPool(LogHosts(settings.ingest.log_hosts))
    try:
        with pytest.raises(IngestError, match="'localhost' is not one of ingest.log_hosts"):
            fetch_one(build, tmp_path / "spool", settings.ingest, pool)
    finally:
        pool.close()
    assert elsewhere.requests == []
