#!/bin/sh
# The project's own process-layer tests (shim struct layouts, prlimit,
# capabilities, seccomp with this CPU's audit arch and syscall numbers,
# the spawner), run natively on the guest's CPU and kernel with Debian's
# pytest against the pyprocd the .ipk installed. test_foreign's checks run
# with this guest's own python3 as the "foreign" interpreter.
cd /qemu
export PYPROCD_FOREIGN_PYTHON=python3
# The process layer's files; the syscall tables (pure data, the same on every
# CPU) and the daemon's pidfile tests stay on the host.
TESTS="test_layout test_shim test_apply test_seccomp_compile test_spawner_hardening test_reaping test_foreign"
# -p no:cacheprovider: nothing written beside the tests
python3 -m pytest -q -p qt_pytest -p no:cacheprovider --rootdir=/qemu \
	$(for t in $TESTS; do echo tests/process/$t.py; done)
rc=$?
# 1: some tests failed, each already reported as a FAIL line
[ $rc = 1 ] && rc=0
exit $rc
