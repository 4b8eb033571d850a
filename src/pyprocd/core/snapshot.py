"""The manager's state as plain data, and back: crash survival and live re-exec.

The daemon layer (pyprocd.daemon.survival) writes export_state() to a file on
tmpfs as it changes and hands it across a re-exec; a restarted daemon calls
import_state() to take its running instances back. The core stays pure: it
never touches /proc, fds or fork; the daemon passes in
`describe_proc(proc) -> dict` (extra per-process data to keep: /proc start
time, log pipe fds) and `adopt(entry, on_exit) -> (proc, elapsed_s) | None`
(re-attach a live pid, None if that process is gone).
"""

from pyprocd.common import LOG_WARNING
from pyprocd.core.instance import ExitRecord, Instance
from pyprocd.core.manager import Service
from pyprocd.core.spec import parse_instance

STATE_FORMAT = 1


def _export_instance(inst, loop_now, describe_proc):
    entry = {
        "name": inst.name, "raw": inst.spec.raw, "data": inst.spec.data,
        "version": inst.version, "pid": inst.pid, "exit_code": inst.exit_code,
        "runtime": (loop_now - inst.start_time) if inst.running else 0,
        "respawn": inst.respawn, "respawn_count": inst.respawn_count,
        "halt": inst.halt, "restart": inst.restart, "failed": inst.failed,
        "spawn_error": inst.spawn_error,
        "watchdog": [inst.wd_mode, inst.wd_timeout, inst.wd_self_managed],
        "exits": [[e.pid, e.exit_code, e.signal, e.runtime, e.respawn_count, e.error]
                  for e in inst.exits],
    }
    if inst.respawn_timer is not None:
        entry["respawn_in"] = inst.respawn_timer.remaining()
    if inst.running and describe_proc is not None and inst.proc is not None:
        entry["proc"] = describe_proc(inst.proc)
    return entry


def _export_service(svc, now, describe_proc):
    return {
        "name": svc.name, "autostart": svc.autostart, "data": svc.data,
        "triggers": svc.triggers, "validate": svc.validate, "version": svc.version,
        "deleted": svc.deleted,
        "instances": [_export_instance(svc.instances[n], now, describe_proc)
                      for n in sorted(svc.instances)],
        "stopping": [_export_instance(i, now, describe_proc) for i in svc.stopping],
    }


def export_state(mgr, describe_proc=None):
    """Everything needed to take over the running services: JSON-able."""
    now = mgr.loop.time()
    return {"format": STATE_FORMAT,
            "services": [_export_service(s, now, describe_proc)
                         for s in mgr.services.values()]}


def import_state(mgr, state, adopt):
    """Re-create services/instances from export_state() and adopt live pids.

    Call on an empty manager. Instances whose process died meanwhile go
    through the normal exit path (exit recorded, respawn rules applied).
    Returns (adopted, gone) counts.
    """
    if type(state) is not dict or state.get("format") != STATE_FORMAT:
        raise ValueError("unknown state format")
    counts = [0, 0]
    for entry in state["services"]:
        if entry["name"] in mgr.services:
            # Import runs before anything is submitted; never replace (and
            # orphan) a live service object should that order ever change.
            mgr.log(f"state import: service {entry['name']} exists already, kept as is",
                     LOG_WARNING)
            continue
        svc = Service(entry["name"], entry["version"])
        svc.autostart, svc.data = entry["autostart"], entry["data"]
        svc.triggers, svc.validate = entry["triggers"], entry["validate"] or []
        svc.deleted = entry["deleted"]
        mgr.services[svc.name] = svc
        if mgr.triggers is not None and svc.triggers:
            mgr.triggers.set_triggers(svc.name, None, svc.triggers)
        for one in entry["instances"]:
            inst = _import_instance(mgr, svc, one, ExitRecord)
            svc.instances[inst.name] = inst
            _revive_process(mgr, inst, one, adopt, counts)
        for one in entry["stopping"]:
            inst = _import_instance(mgr, svc, one, ExitRecord)
            svc.stopping.add(inst)
            _revive_process(mgr, inst, one, adopt, counts)
    return tuple(counts)


def _import_instance(mgr, svc, entry, exit_record):
    spec = parse_instance(entry["name"], entry["raw"], mgr.facts, mgr.respawn_defaults)
    if spec.data != entry["data"]:
        spec = spec.replace(data=entry["data"])  # changed by set_data since
    inst = Instance(mgr, svc, spec)
    inst.version = entry["version"]
    inst.exit_code = entry["exit_code"]
    inst.respawn, inst.respawn_count = entry["respawn"], entry["respawn_count"]
    inst.halt, inst.restart, inst.failed = entry["halt"], entry["restart"], entry["failed"]
    inst.spawn_error = entry["spawn_error"]
    inst.wd_mode, inst.wd_timeout, inst.wd_self_managed = entry["watchdog"]
    for e in entry["exits"]:
        inst.exits.append(exit_record(*e))
    if mgr.triggers is not None and spec.triggers:
        mgr.triggers.set_triggers(svc.name, inst.name, spec.triggers)
    return inst


def _revive_process(mgr, inst, entry, adopt, counts):
    pid = entry["pid"]
    if not pid:
        if entry.get("respawn_in") is not None:
            inst.respawn_timer = mgr.loop.call_later(entry["respawn_in"], inst.respawn_start)
        return
    inst.pid = pid  # as it was; _exited() below needs it either way
    found = adopt(entry, inst._exited)
    if found is None:
        # Died while no daemon watched it: status unknown, rules still apply.
        counts[1] += 1
        inst.start_time = mgr.loop.time() - entry["runtime"]
        # The journal may know how it ended; else the status is unknown.
        mgr.loop.call_soon(inst._exited, entry.get("exit_status"), None)
        return
    counts[0] += 1
    inst.proc, elapsed = found
    inst.start_time = mgr.loop.time() - elapsed
    inst._arm_watchdog()
    if inst.halt:
        inst._terminate()  # a stop was under way: finish it (re-arms SIGKILL)
