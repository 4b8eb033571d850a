"""`pyprocd trace`: what it records, where and how it writes it, what it leaves behind."""

import os
import re
import signal
import sys

import pytest

from tests.trace import program
from tests.trace.conftest import PROGRAM, policy_names, scenario, trace

pytestmark = pytest.mark.usefixtures("tracing")


def only_file(folder):
    files = [f for f in os.listdir(folder) if not f.startswith("marks")]
    assert len(files) == 1, files
    return os.path.join(folder, files[0])


def test_every_known_syscall_is_recorded_thread_fork_and_exec_included(tmp_path):
    marks = tmp_path / "marks"
    out = trace(["-d", str(tmp_path), "--", sys.executable, PROGRAM, str(marks), "parent"])
    assert out.returncode == 0, out.stderr
    assert marks.read_text().splitlines()[-2:] == ["child ran", "child status 0"]
    names = policy_names(only_file(tmp_path))
    for name in (program.MAIN_CALL, program.THREAD_CALL, program.FORKED_CALL,
                 program.EXECED_CALL, "execve", "wait4", "exit_group"):
        assert name in names, name
    assert {"clone", "clone3"} & set(names)   # the thread and the fork
    assert len(names) == len(set(names))


def test_file_name_place_and_text_are_utraces(tmp_path):
    out = trace(["-d", str(tmp_path), "--", "/bin/true"])
    assert out.returncode == 0, out.stderr
    path = only_file(tmp_path)
    assert re.fullmatch(r"true\.\d+\.json", os.path.basename(path))
    with open(path) as f:
        text = f.read()
    names = policy_names(path)
    assert text == ("{\n\t\"defaultAction\": \"SCMP_ACT_KILL_PROCESS\",\n\t\"syscalls\": [\n"
                    "\t\t{\n\t\t\t\"names\": [\n"
                    + ",\n".join(f"\t\t\t\t\"{n}\"" for n in names)
                    + "\n\t\t\t],\n\t\t\t\"action\": \"SCMP_ACT_ALLOW\"\n\t\t}\n\t]\n}\n")
    # utrace always lists these (count 1), and the program's own execve is recorded
    assert {"rt_sigaction", "rt_sigreturn", "exit_group", "exit", "execve"} <= set(names)
    assert "saving syscall trace to " + path in out.stderr


def test_f_option_and_seccomp_file_name_the_output(tmp_path):
    chosen = tmp_path / "chosen.json"
    assert trace(["-f", str(chosen), "/bin/true"]).returncode == 0
    assert "execve" in policy_names(chosen)
    from_env = tmp_path / "env.json"
    env = dict(os.environ, SECCOMP_FILE=str(from_env))
    assert trace(["--", "/bin/true"], env=env).returncode == 0
    assert "execve" in policy_names(from_env)


def test_program_exit_status_is_passed_on(tmp_path):
    out = trace(["-d", str(tmp_path), "--", "/bin/sh", "-c", "exit 7"])
    assert out.returncode == 7
    out = trace(["-d", str(tmp_path), "--", "/bin/sh", "-c", "kill -USR1 $$"])
    assert out.returncode == 128 + signal.SIGUSR1


def test_a_detached_child_is_followed_until_it_is_gone(tmp_path):
    marks = tmp_path / "marks"
    report = scenario("none", marks, ["-d", str(tmp_path), "--", sys.executable, PROGRAM,
                                      str(marks), "detach"])
    assert report["returncode"] == 0, report["stderr"]
    assert "detached child ran" in marks.read_text()
    assert program.EXECED_CALL in policy_names(only_file(tmp_path))
    assert report["alive"] == [] and report["reaped_orphans"] == 0


def test_sigkill_of_the_program_ends_the_trace_cleanly(tmp_path):
    marks = tmp_path / "marks"
    report = scenario("kill-program", marks, ["-d", str(tmp_path), "--", sys.executable,
                                              PROGRAM, str(marks), "sleep"])
    assert report["returncode"] == 128 + signal.SIGKILL
    assert "clock_nanosleep" in policy_names(only_file(tmp_path))
    assert report["alive"] == [] and report["reaped_orphans"] == 0


def test_sigkill_of_the_tracer_kills_the_tree_and_leaves_nothing(tmp_path):
    marks = tmp_path / "marks"
    report = scenario("kill-tracer", marks, ["-d", str(tmp_path), "--", sys.executable,
                                             PROGRAM, str(marks), "sleep"])
    assert report["returncode"] == -signal.SIGKILL
    assert report["alive"] == []          # EXITKILL: nothing runs on, nothing stays stopped
    assert [f for f in os.listdir(tmp_path) if f != "marks"] == []   # no policy, no temp file


def test_a_supervisors_sigterm_stops_the_program_and_writes_the_policy(tmp_path):
    marks = tmp_path / "marks"
    report = scenario("term-tracer", marks, ["-d", str(tmp_path), "--", sys.executable,
                                             PROGRAM, str(marks), "sleep"])
    assert report["returncode"] == 128 + signal.SIGTERM
    assert "clock_nanosleep" in policy_names(only_file(tmp_path))
    assert report["alive"] == [] and report["reaped_orphans"] == 0


def test_a_program_ignoring_sigterm_is_killed_in_time_with_a_clear_error(tmp_path):
    marks = tmp_path / "marks"
    report = scenario("term-tracer", marks, ["-d", str(tmp_path), "-t", "2", "--",
                                             sys.executable, PROGRAM, str(marks), "stubborn"])
    assert report["returncode"] == 128 + signal.SIGKILL
    assert "did not exit within 1 s of the stop signal" in report["stderr"]
    assert "clock_nanosleep" in policy_names(only_file(tmp_path))
    assert report["alive"] == [] and report["reaped_orphans"] == 0


def test_a_command_that_does_not_exist(tmp_path):
    out = trace(["-d", str(tmp_path), "--", str(tmp_path / "nothing-here")])
    assert out.returncode == 127
    assert f"cannot execute {tmp_path}/nothing-here: No such file or directory" in out.stderr
    out = trace(["-d", str(tmp_path), "--", "no-such-command-for-pyprocd"])
    assert out.returncode == 127
    assert "no-such-command-for-pyprocd: command not found" in out.stderr
    assert os.listdir(tmp_path) == []


def test_an_unwritable_output_directory_is_refused_before_the_program_runs(tmp_path):
    marks = tmp_path / "marks"
    missing = tmp_path / "missing" / "p.json"
    out = trace(["-f", str(missing), "--", sys.executable, PROGRAM, str(marks), "child"])
    assert out.returncode == 1
    assert f"cannot write the policy into {missing.parent}: No such file or directory" in out.stderr
    assert not marks.exists()
    (tmp_path / "plainfile").write_text("")
    out = trace(["-d", str(tmp_path / "plainfile"), "--", "/bin/true"])
    assert out.returncode == 1 and "Not a directory" in out.stderr
    assert sorted(os.listdir(tmp_path)) == ["plainfile"]


def test_usage_errors(tmp_path):
    assert trace([]).returncode == 255
    assert trace(["-f"]).returncode == 2
    out = trace(["-x", "/bin/true"])
    assert out.returncode == 2 and "unknown option -x" in out.stderr


def test_options_stop_at_the_first_non_option(tmp_path):
    """musl getopt, as on OpenWrt: `-c` belongs to the shell, not to the tracer."""
    out = trace(["-d", str(tmp_path), "/bin/sh", "-c", "exit 3"])
    assert out.returncode == 3


@pytest.mark.parametrize("seccomp_stops", [True, False])
def test_both_stop_modes_record_the_same_calls(tmp_path, seccomp_stops):
    """One seccomp stop per call (the default), or PTRACE_SYSCALL's entry and exit
    stops where no filter can be loaded: the same names either way."""
    from pyprocd.process.spawn import original_environment
    from pyprocd.trace import policy
    from pyprocd.trace.tracer import Tracer

    marks = tmp_path / "marks"
    argv = [os.fsencode(a) for a in (sys.executable, PROGRAM, str(marks), "parent")]
    tracer = Tracer(argv[0], argv, original_environment(), seccomp_stops=seccomp_stops)
    pid = os.fork()
    if pid == 0:   # the tracer blocks signals and becomes a subreaper: not in pytest itself
        code = 1
        try:
            tracer.start()
            status = tracer.run()
            names = [n for n, _ in policy.named_counts(tracer.counts)[0]]
            (tmp_path / "names").write_text(" ".join(names))
            (tmp_path / "mode").write_text(str(tracer.restart_request))
            code = 0 if os.waitstatus_to_exitcode(status) == 0 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    names = (tmp_path / "names").read_text().split()
    from pyprocd.process import shim

    expected = shim.PTRACE_CONT if seccomp_stops else shim.PTRACE_SYSCALL
    assert (tmp_path / "mode").read_text() == str(expected)
    for name in (program.MAIN_CALL, program.THREAD_CALL, program.FORKED_CALL,
                 program.EXECED_CALL, "execve"):
        assert name in names, name


def test_a_directory_gone_by_the_end_is_a_clear_error_and_leaves_nothing(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    out = trace(["-f", str(folder / "p.json"), "--", "/bin/rm", "-r", str(folder)])
    assert out.returncode == 1
    assert f"cannot write the policy to {folder}/p.json: No such file or directory" in out.stderr
    assert os.listdir(tmp_path) == []


def test_utraces_p_option_is_accepted_and_ignored(tmp_path):
    assert trace(["-p", "1", "-d", str(tmp_path), "/bin/true"]).returncode == 0
    assert len(os.listdir(tmp_path)) == 1


def test_an_exec_from_a_second_thread_is_followed(tmp_path):
    """The exec'ing thread takes over the process id; the old thread ids are gone."""
    marks = tmp_path / "marks"
    report = scenario("none", marks, ["-d", str(tmp_path), "--", sys.executable, PROGRAM,
                                      str(marks), "thread-exec"])
    assert report["returncode"] == 0, report["stderr"]
    assert marks.read_text() == "child ran\n"
    assert program.EXECED_CALL in policy_names(only_file(tmp_path))
    assert report["alive"] == [] and report["reaped_orphans"] == 0


def test_other_signals_to_the_tracer_reach_the_program(tmp_path):
    """A supervisor's `signal` (here SIGUSR1, whose default ends the program) is the
    program's to handle: the tracer passes it on and survives to write the policy."""
    marks = tmp_path / "marks"
    report = scenario("usr1-tracer", marks, ["-d", str(tmp_path), "--", sys.executable,
                                             PROGRAM, str(marks), "sleep"])
    assert report["returncode"] == 128 + signal.SIGUSR1, report["stderr"]
    assert "clock_nanosleep" in policy_names(only_file(tmp_path))
    assert report["alive"] == [] and report["reaped_orphans"] == 0
