"""The host the core runs on: the process layer's side of core/host.py.

`Host` is the Spawner (fork/exec with procd's child setup, scripts, kill,
pidfiles, daemonising services) with one promise added at the boundary:
`spawn()` raises SpawnError and nothing else. Whatever preparing a child
can throw (a hardening file nested 100,000 deep, a policy field of the
wrong type, MemoryError) becomes an instance error with a reason, so a
`set` never stops half-way on one bad instance.
"""

from pyprocd.common import SpawnError
from pyprocd.process.spawn import Spawner


class Host(Spawner):
    def spawn(self, spec, on_exit, on_forked=None):
        try:
            return super().spawn(spec, on_exit, on_forked)
        except SpawnError:
            raise
        except Exception as e:  # noqa: BLE001 - the promise above: one error type
            raise SpawnError(f"cannot prepare the child: {type(e).__name__}: {e}") from None
