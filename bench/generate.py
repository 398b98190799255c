"""A generator of realistic CI logs for the benchmark: Zuul console logs,
devstack service logs (oslo format, with tracebacks) and syslog, with known
failures injected into some builds."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

UTC = dt.timezone.utc
JOBS = ["tempest-full", "grenade", "openstack-tox-py312", "nova-next", "neutron-fullstack", "cinder-tempest"]
PROJECTS = ["openstack/nova", "openstack/neutron", "openstack/cinder", "openstack/glance", "openstack/keystone"]
SERVICES = ["screen-n-cpu.txt", "screen-n-api.txt", "screen-q-svc.txt", "screen-c-vol.txt"]
LEVELS = ["DEBUG"] * 6 + ["INFO"] * 3 + ["WARNING"]
MODULES = ["nova.compute.manager", "oslo_messaging._drivers.amqpdriver", "neutron.agent.l3", "cinder.volume.api"]
WORDS = ("instance network port volume request server lock claim resource tracker conductor scheduler image "
         "flavor host node agent router subnet attach detach snapshot quota token endpoint").split()

# (phrase, file tag) pairs injected into failing builds; fingerprints target them.
KNOWN_FAILURES = [
    ("Timed out waiting for a reply to message ID", "screen-n-cpu.txt"),
    ("Hash Sum mismatch", "job-output.txt"),
    ("Lost connection to MySQL server during query", "screen-c-vol.txt"),
    ("No valid host was found. There are not enough hosts available", "screen-n-api.txt"),
    ("RESULT_TIMED_OUT", "job-output.txt"),
]


def _sentence(rng: random.Random, n: int = 8) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def generate(root: Path, builds: int, lines_per_build: int, seed: int = 7, now: dt.datetime | None = None) -> dict:
    rng = random.Random(seed)
    now = now or dt.datetime.now(UTC)
    root.mkdir(parents=True, exist_ok=True)
    manifest = []
    total_lines = 0
    for b in range(builds):
        uuid = f"{rng.getrandbits(128):032x}"
        start = now - dt.timedelta(seconds=rng.randint(3600, 10 * 86400 - 3600))
        failure = KNOWN_FAILURES[b % len(KNOWN_FAILURES)] if b % 3 == 0 else None
        status = "FAILURE" if failure or b % 7 == 0 else "SUCCESS"
        build_dir = root / uuid
        (build_dir / "logs").mkdir(parents=True, exist_ok=True)
        meta = {"build_uuid": uuid, "build_name": JOBS[b % len(JOBS)], "build_status": status, "voting": "1",
                "build_queue": "gate" if b % 2 else "check", "build_change": str(800000 + b), "build_patchset": "1",
                "project": PROJECTS[b % len(PROJECTS)], "build_branch": "master", "build_node": f"node-{b % 40}",
                "log_url": f"https://logs.example.org/{uuid[:7]}/"}
        (build_dir / "build.json").write_text(json.dumps(meta))
        per_file = lines_per_build // (len(SERVICES) + 2)
        t = start

        def stamp(fmt: str) -> str:
            nonlocal t
            t += dt.timedelta(milliseconds=rng.randint(1, 400))
            return t.strftime(fmt)

        with open(build_dir / "job-output.txt", "w") as out:
            for i in range(per_file * 2):
                line = _sentence(rng, rng.randint(4, 14))
                if failure and failure[1] == "job-output.txt" and i == per_file:
                    line = f"E: {failure[0]} while fetching packages"
                out.write(f"{stamp('%Y-%m-%d %H:%M:%S.%f')} | controller | {line}\n")
        for service in SERVICES:
            with open(build_dir / "logs" / service, "w") as out:
                i = 0
                while i < per_file:
                    level = rng.choice(LEVELS)
                    text = _sentence(rng, rng.randint(6, 16))
                    if failure and failure[1] == service and i == per_file // 2:
                        level, text = "ERROR", f"Exception during message handling: {failure[0]} 5f3e"
                    out.write(f"{stamp('%Y-%m-%d %H:%M:%S.%f')[:-3]} {rng.randint(1000, 9999)} {level} "
                              f"{rng.choice(MODULES)} [req-{rng.getrandbits(32):08x}] {text}\n")
                    i += 1
                    if level == "ERROR":
                        for frame in ("Traceback (most recent call last):",
                                      '  File "/opt/stack/nova/nova/compute/manager.py", line 2743, in spawn',
                                      "    yield resources", f"RuntimeError: {text}"):
                            out.write(frame + "\n")
                            i += 1
        manifest.append({"dir": str(build_dir), "build_uuid": uuid, "failure": failure[0] if failure else None,
                         "lines": per_file * (2 + len(SERVICES))})
        total_lines += per_file * (2 + len(SERVICES))
    return {"builds": manifest, "lines": total_lines}


def fingerprints(count: int, seed: int = 11) -> list[str]:
    """``count`` queries in the shape production fingerprints have: the known
    failures first, then distinct phrases that mostly match nothing."""
    rng = random.Random(seed)
    queries = [f'message:"{phrase}" AND tags:"{tag}"' for phrase, tag in KNOWN_FAILURES]
    while len(queries) < count:
        phrase = " ".join(rng.choice(WORDS) for _ in range(4))
        tag = rng.choice(SERVICES + ["console"])
        queries.append(f'message:"{phrase} failed" AND tags:"{tag}"')
    return queries
