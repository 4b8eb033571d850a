"""`pyprocd ubus` against a scripted ubusd: captured requests, output and exit codes.

For every captured `ubus ...` command, a fake ubusd (a test thread) plays the
real ubusd's side of that client's connection from the capture: it sends what
ubusd sent and checks that every message our CLI sends is byte for byte the
message the real CLI sent (same seq numbers, attributes, padding). Then the
CLI's stdout, stderr and exit code must equal the recorded ones.
"""

import signal
import socket
import subprocess
import sys
import threading

import pytest

from pyprocd.bus import frame as F
from tests.bus import busreplay as R
from tests.conftest import load_vectors


def cli_commands():
    sessions = load_vectors("ubus-sessions")["sessions"]
    cases = []
    for session in sessions:
        for command in session["commands"]:
            if command["argv"][0] == "ubus":
                messages = [m for m in session["messages"] if m["client"] == command["client"]]
                cases.append(pytest.param(session["name"], command, messages,
                                          id=f"{session['name']}-{command['client']}"))
    return cases


class FakeUbusd(threading.Thread):
    """Plays ubusd's side of one captured connection."""

    def __init__(self, path, messages):
        super().__init__(daemon=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.listener.settimeout(30)
        self.messages = messages
        self.errors = []
        self.reached_last_request = threading.Event()

    def run(self):
        try:
            self._serve()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            self.reached_last_request.set()

    def _serve(self):
        conn, _ = self.listener.accept()
        conn.settimeout(30)
        reader = F.FrameReader()
        frames = []
        last_request = max((i for i, m in enumerate(self.messages)
                            if m["dir"].endswith("->ubusd")), default=-1)
        with conn:
            for i, m in enumerate(self.messages):
                raw = bytes.fromhex(m["hex"])
                if m["dir"].startswith("ubusd->"):
                    conn.sendall(raw)
                    continue
                if i == last_request:
                    self.reached_last_request.set()
                while not frames:
                    data = conn.recv(65536)
                    if not data:
                        raise ConnectionError(f"client closed before message {m['i']}")
                    frames.extend(reader.feed(data))
                got = frames.pop(0)
                if got != raw:
                    self.errors.append(f"message {m['i']}:\n got {R.describe(got)}\n"
                                       f"want {R.describe(raw)}")
            # after the script: the client must only close the connection
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                frames.extend(reader.feed(data))
            if frames:
                self.errors.append(f"unexpected extra messages {[R.describe(f) for f in frames]}")


@pytest.mark.parametrize("name,command,messages", cli_commands())
def test_cli_replays_capture(tmp_path, name, command, messages):
    path = str(tmp_path / "ubus.sock")
    server = FakeUbusd(path, messages)
    server.start()
    argv = [path if a == "<SOCKET>" else a for a in command["argv"][1:]]
    proc = subprocess.Popen([sys.executable, "-m", "pyprocd", "ubus", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if "monitor" in argv:  # runs until killed, like the recorded one (SIGTERM)
            server.reached_last_request.wait(60)
            proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    server.join(30)
    assert not server.errors, "\n".join(server.errors)
    assert stdout.decode() == command["stdout"]
    assert stderr.decode() == command["stderr"]
    assert proc.returncode == command["exit_code"]
