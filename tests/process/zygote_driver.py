"""Run one script through a real zygote, without the daemon, and report what it did.

    python3 zygote_driver.py SCRIPT ARG...

Becomes a child subreaper (as the daemon is), starts `python3 -m
pyprocd.process.zygote json`, asks it for one start of `python3 SCRIPT ARG...`
with the environment of this process in reverse order and its current directory, gives the go-ahead,
collects stdout and stderr until both close, reaps the service, stops the zygote,
and prints one JSON line: {"pid", "stdout", "stderr", "status"} (status: the
raw wait status), so a test can put it beside a cold `python3 SCRIPT ARG...`.

ZYGOTE_PRELOAD (comma-separated, default json) names the modules the zygote
preloads, found also on ZYGOTE_PYTHONPATH; ZYGOTE_STARTS (default 1) starts the
script that many times, one after the other, from the same zygote (one line each);
ZYGOTE_UID and ZYGOTE_GID give the service another identity (as root);
ZYGOTE_REPLACE_BEFORE_GO names a file moved over the script before the go-ahead.
"""

import json
import os
import socket
import sys
from types import SimpleNamespace

from pyprocd.process import shim, zygote


def start_zygote():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(os.environb)
    env[b"PYPROCD_ZYGOTE_PATH"] = zygote.PACKAGE_PARENT.encode()
    env[b"IN_THE_ZYGOTE_ONLY"] = b"1"  # a service's environment is the daemon's plan
    extra = os.environb.get(b"ZYGOTE_PYTHONPATH")
    env[b"PYTHONPATH"] = zygote.PACKAGE_PARENT.encode() + (b":" + extra if extra else b"")
    preload = os.environ.get("ZYGOTE_PRELOAD", "json").split(",")
    pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "pyprocd.process.zygote",
                                          *preload],
                         env, file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(),
                                             zygote.ZYGOTE_FD)])
    theirs.close()
    if ours.recv(16) != zygote.READY:
        raise SystemExit("the zygote did not start")
    return pid, ours


def plan_for(argv):
    # the service's environment: ours in reverse order (not the zygote's order)
    env = dict(reversed(list(os.environb.items())))
    uid = int(os.environ.get("ZYGOTE_UID", os.getuid()))
    gid = int(os.environ.get("ZYGOTE_GID", os.getgid()))
    return SimpleNamespace(argv=[os.fsencode(a) for a in argv], env=env, nice=0,
                           limits=[], user=None, uid=uid, gid=gid, groups_gid=gid,
                           new_session=False, hardening_inputs=(False, None, None))


def read_all(fd):
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.close(fd)
    return data.decode(errors="replace")


def main(script, *args):
    shim.set_child_subreaper(True)
    zygote_pid, sock = start_zygote()
    for seq in range(1, int(os.environ.get("ZYGOTE_STARTS", "1")) + 1):
        print(json.dumps(start_one(sock, seq, script, args)), flush=True)
    sock.close()  # the zygote exits when its socket closes
    os.waitpid(zygote_pid, 0)


def start_one(sock, seq, script, args):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    fail_r, fail_w = os.pipe()
    go_r, go_w = os.pipe()
    request = (seq, *zygote.request_fields(plan_for([sys.executable, script, *args]),
                                           ("path", script), [True, True, True, True]))
    sock.sendmsg([zygote.marshal.dumps(request)],
                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                   zygote.struct.pack("4i", out_w, err_w, fail_w, go_r))])
    reply = sock.recv(64)
    pid = zygote.struct.unpack("<ii", reply[1:])[1]
    for fd in (out_w, err_w, fail_w, go_r):
        os.close(fd)
    replacement = os.environ.get("ZYGOTE_REPLACE_BEFORE_GO")
    if replacement:  # the script changes after the zygote took the request
        os.replace(replacement, script)
    os.write(go_w, b"g")
    os.close(go_w)
    stdout, stderr = read_all(out_r), read_all(err_r)
    _, status = os.waitpid(pid, 0)
    read_all(fail_r)
    return {"pid": pid, "stdout": stdout, "stderr": stderr, "status": status}


if __name__ == "__main__":
    main(*sys.argv[1:])
