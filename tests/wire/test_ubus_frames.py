"""ubus framing against every frame captured from the real ubusd/ubus CLI/procd."""

import pytest

from pyprocd.wire import blobmsg
from pyprocd.wire import ubusmsg as um
from pyprocd.wire.blob import BlobError
from tests.conftest import load_vectors

SESSIONS = load_vectors("ubus-sessions")
FRAMES = [(s["name"], m) for s in SESSIONS["sessions"] for m in s["messages"]]
FRAME_IDS = [f"{name}-{m['i']}" for name, m in FRAMES]

_NAME_TO_ID = {int(k): v for k, v in SESSIONS["constants"]["attributes"].items()}
_MONITOR_NAME_TO_ID = {int(k): v for k, v in SESSIONS["constants"]["monitor_attributes"].items()}


def test_constants_match_the_capture():
    consts = SESSIONS["constants"]
    for value, name in consts["message_types"].items():
        assert getattr(um, name) == int(value)
    for value, name in consts["attributes"].items():
        assert getattr(um, "ATTR_" + name) == int(value)
    for value, name in consts["monitor_attributes"].items():
        assert getattr(um, "MONITOR_" + name) == int(value)


@pytest.mark.parametrize("name,message", FRAMES, ids=FRAME_IDS)
def test_frame_decodes_and_reencodes_byte_identically(name, message):
    raw = bytes.fromhex(message["hex"])
    reader = um.MessageReader()
    (msg,) = reader.feed(raw)
    assert reader.pending() == 0
    decoded = message["decoded"]
    assert (msg.version, msg.type, msg.seq, msg.peer) == (
        decoded["version"], decoded["type"], decoded["seq"], decoded["peer"])
    assert um.encode(msg) == raw
    _check_attr_values(msg.type, msg.attrs, decoded["attrs"])


def _check_attr_values(msg_type, attrs, recorded):
    """Our values agree with the capture's own decoding of each attribute."""
    monitor = msg_type == um.MONITOR
    assert list(attrs) == [a["id"] for a in recorded]
    for rec in recorded:
        value = attrs[rec["id"]]
        if monitor and rec["id"] == um.MONITOR_DATA:
            _check_attr_values(None, value, rec["value"])
        elif not monitor and rec["id"] in (um.ATTR_DATA, um.ATTR_SIGNATURE):
            if isinstance(rec["value"], dict) and "_not_blobmsg_blob_attrs" in rec["value"]:
                assert isinstance(value, um.RawBlob)
                assert value.hex() == rec["hex"][8:]
            else:
                assert value == rec["value"]
        elif not monitor and rec["id"] in (um.ATTR_ACTIVE, um.ATTR_NO_REPLY) or monitor and rec["id"] == um.MONITOR_SEND:
            assert value is bool(rec["value"])
        else:
            assert value == rec["value"]


def test_whole_capture_streamed_in_odd_chunks():
    """All frames of a connection direction concatenated and cut at every 7 bytes."""
    for session in SESSIONS["sessions"]:
        streams = {}
        for m in session["messages"]:
            streams.setdefault((m["conn"], m["dir"]), []).append(bytes.fromhex(m["hex"]))
        for frames in streams.values():
            stream = b"".join(frames)
            reader = um.MessageReader()
            got = []
            for i in range(0, len(stream), 7):
                got.extend(reader.feed(stream[i:i + 7]))
            assert [um.encode(m) for m in got] == frames
            assert reader.pending() == 0


def test_invoke_example_from_the_spec():
    """§4.5: caller id 0x1a2b3c4d invokes hello {"name":"x"} on 0x11223344, seq 2."""
    msg = um.Message(um.INVOKE, 2, 0x11223344, {
        um.ATTR_OBJID: 0x11223344, um.ATTR_METHOD: "hello", um.ATTR_DATA: {"name": "x"}})
    assert um.encode(msg).hex() == (
        "0005000211223344" "0000002c" "0300000811223344" "0400000a68656c6c6f000000"
        "070000148300000e00046e616d650000780000" "00")


def test_signature_and_subscribers_representation():
    sig = {"hello": {"name": blobmsg.STRING}}
    msg = um.Message(um.ADD_OBJECT, 3, 0, {um.ATTR_OBJPATH: "test", um.ATTR_SIGNATURE: sig})
    frame = um.encode(msg)
    assert frame.hex() == (
        "0006000300000000" "00000030" "0200000974657374" "00000000" "06000020"
        "8200001c000568656c6c6f00" "8500001000046e616d65000000000003")
    status = um.Message(um.STATUS, 5, 0x324D5618, {
        um.ATTR_OBJID: 0x324D5618, um.ATTR_SUBSCRIBERS: [0x135A1C1C, 0xEC07E793],
        um.ATTR_STATUS: 0})
    raw = um.encode(status)
    assert raw.hex() == ("00010005324d561800000028030000083" "24d56180b00001400000008135a1c1c"
                         "00000008ec07e79301000008" "00000000")
    (back,) = um.MessageReader().feed(raw)
    assert back == status


def test_wrong_typed_and_unknown_attributes_are_absent_last_wins():
    body = (bytes.fromhex("02000008") + b"abc\0"    # OBJPATH "abc"
            + bytes.fromhex("0200000800000005")     # OBJPATH without NUL: ignored
            + bytes.fromhex("030000050a000000")     # OBJID of 1 byte: ignored
            + bytes.fromhex("3f00000800000001")     # unknown id 63
            + bytes.fromhex("0200000878797a00"))    # second valid OBJPATH wins
    frame = um.encode_frame(um.LOOKUP, 1, 0, body)
    (msg,) = um.MessageReader().feed(frame)
    assert msg.attrs == {um.ATTR_OBJPATH: "xyz"}
    assert msg.body == body


def test_reader_rejects_garbage_lengths():
    too_small = bytes.fromhex("0003000100000000" "00000002")
    with pytest.raises(BlobError):
        um.MessageReader().feed(too_small)
    too_big = bytes.fromhex("0003000100000000") + (um.MAX_MESSAGE_LEN + 4).to_bytes(4, "big")
    with pytest.raises(BlobError):
        um.MessageReader().feed(too_big)


def test_reader_keeps_messages_before_garbage():
    good = um.encode(um.Message(um.PING, 1, 0, {}))
    reader = um.MessageReader()
    with pytest.raises(BlobError) as info:
        reader.feed(good + good + bytes(12))
    assert [m.type for m in info.value.messages] == [um.PING, um.PING]


def test_message_at_the_size_limit():
    # DATA attr header 4 + string attr header 4 + name header 4 + text + NUL
    payload = {"s": "x" * (um.MAX_MESSAGE_LEN - 4 - 12 - 1)}
    frame = um.encode(um.Message(um.DATA, 1, 2, {um.ATTR_DATA: payload}))
    assert len(frame) == 8 + um.MAX_MESSAGE_LEN
    (msg,) = um.MessageReader().feed(frame)
    assert msg.attrs[um.ATTR_DATA] == payload
    with pytest.raises(BlobError):
        um.encode(um.Message(um.DATA, 1, 2, {um.ATTR_DATA: {"s": payload["s"] + "y"}}))
