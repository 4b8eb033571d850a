"""The bus's raw parsing and the wire codec read ubus frames by one set of rules."""

import random

import pytest

from pyprocd.bus import frame as F
from pyprocd.wire import blob
from pyprocd.wire import ubusmsg as um


def _shorter_than_header(attr_id, raw_len):
    """A header word whose raw length (1..3) does not even cover itself; padded it is 4."""
    return (attr_id << 24 | raw_len).to_bytes(4, "big")


@pytest.mark.parametrize("raw_len", [1, 2, 3])
def test_attribute_shorter_than_its_header_is_ignored_and_the_rest_is_read(raw_len):
    """Spec §1.4: such a child is ignored by policy parsing, iteration goes on past it."""
    body = (_shorter_than_header(um.ATTR_DATA, raw_len)
            + blob.encode_attr(um.ATTR_OBJID, (7).to_bytes(4, "big")))
    attrs = F.Attrs(body)
    assert F.A_DATA not in attrs
    assert attrs.u32(F.A_OBJID) == 7
    assert um.decode_attrs(body) == {um.ATTR_OBJID: 7}


def test_message_reader_decodes_exactly_the_frames_the_bus_reader_cuts():
    rng = random.Random(5)
    frames = [um.encode(um.Message(um.INVOKE, seq, 0x1000 + seq, {
        um.ATTR_OBJID: seq, um.ATTR_METHOD: "m" * seq, um.ATTR_DATA: {"n": seq}}))
        for seq in range(1, 30)]
    stream = b"".join(frames)
    raw_reader, msg_reader = F.FrameReader(), um.MessageReader()
    got_raw, got_msgs = [], []
    pos = 0
    while pos < len(stream):
        chunk = stream[pos:pos + rng.randrange(1, 40)]
        pos += len(chunk)
        got_raw += raw_reader.feed(chunk)
        got_msgs += msg_reader.feed(chunk)
    assert got_raw == frames
    assert got_msgs == [um.decode_frame(frame) for frame in frames]
    assert [m.body for m in got_msgs] == [frame[12:] for frame in frames]
    assert raw_reader.pending() == msg_reader.pending() == 0


def test_garbage_header_keeps_the_frames_before_it():
    good = F.message(F.PING, 1, 2)
    garbage = F.message(F.PING, 2, 2)[:8] + (2).to_bytes(4, "big")  # blob length 2 < 4
    reader = F.FrameReader()
    with pytest.raises(F.FrameError) as info:
        reader.feed(good + garbage)
    assert info.value.frames == [good]
    with pytest.raises(um.BlobError):  # stays broken: the stream cannot be framed any more
        reader.feed(good)
