"""What the core needs from the system: the host interface.

The core (registry, instance state machine, triggers, snapshot) is pure
logic over a clock (the loop: time(), call_later(), call_soon()) and one
host object. It never forks, opens, stats or signals anything itself. The
process layer implements the host (pyprocd.process.host.Host); tests use
a fake (tests/core/fakes.py) and run the state machine on a fake clock.

A host provides:

Processes
  spawn(spec, on_exit, on_forked=None) -> proc
      Start an instance. proc.pid is its pid. on_exit(status, exec_error)
      once it is gone: status is the raw wait status (None when it cannot be
      known), exec_error the reason the program never ran (None if it did).
      on_forked(proc) runs before the program may run (crash survival
      records it there). Raises SpawnError, and nothing else, when the
      instance cannot be started: that is an instance error with a reason.
  kill(pid, sig, group=False) -> 0 or an errno value
      group=True: its process group. Never signals pid <= 0.
  run_script(argv, on_done) -> pid
      A helper command (`init.d/<name> running`) with /dev/null stdio, our
      start-up environment and default signal dispositions; on_done(status).
      Raises OSError.
  can_follow_pidfiles -> bool
      Whether orphans come back to us (a child subreaper): only then is a
      service that daemonises followed through its pidfile.
  follow_pidfile(path, proc, found, is_taken)
      The main process exited 0: found(new_pid or None) once, with the
      successor the pidfile names if it descends from proc and is not
      is_taken(pid) by another instance.
  adopt_child(pid, on_exit) -> proc
      Supervise such a successor.

Files
  write_pidfile(path, pid), remove_pidfile(path)
      Raise OSError (the core logs it).
  script_executable(path) -> bool
      A regular file we may execute.

Lookups at submission (the parse code's `facts`; same names)
  lookup_user(name) -> (uid, gid) | None, lookup_group(name) -> gid | None,
  ifindex(name) -> int (0: none), file_md5(path) -> hex str,
  have_ujail() -> bool

This module is the interface's documentation only: nothing imports it at
run time (the daemon's module count is budgeted).
"""
