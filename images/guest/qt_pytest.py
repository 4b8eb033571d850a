"""pytest plugin for the guest: every test outcome as a @@QT console line.

Loaded with `-p qt_pytest`; passed and failed tests count like the
scenarios' own assertions, skips are printed with their reason (not counted).
"""

SCENARIO = "process-tests"


def pytest_runtest_logreport(report):
    name = f"{SCENARIO}/{report.nodeid}"
    if report.when == "call" and report.passed:
        print(f"\n@@QT PASS {name}", flush=True)
    elif report.failed:
        line = str(report.longrepr).strip().splitlines()[-1:] or [""]
        print(f"\n@@QT FAIL {name} ({report.when}): {line[0][:300]}", flush=True)
    elif report.skipped and report.when in ("setup", "call"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        print(f"\n@@QT SKIP {name}: {reason}", flush=True)


def pytest_collectreport(report):
    if report.failed:
        line = str(report.longrepr).strip().splitlines()[-1:] or [""]
        print(f"\n@@QT FAIL {SCENARIO}/{report.nodeid} (collect): {line[0][:300]}", flush=True)
