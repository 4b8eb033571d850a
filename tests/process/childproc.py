"""A tiny fork/exec for testing HardenPlan on its own, in the order spawn.py follows."""

import os
import select
import signal
import time


class Result:
    def __init__(self, status, stdout, error):
        self.status = status
        self.stdout = stdout
        self.error = error

    @property
    def exitcode(self):
        return os.waitstatus_to_exitcode(self.status)

    def proc_status(self):
        """The child's printed /proc/self/status lines ("Key:\tvalue") and its own
        "key=value" lines, as one dict."""
        out = {}
        for line in self.stdout.decode().splitlines():
            for separator in (":", "="):
                key, sep, value = line.partition(separator)
                if sep and key.isidentifier():
                    out[key.strip()] = value.strip()
                    break
        return out


def run_hardened(argv, plan, uid=0, gid=0, timeout=60):
    """fork; in the child: before_setuid, setgid/setuid, after_setuid, apply_in_child,
    exec argv. Returns Result(wait status, stdout bytes, child's setup error or None)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.dup2(out_w, 1)
            if plan is not None:
                plan.before_setuid()
            if gid:
                os.setgroups([gid])
                os.setgid(gid)
            if uid:
                os.setuid(uid)
            if plan is not None:
                plan.after_setuid()
                plan.apply_in_child()
            os.execv(argv[0], argv)
        except BaseException as e:  # noqa: BLE001
            os.write(err_w, f"{type(e).__name__}: {e}".encode())
        os._exit(127)
    os.close(out_w)
    os.close(err_w)
    stdout, error = _read_all(out_r, err_r, timeout, pid)
    _, status = os.waitpid(pid, 0)
    return Result(status, stdout, error.decode() or None)


def _read_all(out_r, err_r, timeout, pid):
    chunks = {out_r: [], err_r: []}
    open_fds = [out_r, err_r]
    deadline = time.monotonic() + timeout
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select(open_fds, [], [], left)
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.remove(fd)
    for fd in (out_r, err_r):
        os.close(fd)
    return b"".join(chunks[out_r]), b"".join(chunks[err_r])
