"""The ubus object `service`: procd's method table, one record per method.

A record holds everything about a method: its argument policy (what
`ubus -v list service` prints, and the filter every call goes through, as
procd's blobmsg policies: keys outside the policy are dropped, a value of the
wrong type counts as missing), its handler over the core's typed
operations, whether it changes what the crash-survival state shows (the
state file is told after every such call, by construction) and whether it is
listed. The listed records are procd's, in its registration order, so the
listing is byte-identical to procd's; pyprocd's extensions (e.g. `revive`)
are callable but not listed.

The reply shapes (`list` in procd's key order from the instance schema's
rows, `get_data`, `validate`) are here too, next to the methods that send
them.

`call_service(manager, method, msg)` is the one way in: the bus object, the
daemon's declared services and the tests all go through it. A core
operation refuses with NotFound / InvalidArgument; that becomes the status.
The manager's notifications (instance.start, service.stop, ...) go out as
ubus NOTIFY on this object, fire and forget like procd's.
"""

from pyprocd.bus.client import ARRAY, BOOL, INT32, STRING, TABLE, UbusObject
from pyprocd.core.schema import LISTED, is_array, is_bool, is_int32, is_str, is_table
from pyprocd.core.status import INVALID_ARGUMENT, METHOD_NOT_FOUND, OK, CallError
from pyprocd.wire.blobmsg import EncodedTable
from pyprocd.wire.ubusmsg import UNKNOWN_ERROR, strerror

LOG_NOTICE = 5
LOG_WARNING = 4

# blobmsg type in a policy -> does a decoded value have it
_TYPE_OK = {STRING: is_str, INT32: is_int32, BOOL: is_bool, TABLE: is_table, ARRAY: is_array}


class Method:
    """One method of the object: see the module docstring."""

    __slots__ = ("name", "policy", "handler", "changes_state", "listed")

    def __init__(self, name, policy, handler, changes_state, listed=True):
        self.name = name
        self.policy = policy  # argument -> blobmsg type, in procd's order
        self.handler = handler  # handler(manager, args) -> reply table or None
        self.changes_state = changes_state
        self.listed = listed

    def arguments(self, msg):
        """What procd's blobmsg_parse keeps of `msg`: policy keys of the right type."""
        return {key: msg[key] for key, type_ in self.policy.items()
                if key in msg and _TYPE_OK[type_](msg[key])}

    def __repr__(self):
        return f"Method({self.name!r})"


# -- handlers: handler(manager, args) -----------------------------------------------------


def _submit(merge):
    def handler(mgr, args):
        mgr.submit(args.get("name"), instances=args.get("instances"),
                   triggers=args.get("triggers"), validate=args.get("validate"),
                   autostart=args.get("autostart"), data=args.get("data"), merge=merge)
    return handler


def _list(mgr, args):
    return list_reply(mgr.services, args.get("name"), args.get("verbose", False))


def _delete(mgr, args):
    mgr.delete(args.get("name"), args.get("instance"))


def _signal(mgr, args):
    mgr.signal(args.get("name"), args.get("instance"), args.get("signal", 1))  # SIGHUP: procd's default


def _update_start(mgr, args):
    mgr.begin_update(args.get("name"))


def _update_complete(mgr, args):
    mgr.complete_update(args.get("name"))


def _event(mgr, args):
    mgr.inject_event(args.get("type"), args.get("data"))


def _validate(mgr, args):
    if "service" in args:
        return None  # procd: filtering by service is unimplemented, OK without a body
    return validate_reply(mgr.services, args.get("package"), args.get("type"))


def _get_data(mgr, args):
    return get_data_reply(mgr.services, args.get("name"), args.get("instance"),
                                  args.get("type"))


def _set_data(mgr, args):
    mgr.set_data(args.get("name"), args.get("data"), args.get("instance"))


def _state(mgr, args):
    mgr.set_spawn(args.get("name"), args.get("spawn"))


def _watchdog(mgr, args):
    inst = mgr.watchdog(args.get("name"), args.get("instance"), args.get("mode"),
                        args.get("timeout"))
    return {"name": inst.service.name, "instance": inst.name,
            "mode": inst.wd_mode, "timeout": inst.wd_timeout}


def _revive(mgr, args):
    return {"revived": mgr.revive(args.get("name"), args.get("instance"))}


_SET_POLICY = {"name": STRING, "script": STRING, "instances": TABLE, "triggers": ARRAY,
               "validate": ARRAY, "autostart": BOOL, "data": TABLE}

# procd's `service` object (procd/service/service.c), in its registration order,
# then pyprocd's own methods.
METHODS = (
    Method("set", _SET_POLICY, _submit(merge=False), changes_state=True),
    Method("add", _SET_POLICY, _submit(merge=True), changes_state=True),
    Method("list", {"name": STRING, "verbose": BOOL}, _list, changes_state=False),
    Method("delete", {"name": STRING, "instance": STRING}, _delete, changes_state=True),
    # a signal changes nothing the state shows; an exit it causes is recorded as one
    Method("signal", {"name": STRING, "instance": STRING, "signal": INT32}, _signal,
           changes_state=False),
    Method("update_start", {"name": STRING}, _update_start, changes_state=True),
    Method("update_complete", {"name": STRING}, _update_complete, changes_state=True),
    Method("event", {"type": STRING, "data": TABLE}, _event, changes_state=False),
    Method("validate", {"package": STRING, "type": STRING, "service": STRING}, _validate,
           changes_state=False),
    Method("get_data", {"name": STRING, "instance": STRING, "type": STRING}, _get_data,
           changes_state=False),
    Method("set_data", {"name": STRING, "instance": STRING, "data": TABLE}, _set_data,
           changes_state=True),
    Method("state", {"spawn": BOOL, "name": STRING}, _state, changes_state=True),
    # mode/timeout are the instance's own from now on: the state must keep them
    Method("watchdog", {"mode": INT32, "timeout": INT32, "name": STRING, "instance": STRING},
           _watchdog, changes_state=True),
    # beyond procd: restart instances that gave up, crash counter reset
    Method("revive", {"name": STRING, "instance": STRING}, _revive, changes_state=True,
           listed=False),
)

# (name, policy) of the listed methods: the `ubus -v list` signature
PROCD_METHODS = tuple((m.name, m.policy) for m in METHODS if m.listed)


def method_table(extra=()):
    """{name: Method} of METHODS plus the daemon's own `extra` records."""
    return {m.name: m for m in (*METHODS, *extra)}


_TABLE = method_table()


def call_service(manager, method, msg, methods=None):
    """(status, reply) of one call of `method` with the decoded request `msg`."""
    record = (methods or _TABLE).get(method)
    if record is None:
        return METHOD_NOT_FOUND, None
    if msg is None:
        msg = {}
    if type(msg) is not dict:
        return INVALID_ARGUMENT, None
    try:
        return OK, record.handler(manager, record.arguments(msg))
    except CallError as e:
        return e.status, None
    finally:
        if record.changes_state:
            manager.state_changed()  # crash survival: the state file follows


# -- reply shapes: `list` (spec §5, the schema's rows), `get_data`, `validate` ----------------


def list_reply(services, name=None, verbose=False):
    """{service: {...}} for every service, or only `name` ({} if unknown)."""
    return {svc_name: dump_service(services[svc_name], verbose)
            for svc_name in sorted(services) if name is None or svc_name == name}


def dump_service(svc, verbose):
    out = {}
    if not svc.autostart:
        out["autostart"] = False
    if svc.data:
        out["data"] = svc.data
    if svc.instances:
        out["instances"] = {
            n: dump_instance(svc.instances[n], verbose) for n in sorted(svc.instances)
        }
    if verbose and svc.triggers is not None:  # procd prints an empty array too
        out["triggers"] = svc.triggers
    if verbose and svc.validate:
        out["validate"] = [
            {"package": v["package"], "type": v["type"], "rules": v.get("data") or {}}
            for v in svc.validate
        ]
    return out


def dump_instance(inst, verbose):
    """One instance in procd's `list` shape and key order (spec §5): the schema's rows.

    The plain shape is kept on the instance, with its blobmsg encoding, until the
    spec (replaced, never edited, on any change) or a runtime field it shows changes:
    a `list` of 1000 unchanged instances re-dumps and re-encodes none of them.
    """
    if verbose:
        return _dump_rows(inst, True)
    state = (inst.pid, inst.exit_code, inst.spawn_error, inst.respawn, inst.wd_mode,
             inst.wd_timeout)
    cached = inst.list_cache
    if cached is not None and cached[0] is inst.spec and cached[1] == state:
        return cached[2]
    table = EncodedTable(_dump_rows(inst, False))
    inst.list_cache = (inst.spec, state, table)
    return table


def _dump_rows(inst, verbose):
    spec = inst.spec
    out = {}
    for key in LISTED:
        if key.verbose and not verbose:
            continue
        value = key.dump(inst, spec)
        if value is not None:
            out[key.name] = value
    return out


def get_data_reply(services, name=None, instance=None, type_=None):
    """{service: {"*": service data, instance: instance data}}, filtered (spec §1.7)."""

    def pick(table):
        if type_ is None:
            return table
        return {k: v for k, v in table.items() if k == type_}

    reply = {}
    for svc_name in sorted(services):
        if name is not None and svc_name != name:
            continue
        svc = services[svc_name]
        out = {}
        if svc.data and pick(svc.data):
            out["*"] = pick(svc.data)
        for n in sorted(svc.instances):
            data = svc.instances[n].spec.data
            if (instance is None or n == instance) and data and pick(data):
                out[n] = pick(data)
        if out:
            reply[svc_name] = out
    return reply


def validate_reply(services, package=None, type_=None):
    """{package: {type: {option: rule}}} of every service's validators (spec §10)."""
    reply = {}
    for svc_name in sorted(services):
        for v in services[svc_name].validate:
            if package is not None and v["package"] != package:
                continue
            if type_ is not None and v["type"] != type_:
                continue
            rules = reply.setdefault(v["package"], {}).setdefault(v["type"], {})
            rules.update(v.get("data") or {})
    return reply


class ServiceApi:
    """Publishes `manager` as the ubus object `name` through `client`.

    `extra`: the daemon's own Method records (e.g. `reexec`), never listed.
    """

    def __init__(self, client, manager, name="service", log=None, extra=()):
        self.client = client
        self.manager = manager
        self.log = log or (lambda message, priority=LOG_NOTICE: None)
        self.methods = method_table(extra)
        listed = {m.name: (m.policy, self._call) for m in METHODS if m.listed}
        self.obj = UbusObject(name, listed, fallback=self._call)
        manager.notify = self.notify

    def publish(self, callback=None):
        """Register the object (again after every reconnect); callback(status)."""
        self.client.add_object(self.obj, callback)

    def call(self, method, msg):
        """(status, reply): a call from inside the daemon, as if it came over the bus."""
        return call_service(self.manager, method, msg, self.methods)

    def _call(self, invocation, data):
        method = invocation.method
        try:
            status, reply = self.call(method, data)
        except Exception as e:  # noqa: BLE001 - a core bug: answer, log, keep serving
            self.log(f"{self.obj.name}.{method}: internal error: {type(e).__name__}: {e}",
                     LOG_WARNING)
            return UNKNOWN_ERROR
        if status:
            self.log(f"{self.obj.name}.{method} from {invocation.user or '?'}: "
                     f"{strerror(status)}", LOG_NOTICE)
        if reply is not None:
            try:
                invocation.reply(reply)
            except ValueError as e:  # a reply the codec cannot encode
                self.log(f"{self.obj.name}.{method}: cannot encode the reply: {e}", LOG_WARNING)
                return UNKNOWN_ERROR
        return status

    def notify(self, event_type, payload):
        try:
            self.client.notify(self.obj, event_type, payload)
        except ValueError as e:
            self.log(f"{self.obj.name}: cannot send notification {event_type}: {e}",
                     LOG_WARNING)
