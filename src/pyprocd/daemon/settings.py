"""pyprocd's own configuration, /etc/config/pyprocd (UCI).

Two kinds of sections:

* `config pyprocd 'main'` — global settings: `socket` (ubus socket),
  `syslog` (syslog socket), `object` (ubus object name), and the respawn
  defaults for services (`default_respawn_threshold|timeout|retry`; as in
  procd.sh they otherwise come from `system.@service[0].respawn_*`, then
  3600/5/5), `jail` ('builtin', the default, or 'ujail': jailed instances
  run under OpenWrt's /sbin/ujail with the argv procd builds).
  `respawn_timeout`/`term_timeout` in this section belong to the
  init script that runs pyprocd under procd and are not read here.

* `config service 'NAME'` — a declarative service: the section describes one
  instance (default name `instance1`, or `option instance`), more instances
  come from `config instance` sections with `option service 'NAME'`. Options
  map to procd.sh's `procd_set_param` (same JSON as an init script sends):

    command          list: one argv element each; option: split like a shell
    env data limits  list of K=V (option: several K=V separated by blanks)
    netdev file watch  list (option: split on blanks)
    respawn          '1' = defaults; 'THRESHOLD [TIMEOUT [RETRY]]'; '0' = off;
                     respawn_threshold / respawn_timeout / respawn_retry too
    watchdog         'MODE [TIMEOUT]'
    error            one message
    nice term_timeout            integers
    reload_signal    a signal name (HUP, SIGHUP) or number
    user group pidfile seccomp capabilities facility extroot overlaydir
    tmpoverlaysize   strings
    stdout stderr no_new_privs trace group_kill   booleans
    jail             'NAME [FLAG...]' as procd_add_jail (flags: log ubus udebug
                     procfs sysfs ronly requirejail netns userns cgroupsns);
                     jail_mount / jail_mount_rw: paths bound read-only / writable
    enabled          '0': the service is sent without instances (all stop)
    autostart        service-level boolean

Which option is which kind is the `uci` column of the instance schema
(pyprocd.core.schema): a key added there with a kind is an option here.

`declared_services(confdir)` returns `{name: set-message}`;
`DeclaredServices` re-submits them when the package changes.
"""

from pyprocd.common import LOG_ERR, LOG_NOTICE, LOG_WARNING
from pyprocd.core.schema import DEFAULT_RESPAWN, INSTANCE_KEYS
from pyprocd.uci.model import UciError

PACKAGE = "pyprocd"
DEFAULT_CONFDIR = "/etc/config"

_TRUE = ("1", "on", "true", "yes", "enabled")
_FALSE = ("0", "off", "false", "no", "disabled")

# procd_add_jail's flags (procd.sh), each a boolean of the `jail` table
JAIL_FLAGS = ("log", "ubus", "udebug", "procfs", "sysfs", "ronly", "requirejail", "netns",
              "userns", "cgroupsns")


class Settings:
    """Global settings; None = not configured (the daemon's default applies).

    A plain class, not a dataclass: importing dataclasses pulls in inspect,
    and the argument-parsing path must stay small.
    """

    def __init__(self, socket=None, syslog=None, object=None, respawn_defaults=DEFAULT_RESPAWN):
        self.socket = socket
        self.syslog = syslog
        self.object = object
        self.respawn_defaults = respawn_defaults
        self.jail = None  # 'ujail': jailed instances run under /sbin/ujail

    def __repr__(self):
        return (f"Settings(socket={self.socket!r}, syslog={self.syslog!r}, "
                f"object={self.object!r}, respawn_defaults={self.respawn_defaults!r})")


def _store(confdir, savedir=None, log=None, lock=None):
    """A libuci context reading like `uci export` (what init scripts' config_load
    runs): uncommitted changes in /tmp/.uci count, as they do for procd's
    init scripts and for reload-config's checksums — but, the daemon being
    root, only those only root could have written (refusals are logged)."""
    import os

    from pyprocd.uci.files import LOCK_BLOCK
    from pyprocd.uci.store import DEFAULT_CONF2DIR, DEFAULT_SAVEDIR, Store

    if savedir is None:
        savedir = os.environ.get("PYPROCD_UCI_SAVEDIR", DEFAULT_SAVEDIR)
    conf2dir = os.environ.get("PYPROCD_UCI_CONF2DIR", DEFAULT_CONF2DIR)
    warn = None if log is None else (lambda message: log(f"uci: {message}", LOG_WARNING))
    return Store(confdir=confdir, conf2dir=conf2dir, savedir=savedir, warn=warn,
                 lock=lock or LOCK_BLOCK)


def load_package(confdir, name=PACKAGE, savedir=None, log=None, lock=None):
    """The package, or None if the file does not exist.

    Raises UciError on a parse error (message with line and byte), and
    ConfigLocked when lock is LOCK_TRY and another process holds the lock.
    """
    import os

    from pyprocd.uci.files import ConfigLocked

    try:
        return _store(confdir, savedir, log, lock).load(name)
    except ConfigLocked:
        raise
    except UciError as e:
        if e.reason is None and not os.path.lexists(os.path.join(confdir, name)):
            return None  # no such package: nothing configured
        if e.reason is None:
            # there but unreadable (permissions, a directory, a dangling
            # link): an error, so that running services are left alone
            from pyprocd.uci.model import ERR_IO

            raise UciError(ERR_IO) from None
        raise


def _bool(value, default=None):
    if value is None:
        return default
    value = value.lower() if isinstance(value, str) else value
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


def _get(sec, name):
    opt = sec.option(name) if sec is not None else None
    return None if opt is None else opt.value


def _as_string(value):
    if isinstance(value, list):
        return " ".join(value)
    return value


def _int(value):
    try:
        return int(_as_string(value).strip(), 10)
    except (ValueError, AttributeError):
        return None


def _system_respawn(confdir, savedir=None, log=None, lock=None):
    from pyprocd.uci.files import ConfigLocked

    try:
        system = load_package(confdir, "system", savedir, log, lock)
    except ConfigLocked:
        raise
    except UciError:
        return {}
    if system is None:
        return {}
    sec = system.lookup_extended("service", 0)
    return {k: _int(_get(sec, "respawn_" + k)) for k in ("threshold", "timeout", "retry")}


def _main_section(pkg):
    if pkg is None:
        return None
    sec = pkg.section("main")
    if sec is not None and sec.type == "pyprocd":
        return sec
    return pkg.lookup_extended("pyprocd", 0)


def load_settings(confdir=DEFAULT_CONFDIR, pkg=None, savedir=None, log=None, lock=None):
    """Global settings from <confdir>/pyprocd (+ system for respawn defaults).

    Raises UciError when the file cannot be parsed.
    """
    if pkg is None:
        pkg = load_package(confdir, savedir=savedir, log=log, lock=lock)
    main = _main_section(pkg)
    settings = Settings()
    for field in ("socket", "syslog", "object", "jail"):
        value = _as_string(_get(main, field))
        if value:
            setattr(settings, field, value)
    system = _system_respawn(confdir, savedir, log, lock)
    respawn = []
    for index, key in enumerate(("threshold", "timeout", "retry")):
        own = _int(_get(main, "default_respawn_" + key)) if main is not None else None
        value = own if own is not None else system.get(key)
        respawn.append(value if value is not None else DEFAULT_RESPAWN[index])
    settings.respawn_defaults = tuple(respawn)
    return settings


# -- declared services ------------------------------------------------------------


def _words(value):
    """A list option as is; an option split like a shell command line."""
    if isinstance(value, list):
        return list(value)
    import shlex

    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def _table(value):
    table = {}
    for item in _words(value):
        key, _, val = item.partition("=")
        if key:
            table[key] = val
    return table


def _signal_number(value):
    import _signal as signal  # C module: `signal` would import enum (~0.8 MB for the daemon's life)

    text = _as_string(value).strip()
    if text.isdigit():
        return int(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIG_"):
        return None  # SIG_DFL, SIG_BLOCK, ...: constants, not signals
    sig = getattr(signal, name, None)
    return sig if type(sig) is int else None


def _respawn(sec, defaults, problems):
    """`respawn` as procd.sh sends it: strings; an empty request gets the defaults."""
    value = _get(sec, "respawn")
    explicit = [_get(sec, "respawn_" + k) for k in ("threshold", "timeout", "retry")]
    if value is None and all(v is None for v in explicit):
        return None
    words = _words(value) if value is not None else []
    if len(words) == 1 and _bool(words[0]) is not None:
        if not _bool(words[0]):
            return None
        words = []  # '1': enabled with the defaults
    if not all(w.isdigit() for w in words):
        problems.append(f"respawn: expected '1', '0' or numbers, got {value!r}")
        return None
    values = (words[:3] + [None] * 3)[:3]
    for index, extra in enumerate(explicit):
        if extra is not None:
            number = _int(extra)
            if number is None:
                problems.append("respawn_{}: not a number".format(("threshold", "timeout", "retry")[index]))
            else:
                values[index] = str(number)
    if not words:
        # procd_close_instance fills an empty respawn from system.@service[0]
        return [v if v is not None else str(defaults[i]) for i, v in enumerate(values)]
    while values[-1] is None:
        values.pop()
    return [v if v is not None else str(defaults[i]) for i, v in enumerate(values)]


def _jail(sec, value, problems):
    """procd_add_jail NAME FLAG... plus procd_add_jail_mount[_rw] PATH..."""
    words = _words(value)
    jail = {"name": words[0]} if words else {}
    for flag in words[1:]:
        if flag in JAIL_FLAGS:
            jail[flag] = True
        else:
            problems.append(f"jail: unknown flag {flag!r}")
    mounts = {}
    for option, mode in (("jail_mount", "0"), ("jail_mount_rw", "1")):
        paths = _get(sec, option)
        for path in _words(paths) if paths is not None else ():
            mounts[path] = mode
    jail["mount"] = mounts  # procd_add_jail always sends the table
    return jail


def _number(key, value, problems):
    number = _int(value)
    if number is None:
        problems.append(f"{key}: not a number: {value!r}")
    return number


def _signal_option(key, value, problems):
    number = _signal_number(value)
    if number is None:
        problems.append(f"{key}: unknown signal {value!r}")
    return number


# option kind (the schema's `uci` column) -> value(key, option value, problems)
_CONVERT = {
    "array": lambda key, value, problems: _words(value),
    "table": lambda key, value, problems: _table(value),
    "message": lambda key, value, problems: [_as_string(value)],
    "int": _number,
    "signal": _signal_option,
    "string": lambda key, value, problems: _as_string(value),
    "bool": lambda key, value, problems: _bool(_as_string(value)),
}


def instance_message(sec, respawn_defaults=DEFAULT_RESPAWN, problems=None):
    """One UCI section -> the instance table procd.sh would build."""
    problems = [] if problems is None else problems
    inst = {}
    for key in INSTANCE_KEYS:
        if key.uci == "respawn":  # several options and the defaults
            value = _respawn(sec, respawn_defaults, problems)
        else:
            option = _get(sec, key.name)
            if option is None:
                continue
            if key.uci == "jail":
                value = _jail(sec, option, problems)
            elif key.uci is not None:
                value = _CONVERT[key.uci](key.name, option, problems)
            else:
                continue
        if value is not None:
            inst[key.name] = value
    return inst


def _instance_sections_by_service(pkg):
    """{service name: its extra `config instance` sections, in file order}, in one
    pass: a pass per service would make thousands of services quadratic."""
    grouped = {}
    for sec in pkg.sections:
        if sec.type == "instance":
            grouped.setdefault(_as_string(_get(sec, "service")), []).append(sec)
    return grouped


def _instance_name(sec, default):
    name = _as_string(_get(sec, "name") or _get(sec, "instance") or "")
    if name:
        return name
    return default if sec.anonymous or sec.type == "service" else sec.name


def declared_services(confdir=DEFAULT_CONFDIR, pkg=None, log=None, savedir=None, lock=None):
    """{service name: `service set` message} for every `config service`.

    Raises UciError when the file cannot be parsed.
    """
    log = log or (lambda message, priority=LOG_NOTICE: None)
    if pkg is None:
        pkg = load_package(confdir, savedir=savedir, log=log, lock=lock)
    if pkg is None:
        return {}
    settings = load_settings(confdir, pkg, savedir, log, lock)
    extra = _instance_sections_by_service(pkg)
    services = {}
    for sec in pkg.sections:
        if sec.type != "service" or sec.anonymous:
            if sec.type == "service":
                log("pyprocd config: a service section needs a name", LOG_WARNING)
            continue
        services[sec.name] = _service_message(sec, extra.get(sec.name, ()), settings, log)
    for sec in pkg.sections:
        if sec.type == "instance" and _as_string(_get(sec, "service")) not in services:
            log(f"pyprocd config: instance section {sec.name} names no known service",
                LOG_WARNING)
    return services


def _service_message(sec, extra_sections, settings, log):
    msg = {"name": sec.name}
    autostart = _bool(_as_string(_get(sec, "autostart")))
    if autostart is not None:
        msg["autostart"] = autostart
    instances = {}
    if _bool(_as_string(_get(sec, "enabled")), True):
        sections = list(extra_sections)
        if _get(sec, "command") is not None:
            sections.insert(0, sec)
        for number, inst_sec in enumerate(sections, 1):
            name = _instance_name(inst_sec, f"instance{number}")
            problems = []
            instances[name] = instance_message(inst_sec, settings.respawn_defaults, problems)
            for problem in problems:
                log(f"pyprocd config: service {sec.name} instance {name}: {problem}",
                    LOG_WARNING)
    msg["instances"] = instances
    msg["triggers"] = []  # procd_close_service always sends the (empty) array
    return msg


# Waits between tries while another process holds a lock on the config
# (a `uci commit` holds it for milliseconds; anyone who can read the file can
# hold it forever): about 10 s in all, then the file is read without the lock.
LOCK_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.5, 2.0, 2.0, 3.0)


class DeclaredServices:
    """Keeps the services of /etc/config/pyprocd submitted to the core.

    `apply()` re-reads the file and `set`s every declared service (the core's
    diff restarts only instances whose configuration changed, exactly as an
    init script's reload does), and `delete`s services that were declared
    before and are gone now. A file that does not parse changes nothing: the
    error is logged with libuci's line/byte and every service keeps running.
    A file locked by another process is retried on `call_later` (the loop's)
    instead of waited for, so the daemon keeps answering meanwhile.
    """

    def __init__(self, call, confdir=DEFAULT_CONFDIR, log=None, savedir=None, call_later=None):
        self.call = call  # call(method, msg) -> (status, reply)
        self.confdir = confdir
        self.savedir = savedir
        self.log = log or (lambda message, priority=LOG_NOTICE: None)
        self.call_later = call_later  # call_later(delay, fn, *args); None: no waiting
        self.submitted = {}
        self._retry_pending = False

    def apply(self):
        if self._retry_pending:
            return False  # the pending try reads the file as it is by then
        return self._read_and_apply(0)

    def _read_and_apply(self, tries):
        from pyprocd.uci.files import LOCK_NONE, LOCK_TRY, ConfigLocked

        self._retry_pending = False
        lock = LOCK_TRY if tries < len(LOCK_RETRY_DELAYS) else LOCK_NONE
        try:
            declared = declared_services(self.confdir, log=self.log, savedir=self.savedir,
                                         lock=lock)
        except ConfigLocked as e:
            return self._locked(e.path, tries)
        except UciError as e:
            self.log(f"cannot read {self.confdir}/{PACKAGE}: uci: {e.message()}; keeping the current services", LOG_ERR)
            return False
        for name, msg in declared.items():
            status, _ = self.call("set", msg)
            if status:
                self.log(f"declared service {name}: set failed with status {status}",
                         LOG_WARNING)
        for name in self.submitted.keys() - declared.keys():
            self.call("delete", {"name": name})
        self.submitted = declared
        return True

    def _locked(self, path, tries):
        if tries == 0:
            self.log(f"{path} is locked by another process; reading it when the lock is "
                     "released", LOG_WARNING)
        if self.call_later is None or tries + 1 >= len(LOCK_RETRY_DELAYS):
            self.log(f"{path} is still locked; reading it without the lock", LOG_WARNING)
            return self._read_and_apply(len(LOCK_RETRY_DELAYS))
        self._retry_pending = True
        self.call_later(LOCK_RETRY_DELAYS[tries], self._read_and_apply, tries + 1)
        return False

    def on_event(self, type_, data):
        """True when this event means our package changed (`config.change`)."""
        return (type_ == "config.change" and isinstance(data, dict)
                and data.get("package") == PACKAGE)


# -- daemon hook -------------------------------------------------------------------


def fill_options(options, defaults, log=None):
    """Options the command line left at their defaults take the UCI values.

    `defaults` maps option attribute -> its command-line default, e.g.
    {"socket": "/var/run/ubus/ubus.sock", "object": "service", "syslog": "/dev/log"}.
    A config file that does not parse is reported and ignored.
    """
    from pyprocd.uci.files import LOCK_NONE, LOCK_TRY, ConfigLocked

    confdir = getattr(options, "confdir", None) or DEFAULT_CONFDIR
    try:
        try:
            settings = load_settings(confdir, log=log, lock=LOCK_TRY)
        except ConfigLocked as e:
            # start-up does not wait for a lock anyone can hold: read as it is
            if log is not None:
                log(f"{e.path} is locked by another process; reading it without the lock",
                    LOG_WARNING)
            settings = load_settings(confdir, log=log, lock=LOCK_NONE)
    except UciError as e:
        if log is not None:
            log(f"cannot read {confdir}/{PACKAGE}: uci: {e.message()}", LOG_ERR)
        settings = Settings()
    given = getattr(options, "given", None)  # options the command line set, if known
    for attr, default in defaults.items():
        value = getattr(settings, attr, None)
        if not value:
            continue
        explicit = attr in given if given is not None else getattr(options, attr, default) != default
        if not explicit:
            setattr(options, attr, value)
    options.respawn_defaults = settings.respawn_defaults
    return settings


def attach(loop, manager, confdir=DEFAULT_CONFDIR, log=None, respawn_defaults=None,
           savedir=None, call=None):
    """Wire UCI into a daemon: the trigger engine, and the services of
    <confdir>/pyprocd submitted now and re-submitted on `config.change` for
    package pyprocd (debounced to one re-read per loop turn)."""
    from pyprocd.core.triggers import TriggerEngine

    log = log or (lambda message, priority=LOG_NOTICE: None)
    if respawn_defaults is not None:
        manager.respawn_defaults = tuple(respawn_defaults)
    engine = manager.triggers
    if engine is None:
        # Scripts start like the spawner's helper commands: the environment the
        # daemon was started with, default signal dispositions.
        spawner = getattr(manager, "spawner", None)
        env = getattr(spawner, "base_env", None)
        engine = manager.triggers = TriggerEngine(
            loop, log=log, env=env, spawn=getattr(spawner, "start_script", None))
    if call is None:  # the `service` object's calls, as a client's would go
        from pyprocd.api.service import call_service

        def call(method, msg):
            return call_service(manager, method, msg)
    declared = DeclaredServices(call, confdir, log, savedir, call_later=loop.call_later)
    scheduled = []

    def resubmit():
        scheduled.clear()
        log(f"{confdir}/{PACKAGE} changed: re-submitting its services")
        declared.apply()

    def on_event(type_, data):
        # Deferred: the event arrives inside a `service event` call.
        if declared.on_event(type_, data) and not scheduled:
            scheduled.append(loop.call_soon(resubmit))

    engine.listeners.append(on_event)
    engine.watches_of = lambda service, instance: _instance_watches(manager, service, instance)
    loop.call_soon(declared.apply)
    return declared


def _instance_watches(manager, service, instance):
    svc = manager.services.get(service)
    inst = svc.instances.get(instance) if svc is not None else None
    spec = getattr(inst, "spec", None)
    return getattr(spec, "watch", ())


def attach_bus(client, engine, ready=None):
    """The bus side of `watch` (procd §3.12): subscribe to every watched
    object, now if it exists and again whenever `ubus.object.add` announces
    it; each notification it sends becomes a trigger event (type = the
    notification name, data = its table). ready(status) once the
    `ubus.object.add` listener is registered."""
    from pyprocd.bus.client import UbusObject

    def notified(invocation, data):
        engine.notification(None, invocation.method, data if isinstance(data, dict) else {})
        return 0

    subscriber = UbusObject(catch_all=notified)
    client.add_object(subscriber)

    def subscribe(path):
        client.subscribe(subscriber, path)

    def object_added(_event, data):
        if isinstance(data, dict) and data.get("path") in engine.watched:
            subscribe(data["path"])

    engine.on_watch = subscribe
    client.register_event("ubus.object.add", object_added, ready)
    for path in engine.watched:
        subscribe(path)
    return subscriber
