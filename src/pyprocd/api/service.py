"""The ubus object `service`: procd's method table on the bus, served by the core.

The signature is procd's, method for method and argument for argument, so
`ubus -v list service` prints exactly what it prints on a router. Each call
goes to `ServiceManager.call(method, msg)`; its (status, reply) becomes the
ubus answer (one DATA when there is a reply, then the STATUS). The manager's
notifications (instance.start, service.stop, ...) go out as ubus NOTIFY on
this object, fire and forget like procd's.

Methods the manager offers beyond procd (e.g. `revive`) are callable too but
are not listed, so the listing stays byte-identical to procd's.
"""

from pyprocd.bus.client import ARRAY, BOOL, INT32, STRING, TABLE, UbusObject
from pyprocd.wire.ubusmsg import UNKNOWN_ERROR, strerror

_SET_POLICY = {"name": STRING, "script": STRING, "instances": TABLE, "triggers": ARRAY,
               "validate": ARRAY, "autostart": BOOL, "data": TABLE}

# procd's `service` object (procd/service/service.c), in its registration order.
PROCD_METHODS = (
    ("set", _SET_POLICY),
    ("add", _SET_POLICY),
    ("list", {"name": STRING, "verbose": BOOL}),
    ("delete", {"name": STRING, "instance": STRING}),
    ("signal", {"name": STRING, "instance": STRING, "signal": INT32}),
    ("update_start", {"name": STRING}),
    ("update_complete", {"name": STRING}),
    ("event", {"type": STRING, "data": TABLE}),
    ("validate", {"package": STRING, "type": STRING, "service": STRING}),
    ("get_data", {"name": STRING, "instance": STRING, "type": STRING}),
    ("set_data", {"name": STRING, "instance": STRING, "data": TABLE}),
    ("state", {"spawn": BOOL, "name": STRING}),
    ("watchdog", {"mode": INT32, "timeout": INT32, "name": STRING, "instance": STRING}),
)

LOG_NOTICE = 5
LOG_WARNING = 4


class ServiceApi:
    """Publishes `manager` as the ubus object `name` through `client`."""

    def __init__(self, client, manager, name="service", log=None):
        self.client = client
        self.manager = manager
        self.log = log or (lambda message, priority=LOG_NOTICE: None)
        methods = {method: (policy, self._call) for method, policy in PROCD_METHODS}
        self.obj = UbusObject(name, methods, fallback=self._call)
        manager.notify = self.notify

    def publish(self, callback=None):
        """Register the object (again after every reconnect); callback(status)."""
        self.client.add_object(self.obj, callback)

    def _call(self, invocation, data):
        method = invocation.method
        try:
            status, reply = self.manager.call(method, data)
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
