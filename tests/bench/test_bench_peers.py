"""Each installed peer, run through its adapter: services run, nothing touches the network."""

import pytest

from bench.peers import harness, procfs


@pytest.mark.parametrize("peer_cls", harness.PEERS, ids=lambda p: p.name)
def test_peer_runs_services_on_unix_sockets_only(peer_cls, tmp_path_factory):
    if peer_cls.missing():
        pytest.skip(f"{peer_cls.name}: {peer_cls.missing()}")
    ws = harness.Workspace("/tmp")  # short path: unix socket names are limited to 107 bytes
    try:
        peer = peer_cls(ws.new_dir(peer_cls.name), ws.marker)
        services = ws.sleep_services(2)
        try:
            peer.start(services)
            found = harness.wait_running(peer, services, timeout=120)
            assert sorted(found) == sorted(s.argv for s in services)
            side = peer.supervisor_pids(found.values())
            assert side and not set(side) & set(found.values())
            # circus would join a multicast group, supervisord could serve TCP: neither may
            assert procfs.inet_sockets(side) == {}
        finally:
            peer.stop()
        assert procfs.processes_mentioning(ws.marker) == []
    finally:
        ws.cleanup()
