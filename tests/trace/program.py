"""A traced program with known syscalls (standalone: imports nothing of pyprocd).

    program.py MARKS parent    a thread calls getpriority; the main thread calls uname
                               (the rare one); a forked child calls getsid and execs
                               `program.py MARKS child`, which calls times
    program.py MARKS sleep     writes its pid, then sleeps (a thread sleeps too)
    program.py MARKS stubborn  like sleep, but ignores SIGTERM
    program.py MARKS detach    forks; the parent exits at once, the child calls times
                               a little later
    program.py MARKS thread-exec  a second thread execs `program.py MARKS child`

Each step appends a line to the MARKS file, so a test sees how far it got.
"""

import os
import signal
import sys
import threading
import time

# Python's own start-up makes none of these (checked with the tracer on glibc): seeing
# them in a policy proves that thread, process and exec'd program were all followed.
THREAD_CALL, MAIN_CALL, FORKED_CALL, EXECED_CALL = "getpriority", "uname", "getsid", "times"


def mark(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


def parent(marks):
    mark(marks, "start")
    thread = threading.Thread(target=os.getpriority, args=(os.PRIO_PROCESS, 0))
    thread.start()
    thread.join()
    mark(marks, "before uname")
    os.uname()
    mark(marks, "after uname")
    pid = os.fork()
    if pid == 0:
        try:
            os.getsid(0)
            os.execv(sys.executable, [sys.executable, __file__, marks, "child"])
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    mark(marks, f"child status {status}")
    return 0 if status == 0 else 1


def child(marks):
    os.times()
    mark(marks, "child ran")
    return 0


def sleep(marks, ignore_term=False):
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    mark(marks, f"pid {os.getpid()}")
    time.sleep(600)
    return 0


def detach(marks):
    if os.fork() == 0:
        time.sleep(0.3)
        os.times()
        mark(marks, "detached child ran")
        os._exit(0)
    mark(marks, "parent exits")
    return 0


def thread_exec(marks):
    def run():
        os.execv(sys.executable, [sys.executable, __file__, marks, "child"])

    threading.Thread(target=run).start()
    time.sleep(600)   # the exec ends this thread too
    return 1


def main(argv):
    marks, mode = argv
    if mode == "parent":
        return parent(marks)
    if mode == "child":
        return child(marks)
    if mode == "detach":
        return detach(marks)
    if mode == "thread-exec":
        return thread_exec(marks)
    return sleep(marks, ignore_term=mode == "stubborn")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
