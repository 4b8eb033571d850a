"""`pyprocd ubus`: the OpenWrt `ubus` command line, same output and exit codes.

Spec ubus-wire.md §7. Output is rendered from the raw blobmsg bytes (as libubox
does), so what procd or any other object sends prints exactly as with the real
tool. Exit codes follow its three regimes (stderr a tty or not, -S).
"""

import os
import signal
import sys

from pyprocd.bus import frame as F
from pyprocd.common import atoi

PROG = "ubus"
USAGE = (
    "Usage: {prog} [<options>] <command> [arguments...]\n"
    "Options:\n"
    " -s <socket>:\t\tSet the unix domain socket to connect to\n"
    " -t <timeout>:\t\tSet the timeout (in seconds) for a command to complete\n"
    " -S:\t\t\tUse simplified output (for scripts)\n"
    " -v:\t\t\tMore verbose output\n"
    " -m <type>:\t\t(for monitor): include a specific message type\n"
    "\t\t\t(can be used more than once)\n"
    " -M <r|t>\t\t(for monitor): only capture received or transmitted traffic\n"
    "\n"
    "Commands:\n"
    " - list [<path>]\t\t\tList objects\n"
    " - call <path> <method> [<message>]\tCall an object method\n"
    " - subscribe <path> [<path>...]\tSubscribe to object(s) notifications\n"
    " - listen [<path>...]\t\t\tListen for events\n"
    " - send <type> [<message>]\t\tSend an event\n"
    " - wait_for <object> [<object>...]\tWait for multiple objects to appear on ubus\n"
    " - monitor\t\t\t\tMonitor ubus traffic\n"
    "\n"
)
USAGE_ERROR = -2
MONITOR_TYPES = ("hello", "status", "data", "ping", "lookup", "invoke", "add_object",
                 "remove_object", "subscribe", "unsubscribe", "notify")
ARG_TYPE_NAMES = {1: '"Array"', 2: '"Table"', 3: '"String"', 5: '"Integer"', 7: '"Boolean"'}
OPTIONS_WITH_ARGUMENT = "smMt"
FLAG_OPTIONS = "Sv"


def out(text):
    _write(sys.stdout, text)


def err(text):
    _write(sys.stderr, text)


def _write(stream, text):
    try:
        stream.buffer.write(text.encode("utf-8", "surrogateescape"))
        stream.buffer.flush()
    except BrokenPipeError:
        _die_of_sigpipe()


def _die_of_sigpipe():
    """The reader is gone (`ubus call ... | head`): end at once as the C CLI does,
    killed by SIGPIPE, so the shell sees the same status. Python ignores SIGPIPE
    (a write only raises), so put the default back and raise it."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    os._exit(128 + signal.SIGPIPE)  # not reached: the signal ends the process


def usage():
    err(USAGE.format(prog=PROG))
    return 1


class Options:
    def __init__(self):
        self.socket = F.DEFAULT_SOCKET
        self.timeout = 30
        self.timeout_given = False
        self.simple = False
        self.verbose = False
        self.monitor_types = set()
        self.monitor_dir = None  # None, "r" or "t"


def parse_options(argv):
    """getopt("m:M:s:t:Sv") with GNU argument permutation: (Options, args) or None."""
    opts, args = Options(), []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            args.extend(argv[i:])
            break
        if not word.startswith("-") or word == "-":
            args.append(word)
            continue
        j = 1
        while j < len(word):
            letter = word[j]
            j += 1
            if letter in FLAG_OPTIONS:
                if letter == "S":
                    opts.simple = True
                else:
                    opts.verbose = True
                continue
            if letter not in OPTIONS_WITH_ARGUMENT:
                err(f"{PROG}: invalid option -- '{letter}'\n")
                return None
            if j < len(word):
                value, j = word[j:], len(word)
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                err(f"{PROG}: option requires an argument -- '{letter}'\n")
                return None
            if not _set_option(opts, letter, value):
                return None
    return opts, args


def _set_option(opts, letter, value):
    if letter == "s":
        opts.socket = value
    elif letter == "t":
        opts.timeout = atoi(value)
        opts.timeout_given = True
    elif letter == "m":
        if value not in MONITOR_TYPES:
            return False
        opts.monitor_types.add(MONITOR_TYPES.index(value))
    elif letter == "M":
        if value not in ("r", "t"):
            return False
        opts.monitor_dir = value
    return True


def _json_quote(text):
    from pyprocd.wire import blobmsg

    return blobmsg.to_json(text)


def _compact(payload):
    from pyprocd.wire import blobmsg

    return blobmsg.format_json(payload)


def _indented(payload):
    from pyprocd.wire import blobmsg

    return blobmsg.format_json(payload, indent=True)


class Session:
    """One connection plus the loop, with synchronous helpers for the commands."""

    def __init__(self, opts):
        from pyprocd.bus.client import UbusClient
        from pyprocd.loop import Loop

        self.opts = opts
        self.loop = Loop()
        self.client = UbusClient(self.loop, opts.socket, reconnect=False, log=lambda text: None)
        self.stopped = False

    def connect(self):
        if not self.client.start():
            return False
        self.loop.run_until(lambda: self.client.connected or self.client.sock is None, 30)
        return self.client.connected

    def close(self):
        self.client.close()
        self.loop.close()

    def wait(self, start):
        """Issue a request with start(callback) and run until the callback fired."""
        result = []
        start(lambda *args: result.append(args))
        while not result and not self.stopped:
            self.loop.run_once()
        return result[0] if result else (F.CONNECTION_FAILED, None)

    def catch_signals(self):
        """SIGTERM/SIGINT end listen/subscribe/monitor normally (exit 0), as with uloop."""
        def on_signal(_signum):
            self.stopped = True

        self.loop.add_signal_handler(signal.SIGTERM, on_signal)
        self.loop.add_signal_handler(signal.SIGINT, on_signal)

    def run_for(self, seconds, done=lambda: False):
        """Run the loop until done(), a stop signal, or `seconds` (None/0 = forever)."""
        deadline = self.loop.time() + seconds if seconds else None
        while not self.stopped and not done() and self.client.sock is not None:
            left = None if deadline is None else deadline - self.loop.time()
            if left is not None and left <= 0:
                break
            self.loop.run_once(left)


# -- commands ------------------------------------------------------------------


def cmd_list(session, args):
    if len(args) > 1:
        return USAGE_ERROR
    opts = session.opts
    status, found = session.wait(lambda cb: session.client.lookup(args[0] if args else None, cb))
    for obj in found or ():
        if not opts.verbose or opts.simple:
            out(f"{obj.path}\n")
            continue
        out(f"'{obj.path}' @{obj.id:08x}\n")
        for line in _signature_lines(obj.signature or b""):
            out(f"\t{line}\n")
    return status


def _signature_lines(signature):
    """Each method entry as `"name":{"arg":"Type",...}` (ubus -v list)."""
    for _id, ext, start, end, _next in F.iter_attrs(signature):
        off = start - 4
        if not F.bm_check(signature, off, end - off, False):
            yield ""
            continue
        bm_type, name, vstart, vend = F.bm_element(signature, off)
        prefix = f"{_json_quote(_text(name))}:" if name else ""
        if bm_type not in (F.BM_TABLE, F.BM_ARRAY):
            yield prefix + _compact(signature[off:end])[1:-1].split(":", 1)[-1]
            continue
        items = []
        for _i, _e, astart, aend, _n in F.iter_attrs(signature, vstart, vend):
            aoff = astart - 4
            if not F.bm_check(signature, aoff, aend - aoff, False):
                items.append("")
                continue
            a_type, a_name, a_vstart, _a_vend = F.bm_element(signature, aoff)
            key = f"{_json_quote(_text(a_name))}:" if a_name else ""
            if a_type == F.BM_INT32:
                items.append(key + ARG_TYPE_NAMES.get(F.u32_at(signature, a_vstart),
                                                      '"(unknown)"'))
            else:
                items.append(_compact(signature[aoff:aend])[1:-1])
        close = ("{", "}") if bm_type == F.BM_TABLE else ("[", "]")
        yield prefix + close[0] + ",".join(items) + close[1]


def _text(name):
    return (name or b"").decode("utf-8", "surrogateescape")


def _parse_message(text):
    from pyprocd.wire import blobmsg

    try:
        return blobmsg.from_json(text)
    except ValueError:
        return None


def _call_failed(opts, args, status):
    """`call` failures: the long form and a negative code when stderr is no tty."""
    if opts.simple or os.isatty(2):
        return status
    err("Command failed: ubus call " + "".join(a + " " for a in args)
        + f"({F.strerror(status)})\n")
    return -status


def cmd_call(session, args):
    if not 2 <= len(args) <= 3:
        return USAGE_ERROR
    opts = session.opts
    data = {}
    if len(args) == 3:
        data = _parse_message(args[2])
        if data is None:
            return _call_failed(opts, args, F.PARSE_ERROR)
    status, objid = session.wait(lambda cb: session.client.lookup_id(args[0], cb))
    if status:
        return status

    def show(payload):
        out((_compact(payload) if opts.simple else _indented(payload)) + "\n")

    status, _replies = session.wait(lambda cb: session.client.invoke(
        objid or 0, args[1], data, cb, timeout=opts.timeout, on_data=show, raw=True))
    if status:
        return _call_failed(opts, args, status)
    return 0


def _print_event(name, payload):
    out(f'{{ "{name}": {_compact(payload)} }}\n')


def cmd_listen(session, args):
    patterns = args or ["*"]
    # The error names the failing pattern (the real CLI does; for subscribe it does not).
    return _register_and_run(session, patterns, lambda client: client.listen,
                             lambda pattern: pattern)


def cmd_subscribe(session, args):
    if not args:
        if not session.opts.simple:
            err("You need to specify an object to subscribe to\n")
        return -1
    # The real CLI names the first object whichever one failed: kept byte for byte.
    return _register_and_run(session, args, lambda client: client.subscribe,
                             lambda _path: args[0])


def _register_and_run(session, targets, register, named):
    """Add a catch-all object, register it for each target, print what arrives until -t."""
    from pyprocd.bus.client import UbusObject

    opts = session.opts
    session.catch_signals()
    receiver = UbusObject(catch_all=lambda inv, payload: _print_event(inv.method, payload),
                          raw_data=True)
    status = session.wait(lambda cb: session.client.add_object(receiver, cb))[0]
    for target in targets:
        if not status:
            status = session.wait(
                lambda cb, t=target: register(session.client)(receiver, t, cb))[0]
        if status:
            if not opts.simple:
                err(f"Error while registering for event '{named(target)}': {F.strerror(status)}\n")
            return -1
    session.run_for(opts.timeout if opts.timeout_given else None)
    return 0


def cmd_send(session, args):
    if not 1 <= len(args) <= 2:
        return USAGE_ERROR
    data = {}
    if len(args) == 2:
        data = _parse_message(args[1])
        if data is None:
            return F.PARSE_ERROR
    status = session.wait(lambda cb: session.client.send_event(args[0], data, cb))[0]
    return status


def cmd_wait_for(session, args):
    from pyprocd.bus.client import UbusObject
    from pyprocd.wire import blobmsg

    if not args:
        return USAGE_ERROR
    pending = set(args)

    def appeared(_event, payload):
        try:
            path = blobmsg.decode_table(payload, strict=False).get("path")
        except ValueError:
            return
        pending.discard(path)

    listener = UbusObject(catch_all=lambda inv, payload: appeared(inv.method, payload),
                          raw_data=True)
    client = session.client
    status = session.wait(lambda cb: client.add_object(listener, cb))[0]
    if not status:
        status = session.wait(lambda cb: client.listen(listener, "ubus.object.add", cb))[0]
    if status:
        return status
    status, objects = session.wait(lambda cb: client.lookup(None, cb))
    for obj in objects or ():
        pending.discard(obj.path)
    if not pending:
        return 0
    timeout = session.opts.timeout
    if timeout > 0:
        session.run_for(timeout, done=lambda: not pending)
    return 0 if not pending else F.TIMEOUT


def _monitor_request(method):
    # The reference CLI's DATA here holds copies of its own OBJID/METHOD attributes.
    data = F.attr_u32(F.A_OBJID, 3) + F.attr_str(F.A_METHOD, method)
    return F.attr_u32(F.A_OBJID, 3) + F.attr_str(F.A_METHOD, method) + F.attr(F.A_DATA, data)


MONITOR_POLICY = {F.M_CLIENT: F.B_INT32, F.M_PEER: F.B_INT32, F.M_SEND: F.B_INT8,
                  F.M_SEQ: F.B_INT32, F.M_TYPE: F.B_INT32, F.M_DATA: F.B_NESTED}
SHOWN_POLICY = {F.A_STATUS: F.B_INT32, F.A_OBJPATH: F.B_STRING, F.A_OBJID: F.B_INT32,
                F.A_METHOD: F.B_STRING, F.A_OBJTYPE: F.B_INT32, F.A_SIGNATURE: F.B_NESTED,
                F.A_DATA: F.B_NESTED, F.A_ACTIVE: F.B_INT8, F.A_NO_REPLY: F.B_INT8,
                F.A_USER: F.B_STRING, F.A_GROUP: F.B_STRING, F.A_TARGET: F.B_INT32,
                F.A_SUBSCRIBERS: F.B_NESTED}
SHOWN = ((F.A_STATUS, "status", "int"), (F.A_OBJPATH, "objpath", "str"),
         (F.A_OBJID, "objid", "int"), (F.A_METHOD, "method", "str"),
         (F.A_OBJTYPE, "objtype", "int"), (F.A_SIGNATURE, "signature", "json"),
         (F.A_DATA, "data", "json"), (F.A_ACTIVE, "active", "bool"),
         (F.A_NO_REPLY, "no_reply", "bool"), (F.A_USER, "user", "str"),
         (F.A_GROUP, "group", "str"))


def monitor_line(body):
    """One `ubus monitor` output line for a MONITOR message body, or None if unusable."""
    m = F.Attrs(body, MONITOR_POLICY)
    values = [m.u32(i) for i in (F.M_CLIENT, F.M_PEER, F.M_SEQ, F.M_TYPE)]
    if None in values or m.u8(F.M_SEND) is None or F.M_DATA not in m:
        return None
    client, peer, _seq, msg_type = values
    inner = F.Attrs(m.payload(F.M_DATA), SHOWN_POLICY)
    fields = []
    for attr_id, key, kind in SHOWN:
        if attr_id not in inner:
            continue
        if kind == "int":
            value = str(inner.i32(attr_id))
        elif kind == "str":
            value = _json_quote(_text(inner.string(attr_id)))
        elif kind == "bool":
            value = "true" if inner.u8(attr_id) else "false"
        else:
            value = _compact(inner.payload(attr_id))
        fields.append(f'"{key}":{value}')
    name = MONITOR_TYPES[msg_type] if msg_type < len(MONITOR_TYPES) else str(msg_type)
    direction = "->" if m.u8(F.M_SEND) else "<-"
    return f"{direction} {client:08x} #{peer:08x} {name:>14}: {{{','.join(fields)}}}\n", \
        msg_type, bool(m.u8(F.M_SEND))


def cmd_monitor(session, args):
    opts = session.opts
    client = session.client

    def show(body):
        line = monitor_line(body)
        if line is None:
            return
        text, msg_type, sent = line
        if opts.monitor_types and msg_type not in opts.monitor_types:
            return
        if opts.monitor_dir and (opts.monitor_dir == "t") != sent:
            return
        out(text)

    client.on_monitor = show
    session.catch_signals()
    status = session.wait(lambda cb: client.request(F.INVOKE, 3, _monitor_request("add"),
                                                      on_done=cb, timeout=1))[0]
    if status:
        return status
    session.run_for(None)
    session.stopped = False
    if client.sock is not None:
        session.wait(lambda cb: client.request(F.INVOKE, 3, _monitor_request("remove"),
                                               on_done=cb, timeout=1))
    return 0


COMMANDS = {"list": cmd_list, "call": cmd_call, "listen": cmd_listen,
            "subscribe": cmd_subscribe, "send": cmd_send, "wait_for": cmd_wait_for,
            "monitor": cmd_monitor}


def main(argv=None):
    parsed = parse_options(sys.argv[1:] if argv is None else argv)
    if parsed is None:
        return usage()
    opts, args = parsed
    if not args:
        return usage()
    session = Session(opts)
    try:
        if not session.connect():
            if not opts.simple:
                err("Failed to connect to ubus\n")
            return 255
        command = COMMANDS.get(args[0])
        ret = command(session, args[1:]) if command else USAGE_ERROR
    except KeyboardInterrupt:
        ret = 0
    finally:
        session.close()
    if ret > 0 and not opts.simple:
        err(f"Command failed: {F.strerror(ret)}\n")
    elif ret == USAGE_ERROR:
        usage()
    return ret & 0xFF
