"""The explain / suggest benchmark (issue 15): what is new in a failed build,
clusters of unexplained failures and their suggested fingerprints, over CI
builds whose lines come from *templates*, the way real logs do.

The other benchmarks draw words at random, so every line is unique and no
two builds share a line shape: that says nothing about log templates. Here
each service log (oslo.log format) and the Zuul console log is drawn, by
Zipf's law, from a few hundred line templates of its own — sentences with
variable parts: uuids, ``req-<uuid>``, IPs, ports, counts, durations,
instance names, ``/tmp/tmpXXXXXXXX`` names, hex ids, tempest test names.
Rare templates include the errors passing jobs print now and then (AMQP
reconnects, a lock held too long). A failed build additionally prints:

* the lines of one *bug* — a few templates of its own (an exception with its
  traceback, a retry loop, the tempest test that FAILED), fresh ids each time,
  at 85–95% of the job's time; six bugs have a fingerprint, six do not;
* failure boilerplate every failure prints: the test that failed listed in
  the "Failed N tests - output below" block, a tox ``InvocationError`` and a
  ``Build FAILURE`` line; passing builds print their totals with
  ``- Failed: 0``.

100 builds of 50,000 lines (45 failing: 23 on known bugs, 22 on unknown
ones), plus four large builds (200k passing, 300k failing on a known bug,
500k failing on an unknown one, 500k passing), dated over the last three
days, are indexed with ``elastic-recheck ingest --builds`` (every line kept,
the known bugs' fingerprints in ``watch.queries``: results stored) and cached
under ``--work``; a re-run the same day reuses them.

Measured, each command a child process (wall, CPU of it and its children,
peak RSS), with the 1-minute load noted:

1. ``explain --build`` on a 50k and on the 500k failed build, cold (a fresh
   copy of results.sqlite3: no stored template sets or explanations) and
   warm; is a line of the injected bug in the top 3? Beside it, on the same
   raw files and the same passing builds explain compared with: a shell
   pipeline (``sed -E`` masking digits, ``sort -u``, ``comm -23``), and
   drain3's TemplateMiner trained on those passing builds then matching the
   failed build's lines (``--no-drain3`` skips it; ``pip install drain3``
   into .venv, bench-only).
2. ``suggest --days 0 --json``, cold and warm: clusters against the injected
   unknown bugs (purity, split bugs, boilerplate clusters), ready suggestions.
3. ``dashboard``, cold and warm, beside the same site built without the
   clusters step.

Run: .venv/bin/python bench/explain.py [--work /work/bench-cache/explain-bench] [--rebuild] [--no-drain3]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BIN = Path(sys.executable).parent
MAX_AGE = 86400.0  # the cache is rebuilt when older: its builds would leave the window
DAYS = 3.0

# -- the variable parts of a line ---------------------------------------------------------

_TMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # tempfile's own alphabet: a name may have no digit


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _uuid(rng: random.Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


SLOTS: dict[str, Callable[[random.Random], str]] = {
    "uuid": _uuid,
    "req": lambda r: "req-" + _uuid(r),
    "ip": lambda r: f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
    "fip": lambda r: f"172.24.5.{r.randint(2, 254)}",
    "port": lambda r: str(r.randint(1024, 65535)),
    "n": lambda r: str(r.randint(0, 64)),
    "big": lambda r: str(r.randint(1000, 10_000_000)),
    "dur": lambda r: f"{r.expovariate(3):.3f}",
    "secs": lambda r: f"{r.expovariate(0.2):.2f}",
    "inst": lambda r: f"instance-{r.getrandbits(32):08x}",
    "tmp": lambda r: "tmp" + "".join(r.choices(_TMP_CHARS, k=8)),
    "hex": lambda r: _hex(r, 40),
    "hex32": lambda r: _hex(r, 32),
    "mac": lambda r: "fa:16:3e:" + ":".join(_hex(r, 2) for _ in range(3)),
    "tap": lambda r: f"tap{_hex(r, 8)}-{_hex(r, 2)}",
    "name": lambda r: f"tempest-{r.choice(['ServersTestJSON', 'VolumesActionsTest', 'NetworkBasicOps', 'ImagesTestJSON'])}"
                      f"-server-{r.randint(10**8, 10**10)}",
    "pid": lambda r: str(r.randint(300, 99999)),
    "worker": lambda r: str(r.randint(0, 3)),
    "line": lambda r: str(r.randint(20, 5000)),
}
_SLOT = re.compile(r"\{([a-z0-9]+)\}")
_CONST = re.compile(r"\{([A-Z]+)\}")


class Line:
    """A template ready to fill: literal parts and slot makers alternating."""

    __slots__ = ("parts", "level", "logger", "text")

    def __init__(self, text: str, level: str = "DEBUG", logger: str = "") -> None:
        self.text, self.level, self.logger = text, level, logger
        pieces = _SLOT.split(text)
        # Doubled braces are literal ones, as in str.format.
        self.parts = [(p.replace("{{", "{").replace("}}", "}") if i % 2 == 0 else SLOTS[p])
                      for i, p in enumerate(pieces)]

    def fill(self, rng: random.Random) -> str:
        return "".join(p if isinstance(p, str) else p(rng) for p in self.parts)


# -- constant vocabularies (fixed per template when the library is built) ------------------

TASKS = ("_poll_rebooting_instances _heal_instance_info_cache _sync_power_states _poll_volume_usage "
         "_instance_usage_audit _reclaim_queued_deletes _cleanup_running_deleted_instances update_available_resource "
         "_check_instance_build_time _poll_unconfirmed_resizes _poll_rescued_instances _run_pending_deletes "
         "_cleanup_incomplete_migrations _cleanup_expired_console_auth_tokens _sync_scheduler_instance_info "
         "_run_image_cache_manager_pass _poll_shelved_instances _check_for_host_rename").split()
LOCKS = ("compute_resources singleton_lock storage-registry-lock placement_client provider_tree connect_volume "
         "iptables ovs_bridge_lock nova-imagecache refresh_cache image_cache_manager quota_usage").split()
FUNCS = ("ResourceTracker._update_available_resource ResourceTracker.instance_claim ResourceTracker.update_usage "
         "ComputeManager._locked_do_build_and_run_instance ComputeManager.terminate_instance "
         "ComputeManager._sync_power_states LibvirtDriver._get_guest_config SchedulerReportClient._update_inventory "
         "ComputeManager.attach_volume ComputeManager.detach_volume ResourceTracker.abort_instance_claim "
         "InstanceEvents.pop_instance_event ComputeManager._shutdown_instance").split()
NOVA_URLS = ("GET /compute/v2.1/servers/{uuid} POST /compute/v2.1/servers GET /compute/v2.1/servers/detail "
             "POST /compute/v2.1/servers/{uuid}/action DELETE /compute/v2.1/servers/{uuid} "
             "GET /compute/v2.1/flavors/{uuid} GET /compute/v2.1/os-keypairs GET /compute/v2.1/limits "
             "POST /compute/v2.1/os-volumes_boot GET /compute/v2.1/servers/{uuid}/os-interface "
             "GET /compute/v2.1/servers/{uuid}/os-volume_attachments POST /compute/v2.1/os-server-external-events "
             "GET /compute/v2.1/images/{uuid} GET /compute/v2.1/os-availability-zone").split(" ")
NOVA_URLS = [" ".join(NOVA_URLS[i : i + 2]) for i in range(0, len(NOVA_URLS), 2)]
NEUTRON_URLS = ["GET /networking/v2.0/ports", "GET /networking/v2.0/ports/{uuid}", "PUT /networking/v2.0/ports/{uuid}",
                "POST /networking/v2.0/ports", "DELETE /networking/v2.0/ports/{uuid}", "GET /networking/v2.0/networks",
                "GET /networking/v2.0/subnets", "POST /networking/v2.0/floatingips", "GET /networking/v2.0/security-groups",
                "POST /networking/v2.0/routers", "PUT /networking/v2.0/routers/{uuid}/add_router_interface",
                "GET /networking/v2.0/extensions", "DELETE /networking/v2.0/floatingips/{uuid}"]
CINDER_URLS = ["GET /volume/v3/{hex32}/volumes/{uuid}", "POST /volume/v3/{hex32}/volumes",
               "DELETE /volume/v3/{hex32}/volumes/{uuid}", "POST /volume/v3/{hex32}/volumes/{uuid}/action",
               "GET /volume/v3/{hex32}/snapshots/{uuid}", "POST /volume/v3/{hex32}/attachments",
               "GET /volume/v3/{hex32}/types", "GET /volume/v3/{hex32}/volumes/detail"]
TEMPEST_MODULES = ("compute.servers.test_servers compute.servers.test_server_actions compute.servers.test_create_server "
                   "compute.admin.test_migrations compute.volumes.test_attach_volume compute.images.test_images "
                   "compute.keypairs.test_keypairs network.test_ports network.test_routers network.test_floating_ips "
                   "network.test_security_groups volume.test_volumes_actions volume.test_volumes_snapshots "
                   "volume.test_volumes_extend image.v2.test_images identity.v3.test_tokens object_storage.test_container_services").split()
TEST_VERBS = ("create get list update delete attach detach rebuild resize reboot shelve unshelve extend snapshot "
              "migrate lock unlock pause unpause suspend resume rename show filter").split()
TEST_OBJECTS = ("server volume port router network subnet image keypair flavor snapshot floating_ip security_group "
                "metadata tags interface attachment backup quota").split()


def _const(rng: random.Random, name: str) -> str:
    if name == "TASK":
        return rng.choice(TASKS)
    if name == "LOCK":
        return rng.choice(LOCKS)
    if name == "FUNC":
        return "nova.compute." + rng.choice(FUNCS)
    if name == "NOVAURL":
        return rng.choice(NOVA_URLS)
    if name == "NEUTRONURL":
        return rng.choice(NEUTRON_URLS)
    if name == "CINDERURL":
        return rng.choice(CINDER_URLS)
    if name == "TEST":
        mod = rng.choice(TEMPEST_MODULES)
        cls = "".join(w.capitalize() for w in mod.rsplit(".", 1)[-1].split("_")[1:]) + "TestJSON"
        return f"tempest.api.{mod}.{cls}.test_{rng.choice(TEST_VERBS)}_{rng.choice(TEST_OBJECTS)}"
    if name == "OBJ":
        return rng.choice(TEST_OBJECTS)
    if name == "VERB":
        return rng.choice(TEST_VERBS)
    if name == "MOD":
        return rng.choice(["nova", "neutron", "cinder", "glance", "keystone", "placement", "swift"])
    raise KeyError(name)


# (skeleton, level, logger, variants): uppercase {SLOTS} are constants drawn when the library is built
# (so one skeleton makes several templates), lowercase ones are filled per line.
N_CPU = [
    ("Running periodic task ComputeManager.{TASK} {{(pid={pid}) run_periodic_tasks /opt/stack/oslo.service/"
     "oslo_service/periodic_task.py:{line}}}", "DEBUG", "oslo_service.periodic_task", 18),
    ('Acquiring lock "{LOCK}" by "{FUNC}" {{(pid={pid}) inner /opt/stack/oslo.concurrency/oslo_concurrency/'
     'lockutils.py:{line}}}', "DEBUG", "oslo_concurrency.lockutils", 30),
    ('Lock "{LOCK}" acquired by "{FUNC}" :: waited {dur}s {{(pid={pid}) inner /opt/stack/oslo.concurrency/'
     'oslo_concurrency/lockutils.py:{line}}}', "DEBUG", "oslo_concurrency.lockutils", 30),
    ('Lock "{LOCK}" "released" by "{FUNC}" :: held {dur}s {{(pid={pid}) inner /opt/stack/oslo.concurrency/'
     'oslo_concurrency/lockutils.py:{line}}}', "DEBUG", "oslo_concurrency.lockutils", 30),
    ("[instance: {uuid}] Took {secs} seconds to {VERB} the instance on the hypervisor.", "INFO",
     "nova.compute.manager", 10),
    ("[instance: {uuid}] Took {secs} seconds to build instance.", "INFO", "nova.compute.manager", 1),
    ("[instance: {uuid}] Start spawning the instance on the hypervisor. {{(pid={pid}) _build_and_run_instance "
     "/opt/stack/nova/nova/compute/manager.py:{line}}}", "DEBUG", "nova.compute.manager", 1),
    ("[instance: {uuid}] Creating image(s)", "INFO", "nova.virt.libvirt.driver", 1),
    ("[instance: {uuid}] Instance spawned successfully.", "INFO", "nova.virt.libvirt.driver", 1),
    ("[instance: {uuid}] Instance destroyed successfully.", "INFO", "nova.virt.libvirt.driver", 1),
    ("[instance: {uuid}] Deleting instance files /opt/stack/data/nova/instances/{uuid}_del", "INFO",
     "nova.virt.libvirt.driver", 1),
    ("Running cmd (subprocess): /usr/bin/python3 -m oslo_concurrency.prlimit --as=1073741824 --cpu=30 -- env LC_ALL=C "
     "LANG=C qemu-img info /opt/stack/data/nova/instances/_base/{hex}.part --force-share --output=json "
     "{{(pid={pid}) execute /opt/stack/oslo.concurrency/oslo_concurrency/processutils.py:{line}}}", "DEBUG",
     "oslo_concurrency.processutils", 1),
    ('CMD "qemu-img info /opt/stack/data/nova/instances/{uuid}/disk --force-share --output=json" returned: 0 in '
     '{dur}s {{(pid={pid}) execute /opt/stack/oslo.concurrency/oslo_concurrency/processutils.py:{line}}}', "DEBUG",
     "oslo_concurrency.processutils", 1),
    ("Hypervisor/Node resource view: name=ubuntu-jammy-{big} free_ram={big}MB free_disk={n}GB free_vcpus={n} "
     "pci_devices=None {{(pid={pid}) _report_hypervisor_resource_view /opt/stack/nova/nova/compute/"
     "resource_tracker.py:{line}}}", "DEBUG", "nova.compute.resource_tracker", 1),
    ("Final resource view: name=ubuntu-jammy-{big} phys_ram={big}MB used_ram={big}MB phys_disk={n}GB used_disk={n}GB "
     "total_vcpus={n} used_vcpus={n} pci_stats=[]", "INFO", "nova.compute.resource_tracker", 1),
    ("Inventory has not changed for provider {uuid} based on inventory data: {{'VCPU': {{'total': {n}, 'reserved': 0, "
     "'min_unit': 1, 'max_unit': {n}, 'step_size': 1, 'allocation_ratio': 16.0}}}} {{(pid={pid}) set_inventory_for_"
     "provider /opt/stack/nova/nova/scheduler/client/report.py:{line}}}", "DEBUG", "nova.scheduler.client.report", 1),
    ("[instance: {uuid}] Updating instance_info_cache with network_info: [{{\"id\": \"{uuid}\", \"address\": "
     "\"{mac}\", \"network\": {{\"id\": \"{uuid}\", \"bridge\": \"br-int\", \"label\": \"{name}\"}}, \"devname\": "
     "\"{tap}\", \"ovs_interfaceid\": \"{uuid}\", \"active\": true}}] {{(pid={pid}) update_instance_cache_with_nw_info "
     "/opt/stack/nova/nova/network/neutron.py:{line}}}", "DEBUG", "nova.network.neutron", 1),
    ("[instance: {uuid}] Received event network-vif-{VERB}-{uuid} {{(pid={pid}) external_instance_event "
     "/opt/stack/nova/nova/compute/manager.py:{line}}}", "DEBUG", "nova.compute.manager", 6),
    ("Converted object VIFOpenVSwitch(active=False,address={mac},bridge_name='br-int',has_traffic_filtering=True,"
     "id={uuid},network=Network({uuid}),plugin='ovs',port_profile=VIFPortProfileOpenVSwitch,"
     "preserve_on_delete=False,vif_name='{tap}') {{(pid={pid}) nova_to_osvif_vif /opt/stack/nova/nova/network/"
     "os_vif_util.py:{line}}}", "DEBUG", "nova.network.os_vif_util", 1),
    ("Successfully plugged vif VIFOpenVSwitch(active=False,address={mac},id={uuid},vif_name='{tap}')", "INFO",
     "os_vif", 1),
    ("Creating directory /opt/stack/data/nova/tmp/{tmp} for the {OBJ} cache", "DEBUG", "nova.virt.images", 4),
    ("[instance: {uuid}] Attempting claim on node ubuntu-jammy-{big}: memory {n} MB, disk {n} GB, vcpus {n} CPU",
     "INFO", "nova.compute.claims", 1),
    ("[instance: {uuid}] Claim successful on node ubuntu-jammy-{big}", "INFO", "nova.compute.claims", 1),
    ("[instance: {uuid}] Attaching volume {uuid} to /dev/vd{n}", "INFO", "nova.compute.manager", 1),
    ("[instance: {uuid}] Detaching volume {uuid}", "INFO", "nova.compute.manager", 1),
    ("Acquired lock \"refresh_cache-{uuid}\" {{(pid={pid}) lock /opt/stack/oslo.concurrency/oslo_concurrency/"
     "lockutils.py:{line}}}", "DEBUG", "oslo_concurrency.lockutils", 1),
    ("Releasing lock \"refresh_cache-{uuid}\" {{(pid={pid}) lock /opt/stack/oslo.concurrency/oslo_concurrency/"
     "lockutils.py:{line}}}", "DEBUG", "oslo_concurrency.lockutils", 1),
    ("Emitting event <LifecycleEvent: {big}.{big}, {uuid} => {VERB}d> {{(pid={pid}) emit_event /opt/stack/nova/nova/"
     "virt/driver.py:{line}}}", "DEBUG", "nova.virt.driver", 6),
    ("[instance: {uuid}] VM {VERB}d (Lifecycle Event)", "INFO", "nova.compute.manager", 6),
    ("[instance: {uuid}] During sync_power_state the instance has a pending task ({VERB}ing). Skip.", "INFO",
     "nova.compute.manager", 5),
    ("[instance: {uuid}] Ignoring supplied device name: /dev/vdb. Libvirt can't honour user-supplied dev names",
     "WARNING", "nova.virt.libvirt.driver", 1),
    ("While synchronizing instance power states, found {n} instances in the database and {n} instances on the "
     "hypervisor.", "WARNING", "nova.compute.manager", 1),
    ("[instance: {uuid}] Timeout waiting for ['network-vif-plugged-{uuid}'] for instance with vm_state building "
     "and task_state spawning. Event states are: network-vif-plugged-{uuid}: timed out after {n}.00 seconds",
     "WARNING", "nova.compute.manager", 1),
    ("AMQP server on {ip}:5672 is unreachable: timed out. Trying again in 1 seconds.: socket.timeout: timed out",
     "ERROR", "oslo.messaging._drivers.impl_rabbit", 1),
    ("Error during ComputeManager.{TASK}: nova.exception.InstanceNotFound: Instance {uuid} could not be found.",
     "ERROR", "nova.compute.manager", 3),
    ("Error from libvirt while getting description of {inst}: [Error Code 42] Domain not found: no domain with "
     "matching uuid '{uuid}' ({inst}): libvirt.libvirtError: Domain not found", "WARNING",
     "nova.virt.libvirt.driver", 1),
]
N_API = [
    ("{ip} \"{NOVAURL} HTTP/1.1\" status: {n} len: {big} microversion: 2.{n} time: {dur}", "INFO",
     "nova.api.openstack.requestlog", 14),
    ("Calling method '{VERB}_{OBJ}' {{(pid={pid}) _call_method /opt/stack/nova/nova/api/openstack/wsgi.py:{line}}}",
     "DEBUG", "nova.api.openstack.wsgi", 60),
    ("Action: '{VERB}', calling method: <bound method ServersController.{VERB} of <nova.api.openstack.compute.servers."
     "ServersController object at 0x{hex32}>>, body: {{\"{VERB}\": null}} {{(pid={pid}) _process_stack /opt/stack/"
     "nova/nova/api/openstack/wsgi.py:{line}}}", "DEBUG", "nova.api.openstack.wsgi", 20),
    ("Returning {n} to user: Instance {uuid} could not be found. {{(pid={pid}) __call__ /opt/stack/nova/nova/api/"
     "openstack/wsgi.py:{line}}}", "INFO", "nova.api.openstack.wsgi", 1),
    ("HTTP exception thrown: Instance {uuid} could not be found.", "INFO", "nova.api.openstack.wsgi", 1),
    ("Policy check for os_compute_api:os-{OBJ}:{VERB} failed with credentials {{'is_admin': False, 'user_id': "
     "'{hex32}', 'project_id': '{hex32}', 'roles': ['member', 'reader']}}", "DEBUG", "nova.policy", 40),
    ("Cannot '{VERB}' instance {uuid} while it is in task_state {VERB}ing", "INFO", "nova.api.openstack.wsgi", 20),
    ("Fetching image {uuid} from glance: HTTP GET http://{ip}/image/v2/images/{uuid} took {dur}s", "DEBUG",
     "nova.image.glance", 1),
    ("Getting {OBJ} list with filters {{'project_id': '{hex32}', 'deleted': False}} {{(pid={pid}) get_all "
     "/opt/stack/nova/nova/compute/api.py:{line}}}", "DEBUG", "nova.compute.api", 15),
    ("Searching by: {{'deleted': False, 'project_id': '{hex32}'}} {{(pid={pid}) _get_servers /opt/stack/nova/nova/"
     "api/openstack/compute/servers.py:{line}}}", "DEBUG", "nova.api.openstack.compute.servers", 1),
    ("[instance: {uuid}] {VERB} {OBJ} request accepted by conductor", "INFO", "nova.compute.api", 60),
    ("Creating event network-vif-{VERB}:{uuid} for instance {uuid} on ubuntu-jammy-{big}", "INFO",
     "nova.api.openstack.compute.server_external_events", 8),
    ("Found {n} cells: {uuid}, {uuid}", "DEBUG", "nova.objects.cell_mapping", 1),
    ("Request body is too large for {OBJ} API; truncated to {big} bytes", "WARNING", "nova.api.openstack.wsgi", 4),
    ("Unexpected exception in API method: oslo_db.exception.DBDeadlock: (pymysql.err.OperationalError) (1213, "
     "'Deadlock found when trying to get lock; try restarting transaction')", "ERROR", "nova.api.openstack.wsgi", 1),
]
Q_SVC = [
    ("{ip} \"{NEUTRONURL} HTTP/1.1\" status: {n}  len: {big} time: {dur}", "INFO", "neutron.wsgi", 13),
    ("Request body: {{'port': {{'device_id': '{uuid}', 'device_owner': 'compute:nova', 'binding:host_id': "
     "'ubuntu-jammy-{big}'}}}} prepare_request_body /opt/stack/neutron/neutron/api/v2/base.py:{line}", "DEBUG",
     "neutron.api.v2.base", 1),
    ("Port {uuid} update to {VERB}d by agent ovn-controller on ubuntu-jammy-{big}", "INFO",
     "neutron.plugins.ml2.plugin", 10),
    ("Notify nova about port {uuid} status change: {VERB}", "DEBUG", "neutron.notifiers.nova", 10),
    ("Nova event matching ['{req}']: {{'server_uuid': '{uuid}', 'name': 'network-vif-{VERB}', 'status': 'completed', "
     "'tag': '{uuid}', 'code': {n}}}", "INFO", "neutron.notifiers.nova", 8),
    ("Hash Ring: Node {hex32} (host: ubuntu-jammy-{big}) handling event \"{VERB}\" for row {uuid} (table: "
     "Logical_Switch_Port)", "DEBUG", "neutron.plugins.ml2.drivers.ovn.mech_driver.ovsdb.ovsdb_monitor", 12),
    ("Running txn n={n} command(idx={n}): {VERB}LogicalSwitchPortCommand(lport={uuid}, columns={{'external_ids': "
     "{{'neutron:device_id': '{uuid}'}}}}, if_exists=True) do_commit /opt/stack/ovsdbapp/ovsdbapp/backend/ovs_idl/"
     "transaction.py:{line}", "DEBUG", "ovsdbapp.backend.ovs_idl.transaction", 12),
    ("Attempting to bind port {uuid} on host ubuntu-jammy-{big} for vnic_type normal with profile ", "DEBUG",
     "neutron.plugins.ml2.managers", 1),
    ("Bound port: {uuid}, host: ubuntu-jammy-{big}, vif_type: ovs, vif_details: {{\"port_filter\": true}}, "
     "binding_levels: [{{'bound_driver': 'ovn', 'bound_segment': {{'id': '{uuid}'}}}}]", "DEBUG",
     "neutron.plugins.ml2.managers", 1),
    ("Policy check for {VERB}_{OBJ} on {OBJ} {uuid}: allowed", "DEBUG", "neutron.policy", 80),
    ("Agent healthcheck: found {n} active agents", "DEBUG", "neutron.db.agents_db", 1),
    ("Floating IP {uuid} associated with port {uuid} at {fip}", "INFO", "neutron.db.l3_db", 1),
    ("Tried to remove router from agent ubuntu-jammy-{big} but it is not hosted: {uuid}", "WARNING",
     "neutron.scheduler.l3_agent_scheduler", 1),
    ("Maintenance task: Fixing resource {uuid} (type: {OBJ}s) at {VERB}", "INFO",
     "neutron.plugins.ml2.drivers.ovn.mech_driver.ovsdb.maintenance", 8),
    ("Timeout in RPC method get_devices_details_list_and_failed_devices. Waiting for {n} seconds before next attempt. "
     "If the server is not down, consider increasing the rpc_response_timeout option", "WARNING",
     "neutron.common.rpc", 1),
    ("DB exceeded retry limit.: oslo_db.exception.RetryRequest: Port {uuid} is still in use", "ERROR",
     "oslo_db.api", 1),
]
C_VOL = [
    ("{ip} \"{CINDERURL} HTTP/1.1\" status: {n} len: {big} time: {dur}", "INFO", "cinder.api.openstack.wsgi", 8),
    ("Volume {uuid}: being {VERB}d", "INFO", "cinder.volume.manager", 25),
    ("Volume {uuid}: {VERB}d successfully", "INFO", "cinder.volume.manager", 25),
    ("Running cmd (subprocess): sudo cinder-rootwrap /etc/cinder/rootwrap.conf lvcreate -T -V {n}g -n "
     "volume-{uuid} stack-volumes-lvmdriver-1/stack-volumes-lvmdriver-1-pool {{(pid={pid}) execute "
     "/opt/stack/oslo.concurrency/oslo_concurrency/processutils.py:{line}}}", "DEBUG",
     "oslo_concurrency.processutils", 1),
    ('CMD "sudo cinder-rootwrap /etc/cinder/rootwrap.conf lvs --noheadings --unit=g -o vg_name,name,size --nosuffix '
     'stack-volumes-lvmdriver-1" returned: 0 in {dur}s', "DEBUG", "oslo_concurrency.processutils", 1),
    ("Initialize volume connection completed successfully.", "INFO", "cinder.volume.manager", 1),
    ("Terminate volume connection completed successfully.", "INFO", "cinder.volume.manager", 1),
    ("Image download {n}.{n} MB at {dur} MB/s to /opt/stack/data/cinder/conversion/{tmp}", "DEBUG",
     "cinder.image.image_utils", 1),
    ("Updating volume stats for backend lvmdriver-1: {{'free_capacity_gb': {n}.{n}, 'total_capacity_gb': {n}.0, "
     "'provisioned_capacity_gb': {n}.0, 'allocated_capacity_gb': {n}}}", "DEBUG", "cinder.volume.drivers.lvm", 1),
    ("Created iSCSI target iqn.2010-10.org.openstack:volume-{uuid} with LUN {n}", "INFO",
     "cinder.volume.targets.lio", 1),
    ("Task '{MOD}.volume.flows.manager.{VERB}_volume.{VERB}VolumeFromSpecTask;volume:{VERB}' ({uuid}) transitioned "
     "into state 'SUCCESS' from state 'RUNNING'", "DEBUG", "cinder.volume.flows.manager.create_volume", 30),
    ("Flow 'volume_{VERB}_manager' ({uuid}) transitioned into state 'SUCCESS' from state 'RUNNING'", "DEBUG",
     "cinder.volume.flows.manager.create_volume", 15),
    ("Snapshot {uuid} {VERB}d: {n} GB", "INFO", "cinder.volume.manager", 20),
    ("Deleting snapshot {uuid} of volume {uuid}", "INFO", "cinder.volume.drivers.lvm", 1),
    ("Volume {uuid} is still attached, need to detach first.", "WARNING", "cinder.volume.manager", 1),
    ("Unable to access the backend storage via the path /dev/mapper/stack--volumes-volume--{uuid}: device busy",
     "ERROR", "cinder.volume.drivers.lvm", 1),
]
CONSOLE = [
    ("{{{worker}}} {TEST}[id-{uuid}] [{secs}s] ... ok", "", "", 280),
    ("{{{worker}}} {TEST}[id-{uuid}] ... SKIPPED: Feature not enabled", "", "", 20),
    ("+ lib/{MOD}:{VERB}_{MOD}:{line} : sudo systemctl start devstack@{MOD}-{VERB}.service", "", "", 40),
    ("+ functions-common:git_clone:{line} : git clone https://opendev.org/openstack/{MOD} /opt/stack/{MOD}", "", "", 7),
    ("TASK [{MOD} : {VERB} {OBJ}]", "", "", 30),
    ("ok: [controller] => {{\"changed\": false, \"elapsed\": {n}}}", "", "", 1),
    ("changed: [controller]", "", "", 1),
    ("Get:{n} http://mirror.iad3.inmotion.opendev.org/ubuntu jammy/main amd64 python3-{OBJ} amd64 {n}.{n}-{n} "
     "[{big} B]", "", "", 15),
    ("Collecting {OBJ}-utils>={n}.{n}.{n}", "", "", 18),
    ("  Downloading https://mirror.iad3.inmotion.opendev.org/pypi/packages/{hex32}/{OBJ}-{n}.{n}-py3-none-any.whl "
     "({big} kB)", "", "", 18),
    ("Creating {OBJ} {uuid} with name {name}", "", "", 18),
    ("2026-12-01 13:{n}:{n}.{big} | {ip} - - \"GET /identity/v3/auth/tokens HTTP/1.1\" 200 {big}", "", "", 1),
    ("Setting up {OBJ}-tools ({n}.{n}-{n}ubuntu{n}) ...", "", "", 18),
    ("+ ./stack.sh:main:{line} : echo_summary 'Starting {MOD}'", "", "", 7),
    ("Waiting for {MOD} to start on {ip}:{port} ...", "", "", 7),
    ("WARNING: {OBJ} {uuid} still in state {VERB}ing after {secs}s, retrying", "", "", 6),
    ("Error: Command '['ip', 'netns', 'exec', 'qrouter-{uuid}', 'ping', '-c', '1', '{fip}']' returned non-zero exit "
     "status 1.", "", "", 1),
]
SYSLOG = [
    ("kernel: [{secs}] device {tap} entered promiscuous mode", "", "", 1),
    ("kernel: [{secs}] br-int: port {n}({tap}) entered {VERB} state", "", "", 8),
    ("ovs-vsctl: ovs|00001|vsctl|INFO|Called as ovs-vsctl -- --may-exist add-port br-int {tap} -- set Interface {tap} "
     "external-ids:iface-id={uuid} external-ids:attached-mac={mac}", "", "", 1),
    ("sudo[{pid}]:    stack : PWD=/opt/stack ; USER=root ; COMMAND=/usr/local/bin/{MOD}-rootwrap /etc/{MOD}/"
     "rootwrap.conf {VERB} {tap}", "", "", 40),
    ("systemd[1]: Started devstack@{MOD}-{VERB}.service - Devstack devstack@{MOD}-{VERB}.service.", "", "", 20),
    ("libvirtd[{pid}]: internal error: could not get interface {tap} statistics", "", "", 1),
    ("iscsid[{pid}]: Connection{n}:0 to [target: iqn.2010-10.org.openstack:volume-{uuid}, portal: {ip},3260] through "
     "[iface: default] is operational now", "", "", 1),
    ("kernel: [{secs}] audit: type=1400 audit({big}.{n}:{n}): apparmor=\"DENIED\" operation=\"open\" profile=\""
     "libvirt-{uuid}\" name=\"/opt/stack/data/nova/instances/{uuid}/console.log\" pid={pid} comm=\"qemu-system-x86\"",
     "", "", 1),
    ("ovsdb-server[{pid}]: ovs|{n}|reconnect|INFO|unix#{n}: connection dropped (Connection reset by peer)", "", "", 1),
    ("systemd[1]: {MOD}-{VERB}.timer: Succeeded.", "", "", 30),
]

FILES = {  # name: (skeletons, share of the build's lines, oslo format?, gzipped?)
    "job-output.txt": (CONSOLE, 0.30, False, False),
    "logs/screen-n-cpu.txt": (N_CPU, 0.22, True, False),
    "logs/screen-n-api.txt": (N_API, 0.14, True, False),
    "logs/screen-q-svc.txt": (Q_SVC, 0.14, True, True),
    "logs/screen-c-vol.txt": (C_VOL, 0.10, True, False),
    "logs/syslog.txt": (SYSLOG, 0.10, False, True),
}
TRACEBACK = ['Traceback (most recent call last):',
             '  File "/opt/stack/{mod}/{mod}/{where}.py", line {line}, in {func}',
             '    {call}',
             '  File "/usr/local/lib/python3.10/dist-packages/{dep}.py", line {line}, in {dfunc}',
             '    raise exc']

JOBS = ["tempest-full-py3", "nova-next", "neutron-ovn-tempest-ovs-release", "cinder-tempest-plugin-lvm-lio-barbican",
        "grenade", "tempest-integrated-compute"]
PROJECTS = ["openstack/nova", "openstack/neutron", "openstack/cinder", "openstack/glance", "openstack/tempest"]


@dataclass(frozen=True)
class Bug:
    name: str
    known: bool
    jobs: tuple[str, ...]
    file: str  # where its lines are
    lines: tuple[tuple[str, str, int], ...]  # (text, level, repeats) in order
    markers: tuple[str, ...]  # constant phrases of its lines, to recognise them in any output
    test: str  # the tempest test that fails with it
    query: str = ""  # its fingerprint, when known


BUGS = [
    Bug("U1 qemu monitor", False, ("tempest-full-py3", "nova-next"), "logs/screen-n-cpu.txt",
        (("[instance: {uuid}] Instance failed to spawn: libvirt.libvirtError: internal error: qemu unexpectedly closed "
          "the monitor: qemu-system-x86_64: -chardev pty,id=charserial0: char device redirected to /dev/pts/{n} "
          "(label charserial0)", "ERROR", 1),
         ("[instance: {uuid}] Terminating instance after failed spawn of {inst}", "INFO", 1)),
        ("qemu unexpectedly closed the monitor", "Instance failed to spawn: libvirt", "after failed spawn of"),
        "tempest.api.compute.servers.test_create_server.ServersTestJSON.test_verify_server_details"),
    Bug("U2 OVN row not found", False, ("neutron-ovn-tempest-ovs-release", "tempest-full-py3"), "logs/screen-q-svc.txt",
        (("Mechanism driver 'ovn' failed in update_port_postcommit: ovsdbapp.backend.ovs_idl.idlutils.RowNotFound: "
          "Cannot find Logical_Switch_Port with name={uuid}", "ERROR", 1),
         ("Exception during update of port {uuid} on host ubuntu-jammy-{big}, rolling back the binding", "WARNING", 3)),
        ("Cannot find Logical_Switch_Port", "Mechanism driver 'ovn' failed in update_port_postcommit",
         "rolling back the binding"),
        "tempest.api.network.test_ports.PortsTestJSON.test_update_port_with_security_group_and_extra_attributes"),
    Bug("U3 qemu-img convert", False, ("cinder-tempest-plugin-lvm-lio-barbican",), "logs/screen-c-vol.txt",
        (("Failed to copy image {uuid} to volume: {uuid}: oslo_concurrency.processutils.ProcessExecutionError: "
          "Unexpected error while running command. Command: qemu-img convert -O raw -t none -f qcow2 "
          "/opt/stack/data/cinder/conversion/image_download_{uuid}_{tmp} /dev/mapper/stack--volumes--lvmdriver--1-"
          "volume--{uuid} Exit code: 1 Stderr: 'qemu-img: error while writing at byte {big}: No space left on "
          "device'", "ERROR", 1),),
        ("qemu-img: error while writing at byte", "Failed to copy image"),
        "cinder_tempest_plugin.api.volume.test_create_from_image.VolumeFromImageTest.test_create_from_image_multiple"),
    Bug("U4 reboot hard timeout", False, ("tempest-full-py3", "tempest-integrated-compute"), "job-output.txt",
        (("tempest.lib.exceptions.TimeoutException: Request timed out", "", 1),
         ("Details: (ServerActionsTestJSON:test_reboot_server_hard) Server {uuid} failed to reach ACTIVE status and "
          "task state \"None\" within the required time ({n} s). Server boot request ID: {req}. Current status: "
          "REBOOT. Current task state: reboot_started_hard.", "", 1)),
        ("Current task state: reboot_started_hard", "(ServerActionsTestJSON:test_reboot_server_hard) Server",
         "TimeoutException: Request timed out"),
        "tempest.api.compute.servers.test_server_actions.ServerActionsTestJSON.test_reboot_server_hard"),
    Bug("U5 SSH no route", False, tuple(JOBS), "job-output.txt",
        (("ssh: connect to host {fip} port 22: No route to host", "", 8),
         ("tempest.lib.exceptions.SSHTimeout: Connection to the {fip} via SSH timed out.", "", 1),
         ("User: cirros, Password: None", "", 1)),
        ("No route to host", "via SSH timed out"),
        "tempest.scenario.test_network_basic_ops.TestNetworkBasicOps.test_network_basic_ops"),
    Bug("U6 keystone connect failure", False, ("grenade", "nova-next"), "logs/screen-n-api.txt",
        (("Unexpected exception in API method: keystoneauth1.exceptions.connection.ConnectFailure: Unable to establish "
          "connection to http://{ip}/identity/v3/auth/tokens: ('Connection aborted.', RemoteDisconnected('Remote end "
          "closed connection without response'))", "ERROR", 2),),
        ("Remote end closed connection without response", "keystoneauth1.exceptions.connection.ConnectFailure"),
        "tempest.api.compute.keypairs.test_keypairs.KeyPairsTestJSON.test_keypair_create_delete"),
    Bug("K1 messaging timeout", True, ("tempest-full-py3", "nova-next", "grenade"), "logs/screen-n-cpu.txt",
        (("[instance: {uuid}] Failed to allocate network(s): oslo_messaging.exceptions.MessagingTimeout: Timed out "
          "waiting for a reply to message ID {hex32}", "ERROR", 1),),
        ("Timed out waiting for a reply to message ID",),
        "tempest.api.compute.servers.test_servers.ServersTestJSON.test_create_specify_keypair",
        'message:"Timed out waiting for a reply to message ID" AND tags:"screen-n-cpu.txt"'),
    Bug("K2 hash sum mismatch", True, tuple(JOBS), "job-output.txt",
        (("E: Failed to fetch http://mirror.iad3.inmotion.opendev.org/ubuntu/pool/main/p/python3-{OBJ}.deb  Hash Sum "
          "mismatch", "", 1),),
        ("Hash Sum mismatch",), "",
        'message:"Hash Sum mismatch" AND tags:"console"'),
    Bug("K3 mysql gone", True, ("cinder-tempest-plugin-lvm-lio-barbican", "grenade"), "logs/screen-c-vol.txt",
        (("DB error: (pymysql.err.OperationalError) (2013, 'Lost connection to MySQL server during query')", "ERROR", 1),),
        ("Lost connection to MySQL server during query",),
        "tempest.api.volume.test_volumes_actions.VolumesActionsTest.test_attach_detach_volume_to_instance",
        'message:"Lost connection to MySQL server during query" AND tags:"screen-c-vol.txt"'),
    Bug("K4 no valid host", True, ("nova-next", "tempest-integrated-compute"), "logs/screen-n-api.txt",
        (("[instance: {uuid}] No valid host was found. There are not enough hosts available.", "WARNING", 1),),
        ("No valid host was found",),
        "tempest.api.compute.admin.test_migrations.MigrationsAdminTest.test_cold_migration",
        'message:"No valid host was found. There are not enough hosts available" AND tags:"screen-n-api.txt"'),
    Bug("K5 job timeout", True, tuple(JOBS), "job-output.txt",
        (("RUN END RESULT_TIMED_OUT: [untrusted : opendev.org/openstack/devstack/playbooks/pre.yaml@master]", "", 1),),
        ("RESULT_TIMED_OUT",), "",
        'message:"RESULT_TIMED_OUT" AND tags:"console"'),
    Bug("K6 ovs agent down", True, ("neutron-ovn-tempest-ovs-release",), "logs/screen-q-svc.txt",
        (("Agent ovn-controller on host ubuntu-jammy-{big} is not alive: heartbeat missed for {n} seconds", "ERROR", 1),),
        ("heartbeat missed for",),
        "tempest.api.network.test_routers.RoutersTest.test_add_multiple_router_interfaces",
        'message:"heartbeat missed for" AND tags:"screen-q-svc.txt"'),
]
BUG_SIZES = {"U1 qemu monitor": 6, "U2 OVN row not found": 5, "U3 qemu-img convert": 4, "U4 reboot hard timeout": 3,
             "U5 SSH no route": 2, "U6 keystone connect failure": 2, "K1 messaging timeout": 5,
             "K2 hash sum mismatch": 4, "K3 mysql gone": 4, "K4 no valid host": 3, "K5 job timeout": 3,
             "K6 ovs agent down": 4}
BOILERPLATE_MARKERS = ("Build FAILURE", "output below", "InvocationError", " - Failed: ")


def bug_phrases(bug: Bug) -> tuple[str, ...]:
    """What recognises any line of the bug: its markers and the test that fails with it."""
    return bug.markers + ((bug.test.rsplit(".", 1)[-1],) if bug.test else ())


class Library:
    """Every file's templates, ranked for Zipf's law: the same for every build."""

    def __init__(self, seed: int = 15, exponent: float = 1.1) -> None:
        rng = random.Random(seed)
        self.files: dict[str, tuple[list[Line], list[float]]] = {}
        for name, (skeletons, _, _, _) in FILES.items():
            lines: list[Line] = []
            for skeleton, level, logger, variants in skeletons:
                seen: set[str] = set()
                for _ in range(variants * 3):
                    text = _CONST.sub(lambda m: _const(rng, m.group(1)), skeleton)
                    if text not in seen:
                        seen.add(text)
                        lines.append(Line(text, level, logger))
                    if len(seen) >= variants:
                        break
            # Loud templates go to the tail: a passing job prints an ERROR now and then, not every minute.
            quiet = [line for line in lines if line.level not in ("ERROR", "WARNING")]
            loud = [line for line in lines if line.level in ("ERROR", "WARNING")]
            rng.shuffle(quiet)
            rng.shuffle(loud)
            ranked = quiet + loud
            weights = list(itertools.accumulate(1 / (rank + 1) ** exponent for rank in range(len(ranked))))
            self.files[name] = (ranked, weights)

    def counts(self) -> dict[str, int]:
        return {name: len(lines) for name, (lines, _) in self.files.items()}


# -- writing a build ------------------------------------------------------------------------

def _oslo(stamp: float, pid: str, level: str, logger: str, ctx: str, text: str) -> str:
    return (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp)) + f".{int(stamp * 1000) % 1000:03d} {pid} "
            f"{level} {logger} [{ctx}] {text}\n")


def _console(stamp: float, text: str) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp)) + f".{int(stamp * 1e6) % 1_000_000:06d} | controller | {text}\n"


def _syslog(stamp: float, host: str, text: str) -> str:
    return time.strftime("%b %d %H:%M:%S", time.gmtime(stamp)) + f" {host} {text}\n"


def _traceback(rng: random.Random, mod: str) -> list[str]:
    values = {"mod": mod, "where": rng.choice(["compute/manager", "api/v2/base", "volume/manager", "db/api"]),
              "func": rng.choice(["_do_build_and_run_instance", "_update", "create_volume", "wrapper"]),
              "call": rng.choice(["return f(*args, **kwargs)", "self._do_work(context)", "result = func(*a, **kw)"]),
              "dep": rng.choice(["oslo_messaging/rpc/server", "sqlalchemy/engine/base", "keystoneauth1/session"]),
              "dfunc": rng.choice(["_process_incoming", "_execute_context", "request"]), "line": ""}
    out = []
    for frame in TRACEBACK:
        values["line"] = str(rng.randint(20, 3000))
        out.append(frame.format(**values))
    return out


def write_build(root: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One build's files from ``spec`` (see ``specs``): returns what was written."""
    library = Library()
    rng = random.Random(spec["seed"])
    uuid = spec["uuid"]
    build_dir = Path(root) / uuid
    (build_dir / "logs").mkdir(parents=True, exist_ok=True)
    (build_dir / "build.json").write_text(json.dumps(spec["fields"] | {"build_uuid": uuid}))
    bug = next((b for b in BUGS if b.name == spec["bug"]), None)
    failed = spec["fields"]["build_status"] != "SUCCESS"
    total = spec["lines"]
    start, end = spec["start"], spec["start"] + spec["duration"]
    host = f"ubuntu-jammy-rax-dfw-{rng.randint(10**7, 10**8)}"
    bug_at = rng.uniform(0.85, 0.95)
    written = 0
    for name, (_, share, oslo, gzipped) in FILES.items():
        templates, weights = library.files[name]
        n = int(total * share)
        tail: list[str] = []  # the console's end: summary, failure block
        if name == "job-output.txt":
            n -= 12
        drawn = rng.choices(templates, cum_weights=weights, k=n)
        step = (end - start) / max(n, 1)
        stamp = start
        out: list[str] = []
        pids = {t.logger: str(rng.randint(1000, 99999)) for t in templates}
        bug_index = int(n * bug_at) if (bug is not None and bug.file == name) else -1
        for i, template in enumerate(drawn):
            stamp += rng.uniform(0, 2 * step)
            if i == bug_index:
                out.extend(_bug_lines(rng, bug, stamp, pids.get(bug_lines_logger(name), "4242"), oslo, name, host))
            text = template.fill(rng)
            if oslo:
                ctx = f"None {SLOTS['req'](rng)} tempest-{template.logger.split('.')[-1]}-{rng.randint(10**8, 10**10)}" \
                    if rng.random() < 0.5 else "-"
                out.append(_oslo(stamp, pids[template.logger], template.level, template.logger, ctx, text))
                if template.level == "ERROR":
                    for frame in _traceback(rng, name.split("-")[-1].split(".")[0]):
                        out.append(_oslo(stamp, pids[template.logger], "ERROR", template.logger, "-", frame))
            elif name == "logs/syslog.txt":
                out.append(_syslog(stamp, host, text))
            else:
                out.append(_console(stamp, text))
        if name == "job-output.txt":
            tail = _console_end(rng, bug, failed)
            out.extend(_console(stamp + k, line) for k, line in enumerate(tail, 1))
        path = build_dir / name
        if gzipped:
            with gzip.open(str(path) + ".gz", "wt", compresslevel=3) as handle:
                handle.writelines(out)
        else:
            with open(path, "w") as handle:
                handle.writelines(out)
        written += len(out)
    return {"uuid": uuid, "dir": str(build_dir), "lines": written, "bug": spec["bug"], "job": spec["fields"]["build_name"],
            "status": spec["fields"]["build_status"], "size": spec["lines"], "change": spec["fields"]["build_change"]}


def bug_lines_logger(name: str) -> str:
    return {"logs/screen-n-cpu.txt": "nova.compute.manager", "logs/screen-n-api.txt": "nova.api.openstack.wsgi",
            "logs/screen-q-svc.txt": "neutron.plugins.ml2.managers",
            "logs/screen-c-vol.txt": "cinder.volume.manager"}.get(name, "")


def _bug_lines(rng: random.Random, bug: Bug, stamp: float, pid: str, oslo: bool, name: str, host: str) -> list[str]:
    logger = bug_lines_logger(name)
    out = []
    for k, (text, level, repeats) in enumerate(bug.lines):
        for r in range(repeats):
            filled = Line(_CONST.sub(lambda m: _const(rng, m.group(1)), text)).fill(rng)
            at = stamp + 0.01 * (k * 10 + r)
            if oslo:
                out.append(_oslo(at, pid, level, logger, f"None {SLOTS['req'](rng)} admin admin", filled))
                if level == "ERROR" and k == 0 and r == 0:
                    out.extend(_oslo(at, pid, "ERROR", logger, "-", frame) for frame in _traceback(rng, "nova"))
            else:
                out.append(_console(at, filled))
    return out


def _console_end(rng: random.Random, bug: Bug | None, failed: bool) -> list[str]:
    ran = rng.randint(1100, 1400)
    failures = 1 + (rng.random() < 0.3) if failed else 0
    skipped = rng.randint(40, 120)
    lines = []
    if failed and bug is not None and bug.test:
        lines.append(f"{{{rng.randint(0, 3)}}} {bug.test}[id-{_uuid(rng)}] [{rng.expovariate(0.01):.6f}s] ... FAILED")
    if failed:
        lines += ["", "==============================", f"Failed {failures} tests - output below:",
                  "=============================="]
    lines += ["", "======", "Totals", "======", f"Ran: {ran} tests in {rng.uniform(2000, 4000):.4f} sec.",
              f" - Passed: {ran - skipped - failures}", f" - Skipped: {skipped}", " - Expected Fail: 0",
              " - Unexpected Success: 0", f" - Failed: {failures}",
              f"Sum of execute time for each test: {rng.uniform(5000, 9000):.4f} sec."]
    if failed:
        lines += ["ERROR: InvocationError for command /opt/stack/tempest/.tox/tempest/bin/tempest run --regex "
                  "'(^tempest\\.(api|scenario))' --concurrency=4 (exited with code 1)",
                  "Build FAILURE"]
    else:
        lines.append("Build SUCCESS")
    return lines


def specs(count: int, lines: int, big: list[tuple[int, str, str | None]], now: float, seed: int = 15) -> list[dict]:
    """What each build is: ``count`` builds of ``lines`` (45% failing, on the
    bugs of BUG_SIZES) and the ``big`` ones (lines, status, bug)."""
    rng = random.Random(seed)
    failing = [name for name, size in BUG_SIZES.items() for _ in range(size)]
    assert len(failing) <= count, (len(failing), count)
    plan: list[tuple[int, str | None]] = [(lines, name) for name in failing] + [(lines, None)] * (count - len(failing))
    plan += [(size, bug) for size, _, bug in big]
    rng.shuffle(plan)
    found = []
    change = 870000
    rechecked: list[str] = []
    for number, (size, bug_name) in enumerate(plan):
        bug = next((b for b in BUGS if b.name == bug_name), None)
        job = rng.choice(bug.jobs) if bug else JOBS[number % len(JOBS)]
        duration = 2 * 3600 * max(1.0, size / lines) ** 0.5
        start = now - rng.uniform(duration + 600, DAYS * 86400)
        change += 1
        this_change = str(change)
        # The biggest unknown bug hits one change twice (a blind recheck): clusters rank by changes, then builds.
        if bug_name == "U1 qemu monitor" and size == lines:
            rechecked.append(this_change)
            if len(rechecked) == 2:
                this_change = rechecked[0]
        uuid = f"{rng.getrandbits(128):032x}"
        fields = {"build_name": job, "build_status": "FAILURE" if bug else "SUCCESS", "voting": "1",
                  "build_queue": "gate" if number % 2 else "check", "build_change": this_change, "build_patchset": "1",
                  "project": PROJECTS[number % len(PROJECTS)], "build_branch": "master",
                  "build_node": f"ubuntu-jammy-{number}", "log_url": f"https://logs.example.org/{uuid[:3]}/{uuid}/"}
        found.append({"uuid": uuid, "seed": seed * 1_000_003 + number, "lines": size, "start": start,
                      "duration": duration, "bug": bug_name, "fields": fields})
    return found


def _write(job: tuple[str, dict]) -> dict:
    return write_build(*job)


def write_builds(root: Path, wanted: list[dict], processes: int = 2) -> tuple[list[dict], float]:
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    jobs = sorted(((str(root), spec) for spec in wanted), key=lambda job: -job[1]["lines"])  # the big ones first
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        written = pool.map(_write, jobs, chunksize=1)
    return written, time.perf_counter() - started


# -- running things -------------------------------------------------------------------------

@dataclass
class Run:
    wall: float
    cpu: float
    rss: float  # MiB
    out: str = ""

    def cells(self) -> str:
        return f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU, {self.rss:.0f} MiB"


def child(command: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> Run:
    """One child process: wall seconds, CPU seconds (its own and its
    waited-for children's: a shell pipeline's every stage) from its rusage,
    and its peak RSS as GNU time reports it. (The rusage's own peak RSS
    starts at this process's: a forked child's copy of it counts until exec.)"""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as feed, \
            tempfile.NamedTemporaryFile("r") as peak:
        if stdin is not None:
            feed.write(stdin.encode())
            feed.seek(0)
        started = time.perf_counter()
        process = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", peak.name, *command], env=env, stdout=out,
                                   stderr=err, stdin=feed)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode:
            raise SystemExit(f"{' '.join(command[:4])} failed ({process.returncode}): "
                             f"{err.read().decode(errors='replace')[-2000:]}")
        rss = int(peak.read().split()[-1]) / 1024
        return Run(wall, usage.ru_utime + usage.ru_stime, rss, out.read().decode(errors="replace"))


def uptime() -> str:
    return open("/proc/loadavg").read().split()[0]


def env_for(data: Path, queries: Path) -> dict[str, str]:
    return {**os.environ, "ER_DATA_DIR": str(data), "ER_WATCH_QUERIES": str(queries)}


def fresh_data(work: Path, name: str, source: str = "data") -> Path:
    """A data directory holding the cached index (linked) and a fresh copy
    of the results as ingest left them: nothing explained yet. ``source``:
    the ingested data directory under ``work`` (``--data``)."""
    data = work / name
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(mode=0o700)
    (data / "index").symlink_to(work / source / "index")
    shutil.copy(work / source / "results.sqlite3", data / "results.sqlite3")
    return data


def ingest_again(work: Path, name: str, queries: Path) -> dict:
    """The cached builds ingested by this code into ``work/name`` (once):
    what the writer keeps as it indexes (template sets) is then there, and
    the ingest's cost can be set beside the cache's."""
    data = work / name
    done = data / "ingest.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(mode=0o700)
    load = uptime()
    run = child([str(BIN / "elastic-recheck"), "ingest", "--builds", str(work / "builds"), "--keep-debug"],
                env_for(data, queries))
    found = run.__dict__ | {"out": run.out.strip(), "load": load, "load_after": uptime()}
    done.write_text(json.dumps(found))
    return found


# -- the cache -----------------------------------------------------------------------------

def build_cache(work: Path, count: int, lines: int, big: list[tuple[int, str, str | None]]) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    now = time.time()
    queries = work / "queries"
    queries.mkdir()
    for number, bug in enumerate(b for b in BUGS if b.known):
        (queries / f"{1500001 + number}.yaml").write_text(json.dumps({"query": bug.query, "title": bug.name}))
    wanted = specs(count, lines, big, now)
    print(f"  generating {len(wanted)} builds ({sum(s['lines'] for s in wanted):,} lines) ...", flush=True)
    written, generate_s = write_builds(work / "builds", wanted)
    print(f"  generated in {generate_s:.0f}s; indexing with `ingest --builds` (load {uptime()}) ...", flush=True)
    data = work / "data"
    data.mkdir(mode=0o700)
    run = child([str(BIN / "elastic-recheck"), "ingest", "--builds", str(work / "builds"), "--keep-debug"],
                env_for(data, queries))
    print("  " + run.out.strip().splitlines()[-1], f"({run.cells()})", flush=True)
    info = {"created": now, "generate_s": generate_s, "ingest": run.__dict__ | {"out": run.out.strip()},
            "builds": written, "library": Library().counts()}
    (work / "cache.json").write_text(json.dumps(info))
    return info


# -- 1. explain against the alternatives --------------------------------------------------

def files_of(build_dir: str) -> list[str]:
    return sorted(str(p) for p in Path(build_dir).rglob("*") if p.is_file() and p.name != "build.json")


def shell_pipeline(work: Path, failed: dict, passing: list[dict], mask: str) -> tuple[Run, int, int, bool]:
    """The failed build's distinct masked lines that no passing build has:
    (run, distinct masked lines of the passing builds, new ones, bug among them)."""
    out = work / "shell"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    script = textwrap.dedent(f"""\
        set -euo pipefail
        export LC_ALL=C
        body() {{ for f in "$@"; do case "$f" in *.gz) gzip -dc "$f";; *) cat "$f";; esac; done; }}
        body {' '.join(f for b in passing for f in files_of(b['dir']))} | sed -E '{mask}' | sort -u > {out}/known
        body {' '.join(files_of(failed['dir']))} | sed -E '{mask}' | sort -u > {out}/failed
        comm -23 {out}/failed {out}/known > {out}/new
        """)
    run = child(["bash", "-c", script])
    known = sum(1 for _ in open(out / "known", "rb"))
    new = (out / "new").read_text(errors="replace").splitlines()
    bug = next(b for b in BUGS if b.name == failed["bug"])
    return run, known, len(new), any(bug.markers[0] in line for line in new)


# What both masking children start with: the spec on stdin, and the lines of
# its files, gzipped or not.
CHILD_PRELUDE = r'''
import gzip, json, sys, time
sys.path.insert(0, sys.argv[1])
spec = json.loads(sys.stdin.read())

def lines(files):
    for f in files:
        opener = gzip.open if f.endswith(".gz") else open
        with opener(f, "rt", errors="replace") as handle:
            for line in handle:
                yield line.rstrip("\n")
'''


DRAIN3_CHILD = CHILD_PRELUDE + r'''
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig
from drain3.masking import MaskingInstruction
from elastic_recheck.templates import line_body

config = TemplateMinerConfig()
# The masking of drain3's own example configuration (drain3.ini), plus UUIDs.
for pattern, mask in [
        (r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})((?=[^A-Za-z0-9])|$)", "UUID"),
        (r"((?<=[^A-Za-z0-9])|^)(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))((?=[^A-Za-z0-9])|$)", "ID"),
        (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
        (r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{6,} ?){3,}((?=[^A-Za-z0-9])|$)", "SEQ"),
        (r"((?<=[^A-Za-z0-9])|^)([0-9A-F]{4} ?){4,}((?=[^A-Za-z0-9])|$)", "SEQ"),
        (r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
        (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM")]:
    config.masking_instructions.append(MaskingInstruction(pattern, mask))
config.profiling_enabled = False
miner = TemplateMiner(config=config)
started = time.process_time(); wall = time.perf_counter()
trained = 0
for line in lines(spec["passing"]):
    miner.add_log_message(line_body(line))
    trained += 1
train_cpu = time.process_time() - started; train_wall = time.perf_counter() - wall
started = time.process_time(); wall = time.perf_counter()
flagged = []
matched = 0
for line in lines(spec["failed"]):
    if miner.match(line_body(line)) is None:
        flagged.append(line)
    matched += 1
match_cpu = time.process_time() - started; match_wall = time.perf_counter() - wall
distinct = len({miner.masker.mask(line_body(l)) for l in flagged})
print(json.dumps({"templates": len(miner.drain.clusters), "trained": trained, "train_wall": train_wall,
                  "train_cpu": train_cpu, "matched": matched, "match_wall": match_wall, "match_cpu": match_cpu,
                  "flagged": len(flagged), "flagged_distinct": distinct,
                  "bug": any(m in l for l in flagged for m in spec["markers"])}))
'''


TEMPLATES_CHILD = CHILD_PRELUDE + r'''
from elastic_recheck.templates import template_key, template_text

started = time.process_time(); wall = time.perf_counter()
known = set()
trained = 0
for line in lines(spec["passing"]):
    known.add(template_key(template_text(line)))
    trained += 1
train_cpu = time.process_time() - started; train_wall = time.perf_counter() - wall
started = time.process_time(); wall = time.perf_counter()
flagged = []
matched = 0
for line in lines(spec["failed"]):
    text = template_text(line)
    if template_key(text) not in known:
        flagged.append((text, line))
    matched += 1
match_cpu = time.process_time() - started; match_wall = time.perf_counter() - wall
print(json.dumps({"templates": len(known), "trained": trained, "train_wall": train_wall, "train_cpu": train_cpu,
                  "matched": matched, "match_wall": match_wall, "match_cpu": match_cpu, "flagged": len(flagged),
                  "flagged_distinct": len({t for t, _ in flagged}),
                  "bug": any(m in l for _, l in flagged for m in spec["markers"])}))
'''


def templates_run(failed: dict, passing: list[dict]) -> tuple[Run, dict]:
    """The project's masking (templates.template_text) alone, on the same raw lines as drain3."""
    bug = next(b for b in BUGS if b.name == failed["bug"])
    spec = {"passing": [f for b in passing for f in files_of(b["dir"])], "failed": files_of(failed["dir"]),
            "markers": [bug.markers[0]]}
    run = child([sys.executable, "-c", TEMPLATES_CHILD, str(Path(__file__).resolve().parents[1])],
                stdin=json.dumps(spec))
    return run, json.loads(run.out)


def drain3_run(failed: dict, passing: list[dict]) -> tuple[Run, dict] | None:
    try:
        import drain3  # noqa: F401
    except ImportError:
        return None
    bug = next(b for b in BUGS if b.name == failed["bug"])
    spec = {"passing": [f for b in passing for f in files_of(b["dir"])], "failed": files_of(failed["dir"]),
            "markers": [bug.markers[0]]}
    run = child([sys.executable, "-c", DRAIN3_CHILD, str(Path(__file__).resolve().parents[1])], stdin=json.dumps(spec))
    return run, json.loads(run.out)


def explain_rank(found: dict, bug: Bug) -> tuple[int | None, int | None]:
    """The rank (1-based) of the first line of the bug, and of the first
    line that is the bug's own first line (its exception), in explain's list."""
    first = next((i for i, line in enumerate(found["lines"], 1) if any(m in line["message"] for m in bug_phrases(bug))),
                 None)
    main = next((i for i, line in enumerate(found["lines"], 1) if bug.markers[0] in line["message"]), None)
    return first, main


def baseline_templates(data: Path, uuids: list[str]) -> int:
    from elastic_recheck.results import ResultStore
    from elastic_recheck.explain import ExplainLimits
    from elastic_recheck.templates import TEMPLATE_VERSION

    store = ResultStore(data / "results.sqlite3")
    try:
        keys: set[int] = set()
        for uuid in uuids:
            keys |= store.templates(uuid, ExplainLimits().max_file_lines, TEMPLATE_VERSION) or set()
        return len(keys)
    finally:
        store.close()


def measure_explain(work: Path, info: dict, queries: Path, with_drain3: bool, source: str = "data") -> list[dict]:
    builds = info["builds"]
    by_uuid = {b["uuid"]: b for b in builds}
    unknown_failed = [b for b in builds if b["bug"] and not next(x for x in BUGS if x.name == b["bug"]).known]
    small = min((b for b in unknown_failed if b["bug"] == "U2 OVN row not found"), key=lambda b: b["size"])
    large = max(unknown_failed, key=lambda b: b["size"])
    rows = []
    for target in (small, large):
        bug = next(x for x in BUGS if x.name == target["bug"])
        data = fresh_data(work, "explain-data", source)
        env = env_for(data, queries)
        command = [str(BIN / "elastic-recheck"), "explain", "--build", target["uuid"], "--days", "0", "--json"]
        load = uptime()
        cold = child(command, env)
        warm = child(command, env)
        found = json.loads(cold.out)
        again = json.loads(warm.out)
        first, main = explain_rank(found, bug)
        passing = [by_uuid[u] for u in found["baseline"]]
        row = {"build": target, "bug": bug.name, "load": load, "cold": cold, "warm": warm, "found": found,
               "same_warm": [l["message"] for l in found["lines"]] == [l["message"] for l in again["lines"]],
               "rank_first": first, "rank_main": main, "top3": first is not None and first <= 3,
               "baseline_templates": baseline_templates(data, found["baseline"]),
               "raw_lines": target["lines"], "passing_raw_lines": sum(b["lines"] for b in passing)}
        print(f"\nexplain {target['size']:,}-line failed build ({bug.name}, {target['job']}; load {load}): "
              f"cold {cold.cells()}; warm {warm.cells()}")
        print(f"  read {found['lines_read']:,} of {found['lines_total']:,} indexed lines; {found['new_templates']} new "
              f"templates against {len(passing)} passing builds ({found['baseline_scope']}); the passing builds have "
              f"{row['baseline_templates']:,} templates; bug's first line at rank {first}, its exception at {main}")
        for i, line in enumerate(found["lines"][:5], 1):
            print(f"   {i}. [{line['score']}] {line['filename']} {line['level']}: {line['message'][:150]}")
        for name, mask in (("digits", "s/[0-9]+/0/g"), ("tokens with a digit", "s/[^ ]*[0-9][^ ]*/0/g")):
            run, known, new, hit = shell_pipeline(work, target, passing, mask)
            row[f"shell {name}"] = {"run": run, "known": known, "new": new, "bug": hit}
            print(f"  shell pipeline, sed -E '{mask}' | sort -u | comm -23: {run.cells()}; "
                  f"{(target['lines'] + row['passing_raw_lines']) / run.wall:,.0f} lines/s; {known:,} distinct masked "
                  f"lines in the passing builds; {new:,} new in the failed build; bug among them: {hit}")
        run, d = templates_run(target, passing)
        row["templates"] = {"run": run, **d}
        print(f"  the project's masking alone (templates.template_text, a set of keys), same raw lines: {run.cells()}; "
              f"{d['trained']:,} lines at {d['trained'] / d['train_wall']:,.0f} lines/s ({d['train_cpu']:.1f} s CPU), "
              f"matched {d['matched']:,} at {d['matched'] / d['match_wall']:,.0f} lines/s; {d['templates']:,} templates "
              f"in the passing builds; {d['flagged']:,} lines flagged new ({d['flagged_distinct']:,} distinct); bug "
              f"flagged: {d['bug']}")
        if with_drain3:
            found3 = drain3_run(target, passing)
            if found3 is None:
                print("  drain3: not installed (.venv/bin/pip install drain3), skipped")
            else:
                run, d = found3
                row["drain3"] = {"run": run, **d}
                print(f"  drain3 TemplateMiner: {run.cells()}; trained on {d['trained']:,} lines at "
                      f"{d['trained'] / d['train_wall']:,.0f} lines/s ({d['train_cpu']:.1f} s CPU), matched "
                      f"{d['matched']:,} at {d['matched'] / d['match_wall']:,.0f} lines/s; {d['templates']:,} templates "
                      f"in the passing builds; {d['flagged']:,} lines flagged new ({d['flagged_distinct']:,} distinct "
                      f"masked); bug flagged: {d['bug']}")
        rows.append(row)
    return rows


# -- 2. suggest ------------------------------------------------------------------------------

def judge_clusters(lines: list[dict], builds: list[dict]) -> dict:
    """Each cluster against the bugs injected into its builds."""
    by_uuid = {b["uuid"]: b for b in builds}
    unknown = [b.name for b in BUGS if not b.known]
    injected = {name: {b["uuid"] for b in builds if b["bug"] == name} for name in unknown}
    mixed, boilerplate, noise, pure = [], [], [], []
    holders: dict[str, list[int]] = {name: [] for name in unknown}
    for rank, cluster in enumerate(lines, 1):
        bugs = {by_uuid[u]["bug"] for u in cluster["builds"]}
        text = cluster["example"]["message"]
        if len(bugs) > 1:
            mixed.append(rank)
        if any(m in text for m in BOILERPLATE_MARKERS):
            boilerplate.append(rank)
        elif not any(m in text for b in BUGS for m in bug_phrases(b)):
            noise.append(rank)  # a line passing builds print now and then
        for name in bugs:
            if name in holders:
                holders[name].append(rank)
        if len(bugs) == 1:
            pure.append(rank)
    per_bug = {}
    for name in unknown:
        ranks = holders[name]
        # The bug's cluster: the one holding most of its builds (the better ranked on a tie).
        best = max(ranks, key=lambda r: (len(set(lines[r - 1]["builds"]) & injected[name]), -r)) if ranks else None
        cluster = lines[best - 1] if best else None
        bug = next(b for b in BUGS if b.name == name)
        per_bug[name] = {
            "builds": len(injected[name]), "clusters": ranks, "rank": best,
            "recall": (len(set(cluster["builds"]) & injected[name]) / len(injected[name])) if cluster else 0.0,
            "line_is_bug": bool(cluster and any(m in cluster["example"]["message"] for m in bug_phrases(bug))),
            "ready": bool(cluster and cluster["ready"]), "query": cluster["query"] if cluster else None,
            "backtest": (f"{cluster['cluster_hits']}/{cluster['cluster_size']} of the cluster, "
                         f"{cluster['failed_hits']} other failed, {cluster['success_hits']}/{cluster['success_total']} "
                         "passing") if cluster else "",
        }
    return {"clusters": len(lines), "mixed": mixed, "boilerplate": boilerplate, "noise": noise, "pure": len(pure),
            "split": [n for n, v in per_bug.items() if len(v["clusters"]) > 1], "per_bug": per_bug,
            "ready": sum(1 for c in lines if c["ready"]),
            "ready_success_hits": sum(c["success_hits"] for c in lines if c["ready"])}


def measure_suggest(work: Path, info: dict, queries: Path, source: str = "data", bin_dir: Path = BIN,
                    label: str = "this code") -> dict:
    # --days 10: the target window; every cached build is in it. (With
    # --days 0 the window starts at the oldest stored build's newest line, and
    # a backtest misses that build's earlier lines.)
    data = fresh_data(work, f"suggest-data-{label.replace(' ', '-')}", source)
    env = env_for(data, queries)
    command = [str(bin_dir / "elastic-recheck"), "suggest", "--days", "10", "--json"]
    load = uptime()
    cold = child(command, env)
    warm = child(command, env)
    lines = [json.loads(line) for line in cold.out.splitlines() if line.strip()]
    judged = judge_clusters(lines, info["builds"])
    text = child([str(bin_dir / "elastic-recheck"), "suggest", "--days", "10"], env).out.splitlines()[0]
    print(f"\nsuggest --days 10 --json, {label} on {source}/ (load {load}, {uptime()} after): "
          f"cold {cold.cells()}; warm {warm.cells()}")
    print(f"  {text}")
    print(f"  {judged['clusters']} clusters, {judged['ready']} ready (their passing hits: "
          f"{judged['ready_success_hits']}); mixing bugs: {judged['mixed']}; boilerplate: {judged['boilerplate']}; "
          f"a noise line (printed by passing builds too): {judged['noise']}; "
          f"bugs split: {judged['split']}")
    for name, v in judged["per_bug"].items():
        print(f"  {name} ({v['builds']} builds): in clusters {v['clusters']}, its cluster #{v['rank']} holds "
              f"{v['recall']:.0%} of them, "
              f"line is the bug's: {v['line_is_bug']}, ready: {v['ready']}; {v['query']}; {v['backtest']}")
    for rank, c in enumerate(lines[:12], 1):
        print(f"   #{rank} {len(c['builds'])} builds, ready={c['ready']}: {c['example']['message'][:120]}")
    return {"load": load, "cold": cold, "warm": warm, "summary": text, "judged": judged}


# -- 3. dashboard ---------------------------------------------------------------------------

WITHOUT_CLUSTERS = r'''
import sys
from elastic_recheck.config import load_settings
from elastic_recheck.search import open_backend
from elastic_recheck.dashboard import gather
from elastic_recheck.dashboard.site import render_site
from elastic_recheck.dashboard.publish import Publisher
settings = load_settings()
publisher = Publisher(sys.argv[1])
publisher.check()
backend = open_backend(settings)
with publisher.lock():
    collected, header = gather(settings, backend, settings.watch.queries)
    publisher.publish(render_site(collected, header, settings, None))
'''


def measure_dashboard(work: Path, queries: Path) -> dict:
    out = {}
    data = fresh_data(work, "dash-data")
    env = env_for(data, queries)
    site = work / "site"
    command = [str(BIN / "elastic-recheck"), "dashboard", "--output", str(site)]
    out["load"] = uptime()
    out["without"] = child([sys.executable, "-c", WITHOUT_CLUSTERS, str(work / "site-plain")], env)
    out["without2"] = child([sys.executable, "-c", WITHOUT_CLUSTERS, str(work / "site-plain")], env)
    out["cold"] = child(command, env)
    out["warm"] = child(command, env)
    clusters = json.loads((site / "data" / "clusters.json").read_text())["clusters"]
    out["clusters"] = len(clusters or [])
    print(f"\ndashboard (load {out['load']}): without the clusters step {out['without'].cells()} / "
          f"{out['without2'].cells()}; with it, cold {out['cold'].cells()}; warm {out['warm'].cells()}; "
          f"{out['clusters']} clusters on the page")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/work/bench-cache/explain-bench")
    parser.add_argument("--builds", type=int, default=100)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--big", default="200000:SUCCESS,300000:K1 messaging timeout,500000:U1 qemu monitor,500000:SUCCESS",
                        help="the large builds: lines:SUCCESS or lines:BUG NAME, comma-separated")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--no-drain3", action="store_true")
    parser.add_argument("--only", default="explain,suggest,dashboard")
    parser.add_argument("--data", default="data",
                        help="the ingested data directory under --work to read; another than the cache's "
                             "('data') is ingested by this code first, once")
    parser.add_argument("--compare-bin", default=None,
                        help="the bin/ of another install (the previous code) whose suggest runs first, on the "
                             "cache's own data/, in the same run")
    args = parser.parse_args()
    work = Path(args.work)
    big = []
    for item in args.big.split(","):
        size, _, what = item.partition(":")
        big.append((int(size), what, None if what == "SUCCESS" else what))
    cache = work / "cache.json"
    info = json.loads(cache.read_text()) if cache.exists() and not args.rebuild else None
    if info is None or time.time() - info["created"] > MAX_AGE:
        print(f"building the cache in {work} (load {uptime()}) ...", flush=True)
        info = build_cache(work, args.builds, args.lines, big)
    builds = info["builds"]
    failed = [b for b in builds if b["status"] != "SUCCESS"]
    print(f"cache: {len(builds)} builds ({len(failed)} failed), {sum(b['lines'] for b in builds):,} raw lines; "
          f"templates per file: {info['library']}; generated in {info['generate_s']:.0f}s (2 processes); ingest: "
          f"{info['ingest']['wall']:.0f}s wall, {info['ingest']['cpu']:.0f}s CPU, {info['ingest']['rss']:.0f} MiB — "
          f"{info['ingest']['out'].splitlines()[-1]}")
    if args.build_only:
        return
    queries = work / "queries"
    only = set(args.only.split(","))
    print(f"uptime at start: {open('/proc/loadavg').read().strip()}  ({time.strftime('%H:%M UTC', time.gmtime())})")
    source = args.data
    if source != "data":
        again = ingest_again(work, source, queries)
        print(f"ingest into {source}/ by this code (load {again['load']} to {again['load_after']}): "
              f"{again['wall']:.1f} s wall, {again['cpu']:.1f} s CPU, {again['rss']:.0f} MiB; the cache's: "
              f"{info['ingest']['wall']:.1f} s wall, {info['ingest']['cpu']:.1f} s CPU")
    if "explain" in only:
        measure_explain(work, info, queries, not args.no_drain3, source)
    if "suggest" in only:
        if args.compare_bin:
            measure_suggest(work, info, queries, "data", Path(args.compare_bin), "previous code")
        measure_suggest(work, info, queries, source)
    if "dashboard" in only:
        measure_dashboard(work, queries)
    print(f"\nuptime at end: {open('/proc/loadavg').read().strip()}  ({time.strftime('%H:%M UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
