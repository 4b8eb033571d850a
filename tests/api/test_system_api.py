"""The read-only `system` object (board, info) in procd's reply shape, over a real bus."""

import json
import os

import pytest

from pyprocd.api import system
from tests.e2e.stack import Stack


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path).start()
    yield s
    s.close()


def call(stack, method):
    code, out, err = stack.ubus("call", "system", method)
    assert code == 0, err
    return json.loads(out)


def test_board_names_this_kernel_and_host(stack):
    reply = call(stack, "board")
    uts = os.uname()
    assert reply["kernel"] == uts.release
    assert reply["hostname"] == uts.nodename
    release = system.os_release()
    if "NAME" in release:
        assert reply["release"]["distribution"] == release["NAME"]


def test_info_reports_memory_and_filesystems_from_the_kernel(stack):
    reply = call(stack, "info")
    assert set(reply) >= {"localtime", "uptime", "load", "memory", "root", "tmp", "swap"}
    with open("/proc/meminfo") as f:
        total_kib = int(f.readline().split()[1])
    assert reply["memory"]["total"] == total_kib * 1024
    assert len(reply["load"]) == 3
    st = os.statvfs("/")
    assert reply["root"]["total"] == st.f_blocks * st.f_frsize // 1024
    assert reply["root"]["used"] == reply["root"]["total"] - reply["root"]["free"]


def test_os_release_fields_are_unquoted(tmp_path):
    path = tmp_path / "os-release"
    path.write_text('NAME="OpenWrt"\nVERSION_ID=\'24.10.0\'\nBUILD_ID=r28427\n# note\n')
    assert system.os_release([str(tmp_path / "missing"), str(path)]) == {
        "NAME": "OpenWrt", "VERSION_ID": "24.10.0", "BUILD_ID": "r28427"}


def test_the_listing_offers_only_the_read_only_methods(stack):
    code, out, _err = stack.ubus("-v", "list", "system")
    assert code == 0
    assert out == "'system' @" + out.split("@", 1)[1].split("\n", 1)[0] + "\n" \
        '\t"board":{}\n\t"info":{}\n'
