"""Warm starts of Python instances: one zygote per (interpreter, preloaded modules).

An instance with the `zygote` key (an extension: the modules to preload) whose
command is `[python3, script.py, args...]` or `[python3, -m, module, args...]`
is started by forking an interpreter that has already imported those modules,
instead of exec'ing a cold one. Supervision is the same as for a cold start:

* For each request the zygote forks a helper, which forks the service and exits
  at once, so the service is re-parented to the daemon (a child subreaper): the
  pid in `list` is the service's own process, a child of the daemon, which reads
  its real wait status and signals it directly.
* The zygote's heap is made ready to be shared before the first fork (collector
  off and frozen, the allocator's free blocks taken, the environment's strings
  side by side), so a service copies few of its pages; see main(). It forks
  through libc's fork(), not os.fork(): CPython's at-fork hooks would re-make
  every lock of threading and logging in each helper and service, copying the
  pages they sit on; the hooks a single-threaded process needs are replayed
  (bare_fork). The zygote compiles each script once, ahead of the forks
  (compile_ahead); a service uses that code only for the very file it opened
  itself, as its own user.
* The service waits for a byte from the daemon before it runs anything, so the
  daemon is watching it before it can exit.
* It goes through the cold child's own set-up (signals, session, nice, limits,
  stdio, user/group, hardening) from the same plan, prepared by the daemon;
  then, where a cold child would exec, it runs the script as a fresh
  interpreter would (sys.argv, sys.path[0], default signal handlers, exit
  status, KeyboardInterrupt).
* A set-up failure reaches the daemon through the same error pipe as an exec
  failure, so it shows in `errors` the same way.

The zygote is started the first time an identity is asked for; until it says
it is ready, instances of that identity start cold (logged). A zygote that
died is started again. Zygotes exit when the daemon's end of their socket
closes (daemon exit, crash or re-exec).

Daemon side: `Zygotes` (constructed by the spawner). Zygote side: `main()`,
run as `python3 -m pyprocd.process.zygote MODULE...` with its socket as fd 3.
"""

import marshal
import os
import struct
import sys

ZYGOTE_FD = 3
READY = b"R"
REPLY_TIMEOUT = 10.0  # seconds the daemon waits for a zygote to report a started pid
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ZygoteUnavailable(Exception):
    """This start cannot be warm: the caller starts it cold (and says why)."""


def python_command(argv):
    """(interpreter, run) for [python, script, ...] / [python, -m, module, ...], else None."""
    if len(argv) < 2 or not os.path.basename(argv[0]).startswith("python"):
        return None
    if argv[1] == "-m":
        return (argv[0], ("module", argv[2])) if len(argv) >= 3 else None
    if argv[1].startswith("-"):
        return None  # interpreter options are not something a fork can honour
    return argv[0], ("path", argv[1])


# -- daemon side ---------------------------------------------------------------


class Zygotes:
    """The daemon's zygotes, by (interpreter, preloaded modules)."""

    def __init__(self, loop, base_env, log):
        self.loop = loop
        self.base_env = base_env
        self.log = log
        self.by_key = {}

    def ready(self, interpreter, preload):
        """The ready zygote for that identity, or None (then one is being started)."""
        key = (interpreter, tuple(preload))
        zygote = self.by_key.get(key)
        if zygote is not None and zygote.pid is None:
            zygote = None  # it died: start another
        if zygote is None:
            try:
                self.by_key[key] = Zygote(self.loop, interpreter, preload, self.base_env,
                                          self.log)
            except OSError as e:
                self.log(f"zygote {interpreter} {' '.join(preload)}: cannot start: {e}")
                self.by_key.pop(key, None)
            return None
        return zygote if zygote.is_ready else None


class Zygote:
    def __init__(self, loop, interpreter, preload, base_env, log):
        import _socket

        self.loop = loop
        self.log = log
        self.label = f"{interpreter} [{' '.join(preload)}]"
        self.is_ready = False
        self.seq = 0
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        try:
            env = dict(base_env)
            path = env.get(b"PYTHONPATH")
            env[b"PYTHONPATH"] = PACKAGE_PARENT.encode() + (b":" + path if path else b"")
            env[b"PYPROCD_ZYGOTE_PATH"] = PACKAGE_PARENT.encode()
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                self.pid = os.posix_spawn(
                    interpreter, [interpreter, "-m", "pyprocd.process.zygote", *preload], env,
                    file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                                  (os.POSIX_SPAWN_DUP2, theirs.fileno(), ZYGOTE_FD)],
                    setsigdef=_python_ignored())
            finally:
                os.close(null)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        loop.add_reader(ours.fileno(), self._on_readable)
        loop.watch_child(self.pid, self._exited)

    def _on_readable(self):
        try:
            data = self.sock.recv(16)
        except OSError:
            data = b""
        if data == READY and not self.is_ready:
            self.is_ready = True
            self.log(f"zygote {self.label} ready (pid {self.pid})")
            return
        self._close()  # EOF or nonsense: not usable any more

    def _exited(self, _pid, status):
        if self.pid is not None:
            self.log(f"zygote {self.label} (pid {self.pid}) exited, wait status {status}")
        self.pid = None
        self._close()

    def _close(self):
        self.is_ready = False
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.pid is not None:
            try:
                os.kill(self.pid, 15)  # its exit is reaped by the watch above
            except ProcessLookupError:
                pass

    def start(self, request_fields, fds):
        """Ask for one warm start: returns the service's pid; raises ZygoteUnavailable.

        Requests are numbered: an answer that comes after its request was given up
        (and started cold) is recognised and dropped; the process it names never
        gets the daemon's go-ahead and exits without running anything."""
        import _socket
        import select
        import time

        if not self.is_ready or self.sock is None:
            raise ZygoteUnavailable("zygote not ready")
        self.seq += 1
        request = marshal.dumps((self.seq, *request_fields))
        deadline = time.monotonic() + REPLY_TIMEOUT
        try:
            self.sock.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                           struct.pack(f"{len(fds)}i", *fds))])
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    raise ZygoteUnavailable(f"no answer within {REPLY_TIMEOUT:.0f} s")
                reply = self.sock.recv(64)
                if len(reply) != 9 or reply[:1] != b"P":
                    self._close()
                    raise ZygoteUnavailable(f"bad answer {reply!r}")
                seq, pid = struct.unpack("<ii", reply[1:])
                if seq == self.seq:
                    return pid
        except OSError as e:
            self._close()
            raise ZygoteUnavailable(str(e)) from None


def start_warm(spawner, zygotes, spec, plan, on_exit, on_forked):
    """Start an instance from a zygote: the spawner's Running, or None when this start
    must be cold (the reason is logged)."""
    from pyprocd.common import LOG_INFO
    from pyprocd.process.spawn import release

    def say(message):
        if spawner.log is not None:
            spawner.log(message, LOG_INFO)

    label = f"{spec.name}: warm start"
    run = python_command(list(spec.command))
    if run is None:
        say(f"{label} impossible, the command is not `python3 SCRIPT|-m MODULE ...`: cold start")
        return None
    if not spawner.subreaper:
        say(f"{label} needs the daemon to be a child subreaper: cold start")
        return None
    ready = zygotes.ready(run[0], spec.zygote)
    if ready is None:
        say(f"{label}: the zygote is not ready yet: cold start")
        return None
    fds = []
    try:
        out_r, out_w = spawner.pipe(spec.stdout, fds)
        err_r_log, err_w_log = spawner.pipe(spec.stderr, fds)
        err_r, err_w = spawner.pipe(True, fds)
        go_r, go_w = spawner.pipe(True, fds)
        sent = [fd for fd in (out_w, err_w_log, err_w, go_r) if fd is not None]
        request = request_fields(plan, run[1], [out_w is not None, err_w_log is not None,
                                                True, True])
        pid = ready.start(request, sent)
    except (OSError, ZygoteUnavailable) as e:
        for fd in fds:
            os.close(fd)
        say(f"{label} failed ({e}): cold start")
        return None
    for fd in sent:
        os.close(fd)
    try:
        return spawner.started(spec, pid, err_r, out_r, err_r_log, on_exit, on_forked)
    finally:
        release(go_w)  # watched and recorded: it may run (and exit)


def _python_ignored():
    import _signal

    return (_signal.SIGPIPE, _signal.SIGXFSZ)


def request_fields(plan, run, fds_present):
    """The plan as plain data for the zygote, sent with marshal (both ends are ours),
    after the request's number: (plan fields, run, fds_present). Tuples, not a dict:
    str keys would be looked up among the zygote's interned strings, a page written
    for each.

    fds_present: which of stdout, stderr, error pipe, go pipe travel with it."""
    from pyprocd.process.spawn import plan_fields

    return plan_fields(plan), run, fds_present


# -- zygote side ---------------------------------------------------------------


def main(preload):
    import gc

    # No collection from here to the fork: each one would free objects all over the
    # heap, and the holes they leave would be filled by every service's first
    # allocations, each on a page it then has to copy (the gc module's advice).
    gc.disable()
    import _signal
    import _socket
    import importlib

    own_path = os.environ.pop("PYPROCD_ZYGOTE_PATH", None)
    sock = _socket.socket(fileno=ZYGOTE_FD)
    hooks = AtForkHooks()  # before the imports: the hooks they register are replayed
    # What every service start needs, imported once here rather than in each service
    _bind_service_modules()
    for name in ("runpy", *preload):
        importlib.import_module(name)
    global fork
    fork = bare_fork(hooks)
    # Our package's path was added for this module only: not the services' sys.path.
    if own_path and own_path in sys.path:
        sys.path.remove(own_path)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    _fresh_interpreter_signals()
    _compact_environment()
    # The collector writes into every object it tracks: frozen, the preloaded heap stays
    # shared, page for page, with every service forked from here.
    gc.freeze()
    fill_allocator_holes()
    sock.send(READY)
    serve(sock)


def _fresh_interpreter_signals():
    """The dispositions a fresh interpreter starts with, here, before any fork: no
    Python handler (SIGINT's could be tripped here and then run in a service forked
    from us, as a bare fork does not clear the flags as os.fork does), SIGPIPE and
    SIGXFSZ ignored, what whoever started us ignored still ignored. A service then
    has nothing to reset; it sets its SIGINT handler as CPython's start-up does."""
    import _signal

    from pyprocd.process import spawn

    for sig in spawn.signals_to_reset():
        _signal.signal(sig, _signal.SIG_DFL)
    for sig in spawn.PYTHON_IGNORED:
        _signal.signal(sig, _signal.SIG_IGN)


def _bind_service_modules():
    """Bind what a service's start uses to this module's names, here, once: an import
    statement run in each service writes to the reference counts of the module and of
    its spec, a page copied for each."""
    global CodeType, SourceFileLoader, atexit, builtins, files, gc, select, signal, spawn, stat
    global time, warnings
    import _signal as signal  # `signal` would import enum: a cold start has neither
    import atexit
    import builtins
    import gc
    import select
    import stat
    import time
    import warnings
    from importlib.machinery import SourceFileLoader
    from types import CodeType

    from pyprocd.process import files, spawn


def _compact_environment():
    """Put copies of the environment's keys and values side by side: every service
    compares its environment with them (_take_environment), and objects scattered
    over the heap would make it copy a page for each one it touches."""
    data = getattr(os.environb, "_data", None)
    if isinstance(data, dict):
        copies = [(bytes(bytearray(key)), bytes(bytearray(value))) for key, value in data.items()]
        data.clear()
        data.update(copies)


def serve(sock):
    """For each request: compile its script (compile_ahead), fork a helper that forks
    the service and exits at once (so the service is re-parented to the daemon, a
    subreaper), wait for it. No helper waits ahead: an idle one holds pages of its
    own. Exit when the daemon is gone, or a helper failed (the daemon then sees the
    socket close)."""
    while True:
        received = _receive(sock)
        if received is None:
            os._exit(0)  # the daemon is gone
        request, fds = received
        compile_ahead(request[2])
        helper = fork()
        if helper == 0:
            start_service(sock, request, fds)  # never returns
        for fd in fds:
            os.close(fd)  # the service has its own copies
        if os.waitpid(helper, 0)[1] != 0:
            os._exit(0)


def start_service(sock, request, fds):
    """In a helper: fork the service, report its pid, exit. Never returns."""
    try:
        helper = os.getpid()  # not the service's getppid(): we may be gone by then
        exited = _exit_watch()  # made here: it is this helper the service waits for
        service = fork()
        if service == 0:
            sock.close()
            run_service(request, fds, helper, exited)  # never returns
        sock.send(b"P" + struct.pack("<ii", request[0], service))
        os._exit(0)
    finally:
        os._exit(1)  # whatever went wrong: never back into the zygote's loop


# Scripts compiled here, for the services forked after: filename -> (file identity, code).
# The compiler's work in each service would be pages of its own; a service uses the code
# only when the file it opened itself, as its own user, is that file, unchanged.
SCRIPTS = {}
SCRIPTS_KEPT = 16
SCRIPT_SIZE_LIMIT = 256 << 10  # bigger ones are compiled by their service (the zygote waits for none)


def compile_ahead(run):
    """In the zygote, before forking for a request: compile its script, once per file
    identity. Whatever is unusual (not a regular file, unreadable, too big, not valid
    Python) is left to the service, which then does what a cold start does."""
    kind, target = run
    if kind != "path" or target.endswith(".pyc"):
        return
    filename = _script_filename(target)
    try:
        fd = files.open_regular(filename)
    except OSError:
        return
    try:
        identity = _file_identity(fd)
        known = SCRIPTS.get(filename)
        if (known is not None and known[0] == identity) or identity[2] > SCRIPT_SIZE_LIMIT:
            return
        source = _read_all(fd)
        with warnings.catch_warnings():
            # A warning the compiler gives belongs on the service's stderr: such a
            # script is compiled by its service, as in a cold start.
            warnings.simplefilter("error")
            code = compile(source, filename, "exec", dont_inherit=True)
    except Exception:  # noqa: BLE001 - OSError, SyntaxError, ValueError...: the service's
        return
    finally:
        os.close(fd)
    SCRIPTS.pop(filename, None)
    SCRIPTS[filename] = (identity, code)
    while len(SCRIPTS) > SCRIPTS_KEPT:
        del SCRIPTS[next(iter(SCRIPTS))]


def _file_identity(fd):
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _script_filename(path):
    """The script's name as CPython spells it (__file__, tracebacks)."""
    return path if path.startswith("/") else os.getcwd() + "/" + path


fork = os.fork  # main() puts bare_fork's in its place


class AtForkHooks:
    """The hooks modules register with os.register_at_fork from now on (os.fork runs
    them; a fork straight through libc must run them itself)."""

    def __init__(self):
        self.before_us = set(sys.modules)  # their hooks, if any, were registered unseen
        self.registered = []
        register = os.register_at_fork

        def recording(**hooks):
            register(**hooks)
            self.registered.append(hooks)

        os.register_at_fork = recording

    def needed(self):
        """The registered hooks but those that only re-make locks, which nobody can hold
        in a single-threaded process (threading's, logging's): touching every thread
        and handler object, they were most of what a service copied of the zygote."""
        needless = set()
        for module, name in (("threading", "_after_fork"),
                             ("logging", "_after_at_fork_child_reinit_locks")):
            hook = getattr(sys.modules.get(module), name, None)
            if hook is not None:
                needless.add(hook)
        return [h for h in self.registered if h.get("after_in_child") not in needless]


def bare_fork(hooks):
    """A fork for the zygote and its helpers: libc's fork() plus only the after-fork
    work a single-threaded process needs, so a service does not copy the pages that
    CPython's at-fork hooks would write. os.fork where that cannot be had (no cffi,
    no libc fork, a module registered hooks before we could see them)."""
    try:
        from pyprocd.process.libc import ffi_and_lib

        ffi, lib = ffi_and_lib()
        libc_fork = lib.fork  # resolved now, not in a child
    except (ImportError, OSError, AttributeError):
        return os.fork
    if hooks.before_us & {"logging", "concurrent.futures.thread", "multiprocessing"}:
        return os.fork  # imported by a site hook: at-fork hooks we cannot replay
    needed = hooks.needed()
    before = [h["before"] for h in reversed(needed) if "before" in h]
    in_parent = [h["after_in_parent"] for h in needed if "after_in_parent" in h]
    in_child = [h["after_in_child"] for h in needed if "after_in_child" in h]
    if "random" in hooks.before_us:
        in_child.append(sys.modules["random"].seed)  # each service its own random stream
    import _thread

    def fork():
        if _thread._count():  # (threads a C extension starts on its own are not counted)
            return os.fork()  # threads exist: their locks need CPython's at-fork work
        for hook in before:
            hook()
        pid = libc_fork()  # no Python signal handler here to trip (_fresh_interpreter_signals)
        if pid < 0:
            raise OSError(ffi.errno, os.strerror(ffi.errno))
        for hook in (in_child if pid == 0 else in_parent):
            hook()
        if pid == 0:
            _new_native_thread_id()
        return pid

    return fork


def _new_native_thread_id():
    """threading's record of the main thread's kernel id (what its skipped hook did)."""
    threading = sys.modules.get("threading")
    if threading is not None and hasattr(threading.main_thread(), "_native_id"):
        threading.main_thread()._native_id = os.getpid()  # a process's only thread's id


def _receive(sock, max_fds=8):
    """(request, fds) from the daemon; None at EOF or on a socket error."""
    import _socket

    try:
        msg, ancdata, _, _ = sock.recvmsg(1 << 20, _socket.CMSG_SPACE(max_fds * 4))
    except OSError:
        return None
    if not msg:
        return None
    fds = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            # not struct.unpack: its cache of formats is a table shared with the zygote
            fds += memoryview(data)[:len(data) // 4 * 4].cast("i").tolist()
    return marshal.loads(msg), fds


def _exit_watch():
    """A descriptor of this process that becomes readable once it has exited (and its
    children are re-parented), or None where pidfds do not exist."""
    try:
        return os.pidfd_open(os.getpid())
    except (AttributeError, OSError):
        return None


def fill_allocator_holes():
    """Fill the free blocks of CPython's small-object allocator's partly used pools.

    A service's new objects would otherwise land in those blocks, spread over the
    heap it shares with this zygote, and every one would make it copy a page; with
    them taken, its objects go to fresh pools of its own, packed together. The
    counts come from the allocator's statistics; an interpreter without them (another
    allocator, another format) is left as it is."""
    header = sys.getsizeof(b"")  # a bytes object of n bytes asks the allocator for header + n
    smallest = sys.getsizeof(0.0)
    for _ in range(3):  # what the filling itself allocates may leave a few more
        free = _free_blocks_by_size()
        wanted = {size: n for size, n in free.items() if n and size >= smallest}
        if not wanted:
            return
        for size, n in wanted.items():
            if size > header:
                _FILLERS.extend(bytes(size - header) for _ in range(n))
            else:
                _FILLERS.extend(float(i) + 0.5 for i in range(n))


_FILLERS = []


def _free_blocks_by_size():
    """{block size: free blocks in partly used pools}, from sys._debugmallocstats()
    (written to the C stderr: caught in a memory file); {} if unavailable."""
    try:
        caught = os.memfd_create("mallocstats")
    except (AttributeError, OSError):
        return {}
    saved = os.dup(2)
    try:
        os.dup2(caught, 2)
        sys._debugmallocstats()
    except (AttributeError, OSError):
        return {}
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    try:
        os.lseek(caught, 0, os.SEEK_SET)
        text = b""
        while chunk := os.read(caught, 65536):
            text += chunk
    finally:
        os.close(caught)
    free = {}
    for line in text.decode(errors="replace").splitlines():
        fields = line.split()  # class, size, num pools, blocks in use, avail blocks
        if len(fields) == 5 and all(f.isdigit() for f in fields):
            free[int(fields[1])] = int(fields[4])
    return free


def run_service(request, fds, helper, helper_exited):
    """In the service process: the cold child's set-up, then the script. Never returns.

    helper: our parent until it exits; then the daemon, a subreaper, is."""
    _seq, fields, run, fds_present = request
    out_w, errlog_w, err_w, go_r = _unpack_optional(fds_present, fds)
    plan = spawn.ChildPlan.from_request(fields, reset_signals=())
    progress = ["zygote"]
    try:
        if os.read(go_r, 1) != spawn.GO:
            # The daemon gave this start up (or is gone): nobody would supervise us.
            os._exit(spawn.EXEC_FAILED)
        os.close(go_r)
        _until_reparented(helper, helper_exited)
        spawn.setup_child(plan, out_w, errlog_w, progress)
    except BaseException as e:  # noqa: BLE001 - report like a failed exec, then exit 127
        spawn.report_child_failure(err_w, progress[0], e)
        os._exit(spawn.EXEC_FAILED)
    os.close(err_w)  # what an exec would do: "started"
    os._exit(run_as_fresh_interpreter(run, plan))


def _until_reparented(helper, helper_exited, limit=5.0):
    """A cold child's parent is the daemon from the start: run only once ours is too
    (the helper exits right after it reported us, so this is a wait of moments):
    until the helper's pidfd says it exited, or else by polling our parent."""
    if helper_exited is not None:
        select.select([helper_exited], [], [], limit)
        os.close(helper_exited)
    deadline = time.monotonic() + limit
    while os.getppid() == helper and time.monotonic() < deadline:
        time.sleep(0.0005)


def _unpack_optional(fds_present, fds):
    """fds holds only the descriptors that exist; fds_present says which."""
    it = iter(fds)
    return tuple(next(it) if present else None for present in fds_present)


def run_as_fresh_interpreter(run, plan):
    """Run the script or module as `python3 script args` would; the exit status."""
    gc.enable()  # off in the zygote, on in every fresh interpreter (the frozen heap stays out)
    kind, target = run
    _take_environment(plan.env)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the rest is as the zygote's
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    args = [a.decode(encoding, errors) for a in plan.argv]  # os.fsdecode's work
    for stream in (sys.stdout, sys.stderr):
        tty = os.isatty(stream.fileno())
        if stream.line_buffering != tty:
            stream.reconfigure(line_buffering=tty)
    main = None
    try:
        if kind == "module":
            import runpy

            sys.argv = [target, *args[3:]]
            sys.path[0:0] = [os.getcwd()]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = args[1:]
            sys.path[0:0] = [os.path.dirname(os.path.abspath(target))]
            main, source = _fresh_main(target)
            if main is not None:
                script = source if isinstance(source, CodeType) else compile(
                    source, main.__file__, "exec", dont_inherit=True)
                exec(script, main.__dict__)  # noqa: S102 - running it is the point
        code = 0
    except _CannotOpen as e:
        print(f"{args[0]}: can't open file {e.filename!r}: [Errno {e.errno}] {e.strerror}",
              file=sys.stderr)
        code = 2
    except SystemExit as e:
        # CPython exits from here: the script's __file__ stays for the atexit handlers
        main = None
        code = _exit_code(e.code)
    except KeyboardInterrupt as e:
        _print_script_traceback(e)
        _forget_file(main)
        _flush_and_run_atexit(atexit, sys)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as CPython does: die of the signal
        code = 130
    except BaseException as e:  # noqa: BLE001 - an uncaught exception: traceback, exit 1
        code = _print_script_traceback(e)
    _forget_file(main)
    _flush_and_run_atexit(atexit, sys)
    return code


class _CannotOpen(OSError):
    """The script cannot be read: CPython says so in one line and exits 2."""


def _take_environment(env):
    """Make the process environment `env`, in exec's order, as exec would. Only what
    differs goes through putenv/unsetenv (each a C-library allocation on a page shared
    with the zygote); os.environ's table, shared with os.environb, is refilled in C,
    not through its Python methods (their code and constants are pages too)."""
    data = getattr(os.environb, "_data", None)
    if not isinstance(data, dict):  # another os module: through its mapping
        for key in [key for key in os.environb if key not in env]:
            del os.environb[key]
        for key, value in env.items():
            os.environb[key] = value
        return
    for key in data.keys() - env.keys():
        os.unsetenv(key)
    for key, value in env.items():
        if data.get(key) != value:
            os.putenv(key, value)
    data.clear()
    data.update(env)


def _fresh_main(path):
    """(the `__main__` module `python3 path` runs its script in, the script's source
    or its code compiled by the zygote); (None, None) when runpy ran it (a directory,
    an archive, compiled code).

    Done here rather than by runpy.run_path, which first asks every import hook
    whether the path is an archive: work (and pages written) a cold start skips."""
    try:
        runs_elsewhere = not stat.S_ISREG(os.stat(path).st_mode) or path.endswith(".pyc")
    except OSError:
        runs_elsewhere = False  # reported below, as CPython does
    if runs_elsewhere:
        import runpy  # a directory, an archive or compiled code: runpy knows those

        runpy.run_path(path, run_name="__main__")
        return None, None
    filename = _script_filename(path)
    try:
        fd = os.open(filename, os.O_RDONLY | os.O_CLOEXEC)  # as this service's user
    except OSError as e:
        raise _CannotOpen(e.errno, e.strerror, filename) from None
    try:
        known = SCRIPTS.get(filename)
        if known is not None and known[0] == _file_identity(fd):
            source = known[1]  # compiled by the zygote from this very file
        else:
            source = _read_all(fd)
    except OSError as e:
        raise _CannotOpen(e.errno, e.strerror, filename) from None
    finally:
        os.close(fd)
    main = type(sys)("__main__")
    main.__loader__ = SourceFileLoader("__main__", filename)
    main.__annotations__ = {}
    main.__builtins__ = builtins
    main.__file__ = filename
    main.__cached__ = None
    sys.modules["__main__"] = main
    return main, source


def _read_all(fd):
    """The file's bytes, read as CPython reads a script: no buffered file object."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _forget_file(main):
    """CPython forgets the script's name once it ran or failed (before atexit)."""
    if main:
        main.__dict__.pop("__file__", None)
        main.__dict__.pop("__cached__", None)


def _print_script_traceback(error):
    """Print an uncaught exception as CPython does, through sys.excepthook, with the
    traceback from the script's frame on (without ours); the exit status."""
    ours = (os.path.abspath(__file__),)
    runpy = sys.modules.get("runpy")
    if runpy is not None:
        ours += (runpy.__file__,)
    tb = error.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename in ours
                              or tb.tb_frame.f_code.co_filename.startswith("<frozen runpy")):
        tb = tb.tb_next
    error = error.with_traceback(tb)  # the default hook prints the exception's own
    hook = getattr(sys, "excepthook", None)
    if hook is None:
        print("sys.excepthook is missing", file=sys.stderr)
        sys.__excepthook__(type(error), error, tb)
        return 1
    try:
        hook(type(error), error, tb)
    except SystemExit as e:
        return _exit_code(e.code)
    except BaseException as hook_error:  # noqa: BLE001 - CPython shows both, exits 1
        print("Error in sys.excepthook:", file=sys.stderr)
        hook_error.__context__ = None  # CPython called the hook with no exception pending
        hook_tb = hook_error.__traceback__.tb_next  # from the hook's own frame on
        sys.__excepthook__(type(hook_error), hook_error.with_traceback(hook_tb), hook_tb)
        print("\nOriginal exception was:", file=sys.stderr)
        sys.__excepthook__(type(error), error, tb)
    return 1


def _exit_code(value):
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _flush_and_run_atexit(atexit, sys):
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    main(sys.argv[1:])
