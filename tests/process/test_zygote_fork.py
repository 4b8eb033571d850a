"""What the zygote does to keep a service's own pages few must not show: it forks
through libc, without CPython's at-fork work, yet a service gets what that work
gave it; it compiles scripts ahead, yet a service runs the file as it finds it,
as its own user, and sees the compiler's warnings.

Each case starts a script from a real zygote (tests/process/zygote_driver.py,
no daemon), twice from the same zygote where siblings are compared.
"""

import json
import os
import pwd
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def drive(script, tmp_path, **settings):
    """The driver's result lines for `script`, with its ZYGOTE_* settings."""
    env = dict(os.environ, **settings)
    done = subprocess.run([sys.executable, os.path.join(HERE, "zygote_driver.py"), str(script)],
                          check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def warm_starts(script_text, tmp_path, preload, starts=1):
    """[{"pid", "stdout", "stderr", "status"}] of `starts` services from one zygote."""
    script = tmp_path / "service.py"
    script.write_text(script_text)
    results = drive(script, tmp_path, ZYGOTE_PRELOAD=",".join(preload),
                    ZYGOTE_STARTS=str(starts), ZYGOTE_PYTHONPATH=str(tmp_path))
    assert len(results) == starts
    for result in results:
        assert result["status"] == 0, result["stderr"]
    return results


def test_sibling_services_draw_different_random_numbers(tmp_path):
    # The zygote imported random (and seeded it once); each service is reseeded.
    first, second = warm_starts("import random\nprint(random.getrandbits(128))\n", tmp_path,
                                ["random", "json"], starts=2)
    assert first["stdout"] != second["stdout"]


def test_threading_knows_the_services_own_thread_id(tmp_path):
    script = ("import os, threading\n"
              "print(threading.main_thread().native_id, threading.get_native_id(), os.getpid())\n")
    (result,) = warm_starts(script, tmp_path, ["threading", "json"])
    ids = result["stdout"].split()
    assert ids == [str(result["pid"])] * 3


HOOKED = """
import os
seen = []
os.register_at_fork(before=lambda: seen.append("before"),
                    after_in_parent=lambda: seen.append("parent"),
                    after_in_child=lambda: seen.append(("child", os.getpid())))
"""


THREADED = """
import threading, time
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
"""


@pytest.mark.parametrize("module, script, expected", [
    # the hooks it registers with os.register_at_fork run in each service
    (HOOKED, "import os, m\nprint(m.seen[-1] == ('child', os.getpid()))\n", "True\n"),
    # it leaves a thread running: the fork is then CPython's own
    (THREADED, "import threading\nprint(threading.active_count())\n", "1\n"),
], ids=["its-at-fork-hooks-run", "it-left-a-thread-running"])
def test_a_preloaded_module(tmp_path, module, script, expected):
    (tmp_path / "m.py").write_text(module)
    first, second = warm_starts(script, tmp_path, ["m"], starts=2)
    assert first["stdout"] == second["stdout"] == expected


ENV_OF_A_CHILD = """
import os, subprocess
inherited = subprocess.run(["env", "-0"], capture_output=True, check=True).stdout
print(sorted(inherited.split(b"\\0")[:-1]) == sorted(k + b"=" + v for k, v in os.environb.items()))
print(os.environ.get("PYTHONPATH"), os.environ.get("IN_THE_ZYGOTE_ONLY"))
"""


def test_programs_a_service_runs_inherit_its_environment(tmp_path):
    # The zygote's own variables are gone, and its PYTHONPATH is the service's again,
    # at the C level too, where exec finds them.
    (result,) = warm_starts(ENV_OF_A_CHILD, tmp_path, ["json"])
    assert result["stdout"].splitlines() == ["True", f"{os.environ.get('PYTHONPATH')} None"]


# Prints its mark, then rewrites its own file with the next mark (another size too).
REWRITES_ITSELF = """
import sys
mark = "first"
print(mark)
with open(__file__) as f:
    text = f.read()
with open(__file__, "w") as f:
    f.write(text.replace('mark = "first"', 'mark = "second, longer"'))
"""


def test_a_script_changed_since_the_last_start_runs_as_changed(tmp_path):
    # The zygote compiles each script once per version of the file, ahead of the fork.
    first, second = warm_starts(REWRITES_ITSELF, tmp_path, ["json"], starts=2)
    assert (first["stdout"], second["stdout"]) == ("first\n", "second, longer\n")


def test_a_script_changed_after_the_request_runs_as_changed(tmp_path):
    # The zygote compiled the file as it was; the service opens it and finds another.
    newer = tmp_path / "newer.py"
    newer.write_text("print('the newer one')\n")
    script = tmp_path / "service.py"
    script.write_text("print('the older one')\n")
    (result,) = drive(script, tmp_path, ZYGOTE_REPLACE_BEFORE_GO=str(newer))
    assert result["stdout"] == "the newer one\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs the service as nobody")
def test_a_script_its_user_cannot_read_fails_as_in_a_cold_start(tmp_path):
    # The zygote (root) can read and compile it; the service, as nobody, must not run it.
    nobody = pwd.getpwnam("nobody")
    tmp_path.chmod(0o755)
    script = tmp_path / "service.py"
    script.write_text("print('ran')\n")
    script.chmod(0o600)
    (result,) = drive(script, tmp_path, ZYGOTE_UID=str(nobody.pw_uid),
                      ZYGOTE_GID=str(nobody.pw_gid))
    assert result["stdout"] == ""
    assert "can't open file" in result["stderr"] and "Permission denied" in result["stderr"]
    assert result["status"] == 2 << 8


def test_what_the_compiler_warns_reaches_the_services_stderr(tmp_path):
    script = "x = 1\nprint(x is 1)\n"  # SyntaxWarning at compile time
    first, second = warm_starts(script, tmp_path, ["json"], starts=2)
    for result in (first, second):
        assert result["stdout"] == "True\n"
        assert 'SyntaxWarning: "is" with a literal' in result["stderr"]
