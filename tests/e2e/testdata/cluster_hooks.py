"""Defines its own serialize/deserialize hooks, which count their calls
and fail on purpose: serialize raises on a message that starts with
"sfail", deserialize on one that starts with "dfail". Keyed by the
message ("sfail KEY" and "dfail KEY" by KEY, so that a test can choose
the worker that holds it), so in a cluster the messages of keys another
worker owns cross through the hooks.

Output: one line "<message> <count of its key> <serialize calls so far>
<deserialize calls so far>" per message (the calls of the process that
writes the line).
"""

import pickle

import wallaroo

CALLS = {"serialize": 0, "deserialize": 0}


def serialize(obj):
    CALLS["serialize"] += 1
    if isinstance(obj, bytes) and obj.startswith(b"sfail"):
        raise ValueError("serialize was told to fail on %r" % (obj,))
    return pickle.dumps(obj, 2)


def deserialize(bs):
    CALLS["deserialize"] += 1
    obj = pickle.loads(bs)
    if isinstance(obj, bytes) and obj.startswith(b"dfail"):
        raise ValueError("deserialize was told to fail on %r" % (obj,))
    return obj


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = (wallaroo.source("Hooks", wallaroo.TCPSourceConfig(in_host, in_port, decode))
         .key_by(key).to(count)
         .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
    return wallaroo.build_application("Cluster hooks", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs


@wallaroo.key_extractor
def key(data):
    if data.startswith(b"sfail ") or data.startswith(b"dfail "):
        data = data[6:]
    return data


class N(object):
    def __init__(self):
        self.n = 0


@wallaroo.state_computation(name="count", state=N)
def count(data, n):
    n.n += 1
    return (data, n.n)


@wallaroo.encoder
def encode(x):
    return "%s %d %d %d\n" % (x[0].decode("ascii"), x[1], CALLS["serialize"], CALLS["deserialize"])
