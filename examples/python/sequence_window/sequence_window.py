"""Sequence window, written to the Wallaroo 0.6 Python API.

Every message is a number, a big-endian unsigned 64-bit integer (the
sequence 1, 2, 3, ... in the examples). All numbers go through one key
(key_by a constant), so "Maybe one to many", a computation_multi, sees them
in order: a multiple of 12 (12 and more) becomes three messages, n, n+1 and
n+2; the numbers just after it, n+1 and n+2, are dropped when they arrive
themselves (None); every other number passes as it is. For the sequence
1..N this reorders nothing and changes nothing, which is the point: the
output must show every number exactly once, in order.

The numbers are then routed by parity (key_by "0" or "1") to an
"Observer New Value" state per parity that keeps the last four numbers it
saw. Every number produces one output: the window after it, "[a,b,c,d]"
(0 for the places not filled yet), framed with a 4-byte big-endian length.
In the output of one parity the windows are contiguous: each is the one
before it shifted by one, with the next number of that parity at the end.
"""

import struct

import wallaroo

WINDOW_SIZE = 4


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    numbers = wallaroo.source(
        "Sequence Window",
        wallaroo.TCPSourceConfig(in_host, in_port, decode_number))
    pipeline = (numbers
                .key_by(constant_key)
                .to(maybe_one_to_many)
                .key_by(parity)
                .to(observe_new_value)
                .to_sink(wallaroo.TCPSinkConfig(out_host, out_port,
                                                encode_window)))
    return wallaroo.build_application("Sequence Window", pipeline)


class LastValues(object):
    """The last WINDOW_SIZE numbers of one parity, oldest first."""

    def __init__(self):
        self.values = [0] * WINDOW_SIZE

    def push(self, value):
        self.values = self.values[1:] + [value]


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode_number(bs):
    return struct.unpack(">Q", bs[:8])[0]


@wallaroo.key_extractor
def constant_key(value):
    return "sequence"


@wallaroo.computation_multi(name="Maybe one to many")
def maybe_one_to_many(value):
    if value >= 12 and value % 12 == 0:
        return [value, value + 1, value + 2]
    if value >= 12 and value % 12 in (1, 2):
        return None
    return [value]


@wallaroo.key_extractor
def parity(value):
    return str(value % 2)


@wallaroo.state_computation(name="Observer New Value", state=LastValues)
def observe_new_value(value, last_values):
    last_values.push(value)
    return list(last_values.values)


@wallaroo.encoder
def encode_window(window):
    text = "[%s]" % ",".join("%d" % v for v in window)
    return struct.pack(">L", len(text)) + text.encode("ascii")
