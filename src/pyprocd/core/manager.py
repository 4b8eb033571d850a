"""The registry of services and procd's `service` method table (spec §1).

`ServiceManager.call(method, msg)` is what the ubus object serves: it takes
the decoded request table and returns (status, reply). Every argument is
checked before anything changes, so bad input leaves the registry as it was.
Type checks mirror procd's blobmsg policies: a value of the wrong type
counts as missing.
"""

import errno
import os

from pyprocd.common import LOG_DEBUG, LOG_NOTICE, LOG_WARNING
from pyprocd.core import status as st
from pyprocd.core.instance import Instance
from pyprocd.core.schema import LISTED
from pyprocd.core.spec import (
    DEFAULT_RESPAWN,
    MAX_TIMER_SECONDS,
    Facts,
    is_bool,
    is_int32,
    is_str,
    parse_instance,
)
from pyprocd.wire.blobmsg import MAX_DEPTH

RUNNING_PARALLEL = 8  # procd runs at most 8 `init.d/x running` calls at once


def _opt(msg, key, check):
    value = msg.get(key)
    return value if check(value) else None


def _is_table(v):
    return type(v) is dict


def _is_array(v):
    return type(v) is list


class Service:
    def __init__(self, name, version=0):
        self.name = name
        self.autostart = True
        self.data = None
        self.triggers = None
        self.validate = []
        self.instances = {}  # name -> Instance (sorted on output, like procd's AVL)
        self.deleted = False
        self.version = version
        self.stopping = set()  # instances removed from the tree, still exiting


class ServiceManager:
    def __init__(self, loop, spawner=None, *, notify=None, log=None, facts=None,
                 respawn_defaults=DEFAULT_RESPAWN, initd_dir=None, recorder=None,
                 triggers=None):
        self.loop = loop
        self.spawner = spawner
        self.notify = notify or (lambda type_, payload: None)
        self.log = log or (lambda message, priority=LOG_NOTICE: None)
        self.facts = facts or Facts()
        self.respawn_defaults = tuple(respawn_defaults)
        self.initd_dir = initd_dir
        self.triggers = triggers  # the trigger engine, if any
        # Crash survival (the daemon's state file), told of every change the
        # state shows: changed(); spawned(service, instance, pid, proc) and
        # exited(service, instance, pid, status) before anything else happens.
        self.recorder = recorder if recorder is not None else _NoRecorder()
        self._all_stopped = None  # stop_all()'s callback while it waits
        self.services = {}
        self._running_queue = []
        self._running_active = 0
        self.methods = {
            "set": self.m_set, "add": self.m_add, "list": self.m_list,
            "delete": self.m_delete, "signal": self.m_signal,
            "update_start": self.m_update_start, "update_complete": self.m_update_complete,
            "event": self.m_event, "validate": self.m_validate,
            "get_data": self.m_get_data, "set_data": self.m_set_data,
            "state": self.m_state, "watchdog": self.m_watchdog,
            "revive": self.m_revive,  # issue 6: beyond procd, see end of file
        }

    # -- entry point -----------------------------------------------------------

    def call(self, method, msg):
        handler = self.methods.get(method)
        if handler is None:
            return st.METHOD_NOT_FOUND, None
        if msg is None:
            msg = {}
        if type(msg) is not dict:
            return st.INVALID_ARGUMENT, None
        result = handler(msg)
        if method not in READ_ONLY_METHODS:
            self._state_changed()  # issue 6: crash-survival state file
        if result is None:
            return st.OK, None
        return result

    # -- events (notifications + trigger engine) -----------------------------------

    def event(self, type_, data):
        if self.triggers is not None:
            self.triggers.event(type_, data)

    def instance_event(self, type_, inst, detailed=False):
        payload = {"service": inst.service.name, "instance": inst.name}
        if detailed:
            payload["pid"] = inst.exits[-1].pid if inst.exits else 0
            payload["exit_code"] = inst.exit_code
            payload["respawn_count"] = inst.respawn_count
            payload["command"] = list(inst.spec.command or ())
        self.notify(type_, payload)
        self._state_changed()  # issue 6: crash-survival state file
        # Beyond procd: instance life-cycle events feed triggers too (user-asks #4).
        self.event(type_, dict(payload))

    def data_update_events(self, *tables):
        keys = []
        for table in tables:
            for key in table or ():
                if key not in keys:
                    keys.append(key)
        for key in keys:
            self.event("service.data.update", {"name": key})

    # -- pidfiles -------------------------------------------------------------

    def write_pidfile(self, path, pid):
        # The process layer writes it: the directory may be the service user's.
        try:
            self.spawner.write_pidfile(path, pid)
        except OSError as e:
            self.log(f"cannot write pidfile {path}: {e}", LOG_WARNING)

    def remove_pidfile(self, path):
        try:
            self.spawner.remove_pidfile(path)
        except OSError as e:
            self.log(f"cannot remove pidfile {path}: {e}", LOG_WARNING)

    # -- the `running` callback (spec §8.3) ------------------------------------------

    def queue_running(self, service_name):
        if not self.initd_dir or self.spawner is None:
            return
        script = os.path.join(self.initd_dir, service_name)
        if not os.access(script, os.X_OK) or script in self._running_queue:
            return
        self._running_queue.append(script)
        self._run_next_running()

    def _run_next_running(self):
        while self._running_queue and self._running_active < RUNNING_PARALLEL:
            script = self._running_queue.pop(0)
            try:
                self.spawner.run_script([script, "running"], self._running_done)
            except OSError as e:
                self.log(f"cannot run {script} running: {e}", LOG_WARNING)
                continue
            self._running_active += 1

    def _running_done(self, status):
        self._running_active -= 1
        self._run_next_running()

    # -- instance bookkeeping ---------------------------------------------------------

    def instance_gone(self, inst):
        """A halted instance has exited (or was not running): forget it."""
        svc = inst.service
        if svc.instances.get(inst.name) is inst:
            del svc.instances[inst.name]
            self.event("instance.update", {})
        svc.stopping.discard(inst)
        if inst.spec.data:
            self.data_update_events(inst.spec.data)
        if self.triggers is not None:
            self.triggers.remove(svc.name, inst.name)
        self._maybe_drop_service(svc)
        self._check_all_stopped()

    def _maybe_drop_service(self, svc):
        if svc.deleted and not svc.instances and not svc.stopping:
            if self.services.get(svc.name) is svc:
                del self.services[svc.name]
                if self.triggers is not None:
                    self.triggers.remove(svc.name, None)
                self.notify("service.stop", {"service": svc.name})

    def _remove_instance(self, inst):
        """Take an instance out of the tree now and stop it (procd's vlist delete)."""
        svc = inst.service
        if svc.instances.get(inst.name) is inst:
            del svc.instances[inst.name]
            self.event("instance.update", {})
        if inst.running:
            svc.stopping.add(inst)
        inst.stop(halt=True)

    def _parse(self, name, raw):
        spec = parse_instance(name, raw, self.facts, self.respawn_defaults)
        for warning in spec.warnings:
            self.log(f"instance {name}: {warning}", LOG_WARNING)
        for problem in spec.problems:
            self.log(f"instance {name}: {problem}", LOG_WARNING)
        return spec

    def _upsert_instance(self, svc, name, raw):
        spec = self._parse(name, raw)
        if spec.data:
            self.data_update_events(spec.data)
        inst = svc.instances.get(name)
        if inst is None:
            inst = Instance(self, svc, spec)
            svc.instances[name] = inst
            if svc.autostart:
                inst.start()
        else:
            inst.version = svc.version
            inst.update(spec)
        if self.triggers is not None:
            self.triggers.set_triggers(svc.name, name, spec.triggers or [])
        self.event("instance.update", {})

    def _flush_stale(self, svc):
        for inst in [i for i in svc.instances.values() if i.version != svc.version]:
            self._remove_instance(inst)

    # -- set / add -------------------------------------------------------------

    def m_set(self, msg):
        return self._set_or_add(msg, add=False)

    def m_add(self, msg):
        return self._set_or_add(msg, add=True)

    def _set_or_add(self, msg, add):
        name = _opt(msg, "name", is_str)
        if not name:
            return st.INVALID_ARGUMENT, None
        refused = _unlistable(msg, 1)
        if _is_table(msg.get("instances")) and "" in msg["instances"]:
            refused = "an instance needs a name"  # `list` could not show it as JSON
        if refused:
            self.log(f"service {name}: refused, {refused}", LOG_WARNING)
            return st.INVALID_ARGUMENT, None
        instances = _opt(msg, "instances", _is_table)
        triggers = _opt(msg, "triggers", _is_array)
        validate = _opt(msg, "validate", _is_array)
        autostart = _opt(msg, "autostart", is_bool)
        data = _opt(msg, "data", _is_table)

        svc = self.services.get(name)
        new = svc is None
        if new:
            svc = self.services[name] = Service(name)
            svc.autostart = autostart if autostart is not None else True
        elif autostart is not None:
            svc.autostart = autostart
        svc.deleted = False
        if triggers is not None:
            svc.triggers = triggers
            if self.triggers is not None:
                self.triggers.set_triggers(name, None, triggers)
        if validate is not None:
            svc.validate = [_validator(v) for v in validate if _valid_validator(v)]
        if data is not None and data != svc.data:
            old = svc.data
            svc.data = dict(sorted(data.items()))
            self.data_update_events(old, data)
        if instances is not None:
            if not add:
                svc.version += 1
            for inst_name, raw in instances.items():
                if type(raw) is dict:
                    self._upsert_instance(svc, inst_name, raw)
            if not add:
                self._flush_stale(svc)
        if new:
            # After the instances' instance.start, as procd (recorded sessions show it).
            self.notify("service.start", {"service": name})
        if new or instances is not None:
            self.queue_running(name)
        return None

    # -- list -----------------------------------------------------------------

    def m_list(self, msg):
        name = _opt(msg, "name", is_str)
        verbose = _opt(msg, "verbose", is_bool) or False
        reply = {}
        for svc_name in sorted(self.services):
            if name is not None and svc_name != name:
                continue
            reply[svc_name] = self.dump_service(self.services[svc_name], verbose)
        return st.OK, reply

    def dump_service(self, svc, verbose):
        out = {}
        if not svc.autostart:
            out["autostart"] = False
        if svc.data:
            out["data"] = svc.data
        if svc.instances:
            out["instances"] = {
                n: dump_instance(svc.instances[n], verbose) for n in sorted(svc.instances)
            }
        if verbose and svc.triggers:
            out["triggers"] = svc.triggers
        if verbose and svc.validate:
            out["validate"] = [
                {"package": v["package"], "type": v["type"], "rules": v.get("data") or {}}
                for v in svc.validate
            ]
        return out

    # -- delete / signal / state ---------------------------------------------------------

    def _find(self, msg):
        """(service, instance-or-None, status-or-None) for name/instance lookups."""
        name = _opt(msg, "name", is_str)
        svc = self.services.get(name) if name is not None else None
        if svc is None:
            return None, None, st.NOT_FOUND
        inst_name = _opt(msg, "instance", is_str)
        if inst_name is None:
            return svc, None, None
        inst = svc.instances.get(inst_name)
        if inst is None:
            self.log(f"instance {inst_name} not found", LOG_DEBUG)
            return svc, None, st.NOT_FOUND
        return svc, inst, None

    def m_delete(self, msg):
        svc, inst, err = self._find(msg)
        if err is not None:
            return err, None
        if inst is not None:
            self._remove_instance(inst)
            return None
        svc.deleted = True
        svc.data = None
        svc.triggers = None
        svc.validate = []
        for one in list(svc.instances.values()):
            self._remove_instance(one)
        self._maybe_drop_service(svc)
        return None

    def m_signal(self, msg):
        svc, inst, err = self._find(msg)
        if err is not None:
            return err, None
        sig = msg.get("signal")
        if not is_int32(sig):
            sig = 1  # SIGHUP, procd's default
        targets = [inst] if inst is not None else [svc.instances[n] for n in sorted(svc.instances)]
        result = st.NOT_FOUND  # nothing running to signal: what procd's stale kill() gives
        for one in targets:
            if not one.running:
                continue  # never kill() a stale or zero pid (procd does)
            result = _errno_status(self.spawner.kill(one.pid, sig))
        return result, None

    def m_state(self, msg):
        spawn = _opt(msg, "spawn", is_bool)
        if spawn is None:
            return st.INVALID_ARGUMENT, None
        svc, _inst, err = self._find({"name": msg.get("name")})
        if err is not None:
            return err, None
        for name in sorted(svc.instances):
            inst = svc.instances[name]
            if spawn and not inst.running:
                inst.start()
            elif not spawn and inst.running:
                inst.stop(halt=False)
        return None

    # -- update_start / update_complete ------------------------------------------

    def m_update_start(self, msg):
        svc, err = self._service_for_update(msg)
        if svc is None:
            return err, None
        svc.version += 1
        return None

    def m_update_complete(self, msg):
        svc, err = self._service_for_update(msg)
        if svc is None:
            return err, None
        self._flush_stale(svc)
        return None

    def _service_for_update(self, msg):
        name = _opt(msg, "name", is_str)
        if name is None:
            return None, st.INVALID_ARGUMENT
        svc = self.services.get(name)
        return (svc, None) if svc is not None else (None, st.NOT_FOUND)

    # -- event / validate -----------------------------------------------------------

    def m_event(self, msg):
        type_ = _opt(msg, "type", is_str)
        data = _opt(msg, "data", _is_table)
        if type_ is None or data is None:
            return st.INVALID_ARGUMENT, None
        self.event(type_, data)
        self.notify("event.trigger", {"type": type_, "data": data})
        if type_ == "config.change" and is_str(data.get("package")):
            self.notify("config.change", {"config": data["package"]})
        return None

    def m_validate(self, msg):
        if _opt(msg, "service", is_str) is not None:
            return st.OK, None  # procd: filter by service is unimplemented, no body
        package = _opt(msg, "package", is_str)
        type_ = _opt(msg, "type", is_str)
        reply = {}
        for svc_name in sorted(self.services):
            for v in self.services[svc_name].validate:
                if package is not None and v["package"] != package:
                    continue
                if type_ is not None and v["type"] != type_:
                    continue
                rules = reply.setdefault(v["package"], {}).setdefault(v["type"], {})
                rules.update(v.get("data") or {})
        return st.OK, reply

    # -- data ---------------------------------------------------------------------

    def m_get_data(self, msg):
        name = _opt(msg, "name", is_str)
        inst_name = _opt(msg, "instance", is_str)
        type_ = _opt(msg, "type", is_str)

        def pick(table):
            if type_ is None:
                return table
            return {k: v for k, v in table.items() if k == type_}

        reply = {}
        for svc_name in sorted(self.services):
            if name is not None and svc_name != name:
                continue
            svc = self.services[svc_name]
            out = {}
            if svc.data and pick(svc.data):
                out["*"] = pick(svc.data)
            for n in sorted(svc.instances):
                data = svc.instances[n].spec.data
                if (inst_name is None or n == inst_name) and data and pick(data):
                    out[n] = pick(data)
            if out:
                reply[svc_name] = out
        return st.OK, reply

    def m_set_data(self, msg):
        data = _opt(msg, "data", _is_table)
        name = _opt(msg, "name", is_str)
        if data is None or name is None:
            return st.INVALID_ARGUMENT, None
        svc, inst, err = self._find(msg)
        if err is not None:
            return err, None
        # The deepest reply showing it: {service: {"instances": {instance: {"data": ...}}}}
        refused = _unlistable(data, 4 if inst is not None else 2)
        if refused:
            self.log(f"service {name}: set_data refused, {refused}", LOG_WARNING)
            return st.INVALID_ARGUMENT, None
        data = dict(sorted(data.items()))
        if inst is not None:
            inst.spec = inst.spec.replace(data=data)
        elif data != svc.data:
            old, svc.data = svc.data, data
            self.data_update_events(old, data)
        return None

    # -- watchdog -----------------------------------------------------------------

    def m_watchdog(self, msg):
        if _opt(msg, "instance", is_str) is None:
            return st.NOT_FOUND, None
        _svc, inst, err = self._find(msg)
        if err is not None:
            return err, None
        mode = _opt(msg, "mode", is_int32)
        timeout = _opt(msg, "timeout", is_int32)
        if mode is not None:
            inst.wd_mode = mode if 0 <= mode <= 2 else 0
        if timeout is not None:
            inst.wd_timeout = min(timeout, MAX_TIMER_SECONDS)
        if mode is not None or timeout is not None:
            inst.wd_self_managed = True
        inst.pet_watchdog()
        return st.OK, {"name": inst.service.name, "instance": inst.name,
                       "mode": inst.wd_mode, "timeout": inst.wd_timeout}

    # -- daemon shutdown -----------------------------------------------------------

    def stop_all(self, callback):
        """Stop every instance (SIGTERM, SIGKILL after term_timeout); callback() when none is left.

        Event-driven: the last instance's exit calls back, no polling.
        """
        for svc in list(self.services.values()):
            svc.deleted = True
            for inst in list(svc.instances.values()):
                self._remove_instance(inst)
            self._maybe_drop_service(svc)
        # Only now: an instance that was not running goes away inside the loop
        # above, before later services' instances were even asked to stop.
        self._all_stopped = callback
        self._check_all_stopped()

    def _check_all_stopped(self):
        callback = self._all_stopped
        if callback is not None and not any(s.stopping for s in self.services.values()):
            self._all_stopped = None
            callback()

    def running_pids(self):
        return [i.pid for s in self.services.values()
                for i in list(s.instances.values()) + list(s.stopping) if i.running]

    # -- beyond procd: revive, crash survival / re-exec state --------------------

    def m_revive(self, msg):
        """`service revive {name?, instance?}`: restart instances that gave up
        (crash loop, exec failure) with their crash counter reset. Beyond procd."""
        name = _opt(msg, "name", is_str)
        inst_name = _opt(msg, "instance", is_str)
        if name is not None and name not in self.services:
            return st.NOT_FOUND, None
        if inst_name is not None and (name is None or inst_name not in self.services[name].instances):
            return st.NOT_FOUND, None
        revived = []
        for svc_name in sorted(self.services):
            if name is not None and svc_name != name:
                continue
            svc = self.services[svc_name]
            for n in sorted(svc.instances):
                inst = svc.instances[n]
                if (inst_name is None or n == inst_name) and inst.failed and not inst.running:
                    inst.respawn_count = 0
                    inst.failed = False
                    inst.respawn = inst.spec.respawn
                    inst.start()
                    revived.append(inst.label)
        for label in revived:
            self.log(f"Instance {label} revived")
        return st.OK, {"revived": revived}

    def _state_changed(self):
        """Something export_state() shows may have changed: the daemon debounces
        this into one state-file write."""
        self.recorder.changed()

    def instance_spawned(self, inst, proc):
        self.recorder.spawned(inst.service.name, inst.name, proc.pid, proc)

    def instance_exited(self, inst, pid, status):
        self.recorder.exited(inst.service.name, inst.name, pid, status)

    def export_state(self, describe_proc=None):
        from pyprocd.core import snapshot

        return snapshot.export_state(self, describe_proc)

    def import_state(self, state, adopt, reject=None):
        from pyprocd.core import snapshot

        return snapshot.import_state(self, state, adopt, reject)



class _NoRecorder:
    """No crash survival: nothing to record."""

    def changed(self):
        pass

    def spawned(self, service, instance, pid, proc):
        pass

    def exited(self, service, instance, pid, status):
        pass


def _valid_validator(v):
    return type(v) is dict and is_str(v.get("package")) and is_str(v.get("type"))


def _validator(v):
    """Rules (`data`) of the wrong type count as none, as in procd's policy."""
    if "data" in v and not _is_table(v["data"]):
        v = {key: value for key, value in v.items() if key != "data"}
    return v


def _unlistable(msg, levels_above):
    """Why `msg` could not be shown in a reply that wraps it in `levels_above`
    more tables (e.g. `list` adds the service name), or None if it can."""
    if _nesting(msg, MAX_DEPTH - levels_above) > MAX_DEPTH - levels_above:
        return f"nested deeper than a reply can show ({MAX_DEPTH} levels)"
    return None


def _nesting(value, limit):
    """Tables/arrays nested in `value` (itself included), counted up to limit + 1."""
    t = type(value)
    if t is dict:
        items = value.values()
    elif t is list or t is tuple:
        items = value
    else:
        return 0
    deepest = 0
    for item in items:
        if type(item) in (dict, list, tuple):
            deepest = max(deepest, _nesting(item, limit - 1))
            if deepest >= limit:
                break
    return deepest + 1


def _errno_status(err):
    if err == 0:
        return st.OK
    return {errno.EINVAL: st.INVALID_ARGUMENT, errno.EPERM: st.PERMISSION_DENIED,
            errno.ESRCH: st.NOT_FOUND}.get(err, st.UNKNOWN_ERROR)


def dump_instance(inst, verbose):
    """One instance in procd's `list` shape and key order (spec §5): the schema's rows."""
    spec = inst.spec
    out = {}
    for key in LISTED:
        if key.verbose and not verbose:
            continue
        value = key.dump(inst, spec)
        if value is not None:
            out[key.name] = value
    return out


# Methods that change nothing export_state() shows: no state write after them.
READ_ONLY_METHODS = frozenset(("list", "get_data", "validate", "event", "watchdog"))
