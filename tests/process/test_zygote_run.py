"""A script run by a zygote's child against the same script run by a cold `python3`.

Each case runs a script both ways (tests/process/zygote_driver.py drives a real
zygote without the daemon) and compares what a service and its supervisor see:
stdout, stderr and the wait status.
"""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

MAIN_MODULE = r"""
import atexit, gc, os, sys
print(list(os.environ.items()))  # the variables, in exec's order
main = sys.modules["__main__"]
print([(k, type(v).__name__) for k, v in vars(main).items()])
print(__file__, __loader__.name, __loader__.path, __spec__, __package__, __cached__)
print(sys.argv, sys.path[0], gc.isenabled(), __name__)
def at_exit():
    print("at exit:", "__file__" in vars(main), "__cached__" in vars(main),
          sys.modules["__main__"] is main)
atexit.register(at_exit)
"""

EXCEPTHOOK = r"""
import sys
def hook(kind, value, tb):
    print("hooked", kind.__name__, value, tb.tb_frame.f_code.co_filename == __file__)
sys.excepthook = hook
def fail():
    raise ValueError("inner")
fail()
"""

RAISES = r"""
def fail():
    try:
        {}["key"]
    except KeyError:
        raise RuntimeError("outer")
fail()
"""


def cold(script, *args, cwd):
    env = dict(reversed(list(os.environ.items())))  # as zygote_driver.py asks for warm ones
    done = subprocess.run([sys.executable, script, *args], check=False, cwd=cwd, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    status = done.returncode << 8 if done.returncode >= 0 else -done.returncode
    return {"stdout": done.stdout, "stderr": done.stderr, "status": status}


def warm(script, *args, cwd):
    done = subprocess.run([sys.executable, os.path.join(HERE, "zygote_driver.py"), script, *args],
                          check=False, cwd=cwd, env=dict(os.environ), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    del result["pid"]
    return result


@pytest.fixture
def folder(tmp_path):
    def write(name, text):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    write.path = str(tmp_path)
    return write


EXITS = MAIN_MODULE + "raise SystemExit(3)\n"
HOOK_FAILS = "import sys\nsys.excepthook = lambda *a: 1 / 0\nraise KeyError('k')\n"


@pytest.mark.parametrize("text", [MAIN_MODULE, EXITS, EXCEPTHOOK, HOOK_FAILS, RAISES, "x = (\n"],
                         ids=["main-module", "exits", "excepthook", "hook-fails",
                              "chained-traceback", "syntax-error"])
def test_a_script_runs_as_in_a_cold_interpreter(folder, text):
    script = folder("service.py", text)
    assert warm(script, "a", "b", cwd=folder.path) == cold(script, "a", "b", cwd=folder.path)


def test_a_relative_script_path_names_the_file_as_python_does(folder):
    folder("service.py", "import sys\nprint(__file__, sys.argv)\nraise SystemExit('bye')\n")
    assert warm("service.py", cwd=folder.path) == cold("service.py", cwd=folder.path)


def test_a_missing_script_fails_as_in_a_cold_interpreter(folder):
    missing = os.path.join(folder.path, "missing.py")
    result = warm(missing, cwd=folder.path)
    expected = cold(missing, cwd=folder.path)
    # the message names the interpreter as it was invoked: here both ran sys.executable
    assert result == expected and expected["status"] == 2 << 8
