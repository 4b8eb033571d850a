"""`pyprocd trace`: record every syscall a program and its descendants make and write
the seccomp whitelist, as procd's utrace does (spec/trace.md).

A program of its own, never imported by the daemon: a tracer's waitpid sees ptrace
stops that the daemon's reaper must never see. The daemon runs an instance with the
`trace` key as `python3 -m pyprocd.trace -t TERM_TIMEOUT -- COMMAND...`.

Unlike utrace, which starts recording at `main` (through a preload library), this
tracer records from the `execve` on: pyprocd loads a service's seccomp filter before
exec, so a policy recorded here holds the syscalls of exec and of the dynamic loader
and is complete for pyprocd by itself. It also follows the whole process tree
(threads, fork, vfork, clone, exec) until the last traced process is gone.

    tracer.py   the ptrace loop (cffi shim: PTRACE_SEIZE, PTRACE_GET_SYSCALL_INFO)
    policy.py   counts -> utrace's JSON policy, written atomically
    cli.py      options, output path, exit status
"""
