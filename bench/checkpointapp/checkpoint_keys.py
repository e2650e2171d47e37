"""The checkpoint benchmark's application: 100 000 keys of small state
(a few integers, pickled into each checkpoint), fed by an internal
generator as fast as the worker runs.

The generator first gives every key one message (so the state holds all
100 000 keys), then, with --changing N, draws keys from a window of N keys
that moves to the next N keys every second: about N keys change per
second whatever the rate. With --changing 0 it goes round all keys, so at
100 000 messages per second or more every key changes every second.

Each message adds to its key's totals; one output of 8 bytes (the count
of messages so far, U64) leaves every 64 messages, so the sink sees the
rate without the output costing much.
"""

import struct
import time

import wallaroo

KEYS = 100000


def application_setup(args):
    changing = 10000
    if "--changing" in args:
        changing = int(args[args.index("--changing") + 1])
    CHANGING[0] = changing
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Keys", wallaroo.GenSourceConfig(Keys(changing)))
    p = p.key_by(key_of).to(update).to_sink(
        wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Checkpoint Keys", p)


class Keys(object):
    """Message i is the number i; the key comes from i (key_of)."""

    def __init__(self, changing):
        self.changing = changing

    def initial_value(self):
        return 0

    def apply(self, i):
        return i + 1


@wallaroo.key_extractor
def key_of(i):
    if i < KEYS or not CHANGING[0]:
        return str(i % KEYS)
    n = CHANGING[0]
    window = int(time.time()) % (KEYS // n)
    return str(window * n + i % n)


CHANGING = [10000]


class Totals(object):
    """A key's state: how many messages, the last one, their sum."""

    def __init__(self):
        self.count = 0
        self.last = 0
        self.total = 0


@wallaroo.state_computation(name="update totals", state=Totals)
def update(i, totals):
    totals.count += 1
    totals.last = i
    totals.total += i
    if i % 64 == 0:
        return i
    return None


@wallaroo.encoder
def encode(i):
    return struct.pack(">Q", i)
