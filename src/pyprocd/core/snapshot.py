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
from pyprocd.core.instance import EXIT_HISTORY, ExitRecord, Instance
from pyprocd.core.manager import Service
from pyprocd.core.spec import parse_instance

# The one format version of everything persisted: the crash-survival state
# file and the re-exec hand-over (pyprocd.daemon.state.migrate() brings an
# older document up to it). Readers take every field with a default, so a
# field added later never makes an older document unreadable.
STATE_FORMAT = 2


def _export_instance(inst, loop_now, describe_proc):
    entry = {
        # "state" is for readers of the file; the import derives it again
        # from the fields below.
        "name": inst.name, "state": inst.state, "raw": inst.spec.raw, "data": inst.spec.data,
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


def import_state(mgr, state, adopt, reject=None):
    """Re-create services/instances from export_state() and adopt live pids.

    Call on an empty manager, with a document of STATE_FORMAT (migrated).
    Instances whose process died meanwhile go through the normal exit path
    (exit recorded, respawn rules applied). An entry that cannot be read
    (a field of the wrong type) is left out alone, logged, and handed to
    reject(entry) so that its process, if any, does not run on unsupervised.
    Returns (adopted, gone) counts.
    """
    if type(state) is not dict or state.get("format") != STATE_FORMAT:
        raise ValueError("unknown state format")
    counts = [0, 0]
    reject = reject or (lambda entry: None)
    for entry in _list(state.get("services")):
        svc = _import_service(mgr, entry)
        if svc is None:
            for one in _entries_of(entry):
                reject(one)
            continue
        for one in _list(entry.get("instances")):
            inst = _import_instance(mgr, svc, one, reject)
            if inst is not None:
                svc.instances[inst.name] = inst
                _revive_process(mgr, inst, one, adopt, counts)
        for one in _list(entry.get("stopping")):
            inst = _import_instance(mgr, svc, one, reject)
            if inst is not None:
                svc.stopping.add(inst)
                _revive_process(mgr, inst, one, adopt, counts)
    return tuple(counts)


def _list(value):
    return value if type(value) is list else []


def _entries_of(service_entry):
    if type(service_entry) is not dict:
        return []
    return _list(service_entry.get("instances")) + _list(service_entry.get("stopping"))


def _import_service(mgr, entry):
    name = entry.get("name") if type(entry) is dict else None
    if type(name) is not str:
        mgr.log(f"state import: service entry without a name left out: {entry!r:.200}",
                LOG_WARNING)
        return None
    if name in mgr.services:
        # Import runs before anything is submitted; never replace (and
        # orphan) a live service object should that order ever change.
        mgr.log(f"state import: service {name} exists already, kept as is", LOG_WARNING)
        return None
    svc = Service(name, _int(entry.get("version"), 0))
    svc.autostart = entry.get("autostart", True) is not False
    svc.data = _table(entry.get("data"))
    svc.triggers = entry.get("triggers") if type(entry.get("triggers")) is list else None
    svc.validate = [v for v in _list(entry.get("validate")) if type(v) is dict]
    svc.deleted = entry.get("deleted") is True
    mgr.services[name] = svc
    if mgr.triggers is not None and svc.triggers:
        mgr.triggers.set_triggers(name, None, svc.triggers)
    return svc


def _int(value, default):
    return value if type(value) is int else default


def _number(value, default):
    return value if type(value) in (int, float) else default


def _table(value):
    return value if type(value) is dict else None


def _import_instance(mgr, svc, entry, reject):
    try:
        return _instance_from(mgr, svc, entry)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        name = entry.get("name") if type(entry) is dict else None
        mgr.log(f"state import: instance {svc.name}::{name} left out: {e!r}", LOG_WARNING)
        reject(entry)
        return None


def _instance_from(mgr, svc, entry):
    name, raw = entry["name"], entry["raw"]
    if type(name) is not str or type(raw) is not dict:
        raise TypeError("name and raw config are required")
    spec = parse_instance(name, raw, mgr.facts, mgr.respawn_defaults)
    data = _table(entry.get("data"))
    if spec.data != data and "data" in entry:
        spec = spec.replace(data=data)  # changed by set_data since
    inst = Instance(mgr, svc, spec)
    inst.version = _int(entry.get("version"), svc.version)
    inst.exit_code = _int(entry.get("exit_code"), 0)
    inst.respawn = entry.get("respawn", spec.respawn) is True
    inst.respawn_count = _int(entry.get("respawn_count"), 0)
    inst.halt = entry.get("halt") is True
    inst.restart = entry.get("restart") is True
    inst.failed = entry.get("failed") is True
    error = entry.get("spawn_error")
    inst.spawn_error = error if type(error) is str else None
    watchdog = entry.get("watchdog")
    if type(watchdog) is list and len(watchdog) == 3:
        mode, timeout, self_managed = watchdog
        inst.wd_mode = _int(mode, inst.wd_mode)
        inst.wd_timeout = _int(timeout, inst.wd_timeout)
        inst.wd_self_managed = self_managed is True
    for e in _list(entry.get("exits")):
        if type(e) is list and len(e) == 6:
            inst.exits.append(ExitRecord(*e))
    del inst.exits[:-EXIT_HISTORY]
    if mgr.triggers is not None and spec.triggers:
        mgr.triggers.set_triggers(svc.name, inst.name, spec.triggers)
    return inst


def _revive_process(mgr, inst, entry, adopt, counts):
    pid = _int(entry.get("pid"), 0)
    if pid <= 0:
        respawn_in = _number(entry.get("respawn_in"), None)
        if respawn_in is not None:
            inst.respawn_timer = mgr.loop.call_later(max(0.0, respawn_in), inst.respawn_start)
        return
    inst.pid = pid  # as it was; _exited() below needs it either way
    found = adopt(entry, inst._exited)
    if found is None:
        # Died while no daemon watched it: status unknown, rules still apply.
        counts[1] += 1
        inst.start_time = mgr.loop.time() - _number(entry.get("runtime"), 0)
        # The journal may know how it ended; else the status is unknown.
        mgr.loop.call_soon(inst._exited, entry.get("exit_status"), None)
        return
    counts[0] += 1
    inst.proc, elapsed = found
    inst.start_time = mgr.loop.time() - elapsed
    inst._arm_watchdog()
    if inst.halt:
        inst._terminate()  # a stop was under way: finish it (re-arms SIGKILL)
