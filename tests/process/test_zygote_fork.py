"""The zygote forks through libc, without CPython's at-fork work: what a service
must still get from that work, it gets.

Each case starts a script from a real zygote (tests/process/zygote_driver.py,
no daemon), twice from the same zygote where siblings are compared.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def warm_starts(script_text, tmp_path, preload, starts=1):
    """[{"pid", "stdout", "stderr", "status"}] of `starts` services from one zygote."""
    script = tmp_path / "service.py"
    script.write_text(script_text)
    env = dict(os.environ, ZYGOTE_PRELOAD=",".join(preload), ZYGOTE_STARTS=str(starts),
               ZYGOTE_PYTHONPATH=str(tmp_path))
    done = subprocess.run([sys.executable, os.path.join(HERE, "zygote_driver.py"), str(script)],
                          check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
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


def test_at_fork_hooks_of_preloaded_modules_run_in_the_service(tmp_path):
    (tmp_path / "hooked.py").write_text(HOOKED)
    script = "import os, hooked\nprint(hooked.seen[-1] == ('child', os.getpid()))\n"
    first, second = warm_starts(script, tmp_path, ["hooked"], starts=2)
    assert first["stdout"] == second["stdout"] == "True\n"


THREADED = """
import threading, time
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
"""


def test_a_zygote_with_a_thread_still_starts_services(tmp_path):
    # A preloaded module that leaves a thread running: the fork is CPython's own.
    (tmp_path / "threaded.py").write_text(THREADED)
    script = "import threading\nprint(threading.active_count())\n"
    first, second = warm_starts(script, tmp_path, ["threaded"], starts=2)
    assert first["stdout"] == second["stdout"] == "1\n"
