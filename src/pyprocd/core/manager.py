"""The registry of services: the operations procd's `service` object offers (spec §1).

The method table, argument policies and reply shapes are the api layer's
(pyprocd.api.service); here each method is a typed operation that checks
everything before it changes anything, so bad input leaves the registry as
it was: it raises NotFound / InvalidArgument (core.status) instead.
"""


from pyprocd.common import LOG_DEBUG, LOG_NOTICE, LOG_WARNING
from pyprocd.core.instance import Instance
from pyprocd.core.spec import DEFAULT_RESPAWN, MAX_TIMER_SECONDS, Facts, is_str, parse_instance
from pyprocd.core.status import InvalidArgument, NotFound, error_for_errno
from pyprocd.wire.blobmsg import MAX_DEPTH

RUNNING_PARALLEL = 8  # procd runs at most 8 `init.d/x running` calls at once


def _is_table(v):
    return type(v) is dict


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
        # state shows: changed(); intended(service, instance, identity) right
        # before a process that runs at once is started; spawned(service,
        # instance, pid, proc) and exited(service, instance, pid, status)
        # before anything else happens;
        # `active` while it records (then a spawn waits until it is on record).
        self.recorder = recorder if recorder is not None else _NoRecorder()
        self._all_stopped = None  # stop_all()'s callback while it waits
        self.services = {}
        self._running_queue = []
        self._running_active = 0

    # -- lookups -----------------------------------------------------------------

    def service(self, name):
        svc = self.services.get(name) if name is not None else None
        if svc is None:
            raise NotFound(f"service {name} not found")
        return svc

    def instance(self, name, instance):
        svc = self.service(name)
        inst = svc.instances.get(instance) if instance is not None else None
        if inst is None:
            self.log(f"instance {instance} not found", LOG_DEBUG)
            raise NotFound(f"instance {name}::{instance} not found")
        return inst

    def state_changed(self):
        """Something export_state() shows may have changed: the daemon debounces
        this into one state-file write."""
        self.recorder.changed()

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
        self.state_changed()  # crash-survival state file
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
        if "/" in service_name or service_name in ("", ".", ".."):
            return  # a name, never a path out of the init.d directory
        script = f"{self.initd_dir.rstrip('/')}/{service_name}"
        if script in self._running_queue or not self.spawner.script_executable(script):
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

    # -- operations of the `service` object (the api layer holds the method table) --

    def submit(self, name, *, instances=None, triggers=None, validate=None, autostart=None,
               data=None, merge=False):
        """`set` (merge=False: `instances` replaces the instance set) or `add`.

        Raises InvalidArgument before anything changes: no name, or something
        `list` could not show later.
        """
        if not name:
            raise InvalidArgument("a service needs a name")
        refused = _unlistable({"instances": instances, "triggers": triggers,
                               "validate": validate, "data": data}, 1)
        if instances is not None and "" in instances:
            refused = "an instance needs a name"  # `list` could not show it as JSON
        if refused:
            self.log(f"service {name}: refused, {refused}", LOG_WARNING)
            raise InvalidArgument(refused)
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
            if not merge:
                svc.version += 1
            for inst_name, raw in instances.items():
                if type(raw) is dict:
                    self._upsert_instance(svc, inst_name, raw)
            if not merge:
                self._flush_stale(svc)
        if new:
            # After the instances' instance.start, as procd (recorded sessions show it).
            self.notify("service.start", {"service": name})
        if new or instances is not None:
            self.queue_running(name)

    def delete(self, name, instance=None):
        """Stop and remove a whole service, or one instance of it."""
        if instance is not None:
            self._remove_instance(self.instance(name, instance))
            return
        svc = self.service(name)
        svc.deleted = True
        svc.data = None
        svc.triggers = None
        svc.validate = []
        for one in list(svc.instances.values()):
            self._remove_instance(one)
        self._maybe_drop_service(svc)

    def signal(self, name, instance=None, sig=1):
        """kill() the main pid of one or every running instance; the last
        result counts (procd). Never a stale or zero pid (procd sends those)."""
        if instance is not None:
            targets = [self.instance(name, instance)]
        else:
            svc = self.service(name)
            targets = [svc.instances[n] for n in sorted(svc.instances)]
        err = None
        for one in targets:
            if one.running:
                err = self.spawner.kill(one.pid, sig)
        if err is None:
            raise NotFound("nothing running to signal")  # what procd's stale kill() gives
        if err:
            raise error_for_errno(err)

    def set_spawn(self, name, spawn):
        """`state`: start every stopped instance, or stop every running one."""
        if spawn is None:
            raise InvalidArgument("spawn is required")
        svc = self.service(name)
        for inst_name in sorted(svc.instances):
            inst = svc.instances[inst_name]
            if spawn and not inst.running:
                inst.start()
            elif not spawn and inst.running:
                inst.stop(halt=False)

    def begin_update(self, name):
        """`update_start`: every instance is stale until re-added."""
        self._service_for_update(name).version += 1

    def complete_update(self, name):
        """`update_complete`: stale instances are removed."""
        self._flush_stale(self._service_for_update(name))

    def _service_for_update(self, name):
        if name is None:
            raise InvalidArgument("name is required")
        return self.service(name)

    def inject_event(self, type_, data):
        """`event`: run the triggers and tell the subscribers."""
        if type_ is None or data is None:
            raise InvalidArgument("type and data are required")
        self.event(type_, data)
        self.notify("event.trigger", {"type": type_, "data": data})
        if type_ == "config.change" and is_str(data.get("package")):
            self.notify("config.change", {"config": data["package"]})

    def set_data(self, name, data, instance=None):
        """Replace a service's or an instance's `data` at runtime."""
        if data is None or name is None:
            raise InvalidArgument("name and data are required")
        inst = self.instance(name, instance) if instance is not None else None
        svc = self.service(name)
        # The deepest reply showing it: {service: {"instances": {instance: {"data": ...}}}}
        refused = _unlistable(data, 4 if inst is not None else 2)
        if refused:
            self.log(f"service {name}: set_data refused, {refused}", LOG_WARNING)
            raise InvalidArgument(refused)
        data = dict(sorted(data.items()))
        if inst is not None:
            inst.set_data(data)
        elif data != svc.data:
            old, svc.data = svc.data, data
            self.data_update_events(old, data)

    def watchdog(self, name, instance, mode=None, timeout=None):
        """Pet an instance's watchdog, or set its mode/timeout (self-managed from then on)."""
        if instance is None:
            raise NotFound("instance is required")
        inst = self.instance(name, instance)
        inst.set_watchdog(mode, timeout, MAX_TIMER_SECONDS)
        return inst

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

    def revive(self, name=None, instance=None):
        """Restart instances that gave up (crash loop, exec failure) with their
        crash counter reset; their labels. Beyond procd."""
        if name is not None:
            self.service(name)
        if instance is not None:
            self.instance(name, instance)  # an instance needs its service's name
        revived = []
        for svc_name in sorted(self.services):
            if name is not None and svc_name != name:
                continue
            svc = self.services[svc_name]
            for n in sorted(svc.instances):
                inst = svc.instances[n]
                if (instance is None or n == instance) and inst.revive():
                    revived.append(inst.label)
        for label in revived:
            self.log(f"Instance {label} revived")
        return revived

    def records_spawns(self):
        """Must a new process be on record before it may run? Only while a
        recorder is active: then a crash can never lose a spawn."""
        return self.recorder.active

    def instance_intended(self, inst, identity):
        """A process about to start that runs at once (no waiting child): on
        record before it exists, so that a crash before instance_spawned()
        still leaves it findable."""
        self.recorder.intended(inst.service.name, inst.name, identity)

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

    active = False

    def changed(self):
        pass

    def intended(self, service, instance, identity):
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
