"""Write the demo's CI builds and Gerrit events, dated relative to now.

``bin/demo`` runs this, so the dashboard it renders always shows the last few
days: CI runs of several jobs over three days, failing on the four known bugs
in ``queries/``, on failures nobody has a fingerprint for yet, and passing.
Everything is deterministic but the dates: a second run replaces the builds
of the first (same build ids) instead of adding to them.

    python examples/demo_builds.py OUTPUT_DIR [ZUUL_URL]

writes OUTPUT_DIR/builds/*/ (each build's logs and its Zuul record) and
OUTPUT_DIR/events.json (the Gerrit reports of the failed ones). The reports
link each build's page on ZUUL_URL (default https://zuul.example.org), as
Zuul's do: ``bin/demo`` passes the demo log server, whose Zuul API leads the
daemon from a build's page to its logs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import sys
from pathlib import Path

UTC = dt.timezone.utc
LOGS = "https://logs.example.org"

# failure kind -> (job, project, what goes wrong in which file)
KINDS = {
    "rpc-timeout": ("tempest-full", "openstack/nova"),  # bugs 2000001 and 2000004
    "mirror": ("grenade", "openstack/neutron"),  # bug 2000002
    "mysql": ("cinder-tempest-plugin-lvm", "openstack/cinder"),  # bug 2000003
    "unit-test": ("openstack-tox-py312", "openstack/nova"),  # unknown: a real regression
    "ssh-timeout": ("nova-live-migration", "openstack/nova"),  # unknown: no fingerprint yet
    "pass": ("tempest-full", "openstack/neutron"),
}
# (hours ago, kind, pipeline): three days of CI, newest last.
RUNS = [
    (70, "rpc-timeout", "check"), (66, "pass", "gate"), (61, "mirror", "gate"), (57, "unit-test", "check"),
    (52, "rpc-timeout", "gate"), (49, "pass", "check"), (44, "mysql", "gate"), (40, "rpc-timeout", "check"),
    (35, "ssh-timeout", "gate"), (30, "mirror", "check"), (26, "rpc-timeout", "gate"), (22, "pass", "gate"),
    (18, "mysql", "check"), (14, "rpc-timeout", "gate"), (11, "unit-test", "check"), (8, "mirror", "gate"),
    (5, "rpc-timeout", "gate"), (3, "ssh-timeout", "check"), (2, "pass", "gate"), (1, "rpc-timeout", "gate"),
]


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _oslo(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def console(start: dt.datetime, kind: str, rng: random.Random) -> list[str]:
    t = start
    lines = []

    def say(text: str, seconds: float = 1.0) -> None:
        nonlocal t
        t += dt.timedelta(seconds=seconds)
        lines.append(f"{_stamp(t)} | {text}")

    say("Job console starting...")
    say("PRE-RUN START: [trusted : opendev.org/opendev/base-jobs/playbooks/base/pre.yaml@master]")
    if kind == "mirror":
        say("controller | Get:14 http://mirror.dfw.rax.opendev.org/ubuntu noble-updates/main amd64 Packages [1,204 kB]", 40)
        say("controller | E: Failed to fetch http://mirror.dfw.rax.opendev.org/ubuntu/dists/noble-updates/main/"
            "binary-amd64/Packages.xz  Hash Sum mismatch", 2)
        say("controller | E: Some index files failed to download. They have been ignored, or old ones used instead.")
        say("RUN END RESULT_NORMAL: [untrusted : opendev.org/openstack/devstack/playbooks/pre.yaml@master]", 1)
        return lines
    say("controller | stack.sh completed in 1312 seconds.", 1320)
    if kind == "unit-test":
        say("ubuntu-noble | nova.tests.unit.compute.test_api.ComputeAPIUnitTestCase.test_resize_same_host "
            "[0.812s] ... FAILED", 300)
        say("ubuntu-noble | AssertionError: Expected 'resize_instance' to be called once. Called 0 times.")
        say("ubuntu-noble | Totals: Ran: 18304 tests in 611.0 sec. Passed: 18216 Skipped: 87 Failed: 1")
        return lines
    tests = ["tempest.api.compute.servers.test_servers.ServersTest.test_update_server_name",
             "tempest.api.volume.test_volumes_get.VolumesGetTest.test_volume_create_get_update_delete",
             "tempest.api.network.test_ports.PortsTestJSON.test_create_port_in_allowed_allocation_pools"]
    for test in tests:
        say(f"controller | {{{rng.randint(0, 3)}}} {test} [{rng.uniform(1, 40):.2f}s] ... ok", rng.uniform(5, 60))
    if kind == "rpc-timeout":
        say("controller | {1} tempest.api.compute.servers.test_servers.ServersTest.test_update_server_name "
            "[312.41s] ... FAILED", 312)
        say("controller | tempest.exceptions.BuildErrorException: Server 4b1c failed to build and is in ERROR "
            "status\nDetails: {'code': 500, 'message': 'MessagingTimeout'}")
    elif kind == "mysql":
        say("controller | {2} tempest.api.volume.test_volumes_actions.VolumesActionsTest.test_attach_detach_volume"
            " [61.07s] ... FAILED", 61)
        say("controller | tempest.lib.exceptions.ServerFault: Got server fault\nDetails: The server has either "
            "erred or is incapable of performing the requested operation.")
    elif kind == "ssh-timeout":
        say("controller | {0} tempest.api.compute.admin.test_live_migration.LiveMigrationTest."
            "test_live_block_migration [196.30s] ... FAILED", 196)
        say("controller | tempest.lib.exceptions.SSHTimeout: Connection to the 172.24.5.77 via SSH timed out.\n"
            "User: cirros, Password: None")
    result = "SUCCESS" if kind == "pass" else "FAILURE"
    say(f"controller | Totals: Ran: 1480 tests. {'Passed: 1480' if kind == 'pass' else 'Failed: 1'}", 30)
    say(f"Build {result}", 5)
    return lines


def service_logs(start: dt.datetime, kind: str) -> dict[str, list[str]]:
    t = start + dt.timedelta(minutes=30)
    cpu = [f"{_oslo(t)} 51234 INFO nova.compute.claims [None req-1a2b tempest-ServersTest-1] "
           "[instance: 4b1c] Claim successful on node controller"]
    api = [f"{_oslo(t)} 7001 INFO cinder.api.openstack.wsgi [req-77 tempest-VolumesTest-2] "
           "POST http://10.0.0.5/volume/v3/volumes"]
    if kind == "rpc-timeout":
        t2 = t + dt.timedelta(seconds=60)
        cpu += [f"{_oslo(t2)} 51234 ERROR nova.compute.manager [None req-1a2b tempest-ServersTest-1] "
                "[instance: 4b1c] Instance failed to spawn: oslo_messaging.exceptions.MessagingTimeout: "
                "Timed out waiting for a reply to message ID 5f3e2a",
                "Traceback (most recent call last):",
                '  File "/opt/stack/nova/nova/compute/manager.py", line 2743, in _build_resources',
                "oslo_messaging.exceptions.MessagingTimeout: Timed out waiting for a reply to message ID 5f3e2a"]
    if kind == "mysql":
        t2 = t + dt.timedelta(seconds=45)
        api += [f"{_oslo(t2)} 7001 ERROR cinder.api.middleware.fault [req-77 tempest-VolumesTest-2] Caught error: "
                "<class 'sqlalchemy.exc.OperationalError'> (pymysql.err.OperationalError) "
                "(2013, 'Lost connection to MySQL server during query')"]
    if kind == "ssh-timeout":
        t2 = t + dt.timedelta(seconds=90)
        cpu += [f"{_oslo(t2)} 51234 WARNING nova.virt.libvirt.driver [None req-9f] [instance: 77aa] "
                "Live migration not completed after 180 sec"]
    return {"logs/screen-n-cpu.txt": cpu, "logs/screen-c-api.txt": api}


def write(output: Path, now: dt.datetime, zuul_url: str = "https://zuul.example.org") -> tuple[int, int]:
    builds_dir = output / "builds"
    zuul = f"{zuul_url.rstrip('/')}/t/main/build/"
    events = []
    for number, (hours_ago, kind, pipeline) in enumerate(RUNS, 1):
        rng = random.Random(number)
        job, project = KINDS[kind]
        uuid = hashlib.sha256(f"demo-{number}".encode()).hexdigest()[:32]
        change, patchset = 870000 + number * 7, 1 + number % 4
        start = (now - dt.timedelta(hours=hours_ago)).replace(microsecond=0)
        status = "SUCCESS" if kind == "pass" else "FAILURE"
        log_url = f"{LOGS}/{change % 100:02d}/{change}/{patchset}/{pipeline}/{job}/{uuid[:7]}/"
        directory = builds_dir / f"{number:02d}-{job}"
        (directory / "logs").mkdir(parents=True, exist_ok=True)
        lines = console(start, kind, rng)
        (directory / "job-output.txt").write_text("\n".join(lines) + "\n")
        if kind != "unit-test":
            for name, content in service_logs(start, kind).items():
                (directory / name).write_text("\n".join(content) + "\n")
        (directory / "build.json").write_text(json.dumps({
            "uuid": uuid, "job_name": job, "result": status, "voting": True, "pipeline": pipeline,
            "change": change, "patchset": patchset, "project": project, "branch": "master",
            "ref": f"refs/changes/{change % 100:02d}/{change}/{patchset}", "node_name": f"ubuntu-noble-{number:04d}",
            "log_url": log_url, "start_time": start.strftime("%Y-%m-%dT%H:%M:%S"),
            "end_time": (start + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        }, indent=1) + "\n")
        if status == "SUCCESS":
            continue
        # The pep8 job that passed beside it: a successful build the daemon fetches too.
        pep8 = hashlib.sha256(f"demo-{number}-pep8".encode()).hexdigest()[:32]
        pep8_dir = builds_dir / f"{number:02d}-openstack-tox-pep8"
        pep8_dir.mkdir(parents=True, exist_ok=True)
        (pep8_dir / "job-output.txt").write_text(
            f"{_stamp(start)} | Job console starting\n{_stamp(start)} | pep8: commands succeeded\n"
            f"{_stamp(start)} | congratulations :)\n")
        (pep8_dir / "build.json").write_text(json.dumps({
            "uuid": pep8, "job_name": "openstack-tox-pep8", "result": "SUCCESS", "voting": True,
            "pipeline": pipeline, "change": change, "patchset": patchset, "project": project, "branch": "master",
            "log_url": f"{LOGS}/{change % 100:02d}/{change}/{patchset}/{pipeline}/openstack-tox-pep8/{pep8[:7]}/",
            "start_time": start.strftime("%Y-%m-%dT%H:%M:%S"),
            "end_time": (start + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"),
        }, indent=1) + "\n")
        finished = start + dt.timedelta(hours=1)
        events.append({
            "type": "comment-added",
            "author": {"name": "Zuul", "username": "zuul"},
            "approvals": [{"type": "Verified", "value": "-1" if pipeline == "check" else "-2"}],
            "comment": (f"Build failed ({pipeline} pipeline).  For information on how to proceed, see "
                        "https://docs.opendev.org/opendev/infra-manual/latest/developers.html#automated-testing\n\n"
                        f"- {job} {zuul}{uuid} : FAILURE in 1h 02m 03s\n"
                        f"- openstack-tox-pep8 {zuul}{pep8} : SUCCESS in 4m 05s\n"),
            "patchSet": {"number": patchset, "revision": hashlib.sha1(uuid.encode()).hexdigest(),
                         "ref": f"refs/changes/{change % 100:02d}/{change}/{patchset}"},
            "change": {"project": project, "branch": "master", "id": f"I{hashlib.sha1(str(change).encode()).hexdigest()}",
                       "number": change, "subject": f"Demo change {number}", "owner": {"name": "A Developer"},
                       "url": f"https://review.example.org/c/{project}/+/{change}"},
            "eventCreatedOn": int(finished.timestamp()),
        })
    (output / "events.json").write_text(json.dumps(events, indent=1) + "\n")
    return len(RUNS), len(events)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    builds, events = write(Path(sys.argv[1]), dt.datetime.now(UTC), *sys.argv[2:])
    print(f"wrote {builds} demo builds and {events} failure events (the last three days) to {sys.argv[1]}")
