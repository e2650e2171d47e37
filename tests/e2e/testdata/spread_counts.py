"""Per-key counts behind a spread step, for the resilience tests.

An internal generator (multi_partition_detector's KeyedSequence: keys
"0000000" .. "<partitions - 1>" get the values 1, 2, 3, ... in turn) feeds
a stateless step that changes nothing, which 0.6 runs on any worker (it is
the first after the source: spread); then each message goes by its key to
the state Count, which adds it up. Messages thus cross between workers in
every direction, and a key's messages reach its owner in no fixed order.

Every message produces one output, U32 BE length . "(<key>.Count,[n,s,q])"
with the key's count n, sum s and sum of squares q of the values so far.
A key that got each of 1..N exactly once ends at [N, N(N+1)/2,
N(N+1)(2N+1)/6]; a value lost or counted twice shows there, whatever the
order.

Options: --partitions N (8), --gen-limit N, --gen-rate R (as the
detector's).
"""

import struct

import wallaroo

from multi_partition_detector import KeyedSequence


def application_setup(args):
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    def opt(name, default):
        if name in args:
            return int(args[args.index(name) + 1])
        return default
    gen = KeyedSequence(opt("--partitions", 8), opt("--gen-limit", 0), opt("--gen-rate", 0))
    p = (wallaroo.source("Counts", wallaroo.GenSourceConfig(gen))
         .to(pass_through)
         .key_by(message_key)
         .to(count)
         .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
    return wallaroo.build_application("Spread Counts", p)


class Totals(object):
    def __init__(self):
        self.n = 0
        self.s = 0
        self.q = 0


@wallaroo.computation(name="Pass through")
def pass_through(msg):
    return msg


@wallaroo.key_extractor
def message_key(msg):
    return msg.tag


@wallaroo.state_computation(name="Count", state=Totals)
def count(msg, state):
    state.n += 1
    state.s += msg.value
    state.q += msg.value * msg.value
    return (msg.tag, state.n, state.s, state.q)


@wallaroo.encoder
def encode(out):
    text = "(%s.Count,[%d,%d,%d])" % out
    return struct.pack(">I", len(text)) + text.encode("utf-8")
