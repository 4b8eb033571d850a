"""The host bus replays every captured ubusd conversation byte for byte.

All 14 sessions run in capture order against ONE bus (connection 1 is procd for
the whole capture, exactly as recorded). The bus gets the captured ids (client,
object and type ids are random in ubusd; everything else - seq numbers, event
counters, monitor counters, attribute order, padding - must come out identical).
Client messages are sent as captured; every message ubusd sent is read from our
bus and compared byte for byte. A client connection is closed after its last
captured message, which is what makes e.g. the final NOTIFY ACTIVE=0 appear.
"""


import pytest

from pyprocd.bus.broker import Broker
from pyprocd.loop import Loop
from tests.bus import busreplay as R
from tests.conftest import load_vectors


def root_credentials(sock):
    return 0, 0, b"root", b"root"


@pytest.fixture
def capture():
    return load_vectors("ubus-sessions")


def test_bus_replays_all_sessions(tmp_path, capture):
    sessions = capture["sessions"]
    loop = Loop()
    loop.strict = True
    path = str(tmp_path / "ubus.sock")
    broker = Broker(loop, path, new_id=R.id_source(R.recorded_ids(sessions)),
                    credentials=root_credentials)

    def pump(seconds):
        loop.run_once(seconds)

    conns = {}
    try:
        for session in sessions:
            last = R.last_message_index(session)
            for i, m in enumerate(session["messages"]):
                raw = bytes.fromhex(m["hex"])
                conn = m["conn"]
                where = f"{session['name']} message {m['i']} ({m['dir']})"
                if m["dir"].startswith("ubusd->"):
                    if conn not in conns:
                        conns[conn] = R.connect(path)
                    got = conns[conn].read_frame(pump)
                    assert got.hex() == raw.hex(), f"{where}\n got {R.describe(got)}\nwant {R.describe(raw)}"
                else:
                    conns[conn].send(raw)
                    pump(0)
                if last[conn] == i and m["client"] != "procd":
                    conns.pop(conn).close()
                    for _ in range(5):
                        pump(0.01)
            for _ in range(5):
                pump(0.01)
            for conn, fs in conns.items():
                extra = fs.pending()
                assert not extra, f"{session['name']}: unexpected {[R.describe(x) for x in extra]}"
    finally:
        for fs in conns.values():
            fs.close()
        broker.close()
        loop.close()


def test_id_source_is_consistent(capture):
    ids = R.recorded_ids(capture["sessions"])
    # procd's five objects plus those of the CLI clients and the Lua helper
    assert ids["client"][0] == 0xEF2DB964
    assert len(set(ids["object"])) == len(ids["object"])
