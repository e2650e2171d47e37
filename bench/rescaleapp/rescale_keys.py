"""The rescale benchmark's application: many keys, each with a small state.

Input frames: U32 length, then U64 key number and U64 send time (the
sender's clock, nanoseconds). Each message updates its key's state (a few
integers, pickled when the key moves) and leaves as U32 length 24, then
the key number, the send time and the key's count, so the benchmark can
tell how long each message took and whether any was lost or repeated.
"""

import struct

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Keys", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = p.key_by(key_of).to(update).to_sink(
        wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Rescale Keys", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return struct.unpack(">QQ", bs)


@wallaroo.key_extractor
def key_of(m):
    return str(m[0])


class Totals(object):
    """A key's state: how many messages, the last send time, their sum."""

    def __init__(self):
        self.count = 0
        self.last = 0
        self.total = 0


@wallaroo.state_computation(name="update totals", state=Totals)
def update(m, totals):
    totals.count += 1
    totals.last = m[1]
    totals.total += m[0]
    return (m[0], m[1], totals.count)


@wallaroo.encoder
def encode(r):
    return struct.pack(">IQQQ", 24, r[0], r[1], r[2])
