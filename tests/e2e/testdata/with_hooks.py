"""Defines its own serialize/deserialize hooks. On one worker no value
leaves the process, so (as in Wallaroo 0.6) they are never called: they
raise if they are."""

import wallaroo


def serialize(obj):
    raise AssertionError("serialize called on a single worker")


def deserialize(bs):
    raise AssertionError("deserialize called on a single worker")


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Hooks", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = p.key_by(key).to(count).to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Hooks", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs


@wallaroo.key_extractor
def key(data):
    return data


class N(object):
    def __init__(self):
        self.n = 0


@wallaroo.state_computation(name="count", state=N)
def count(data, n):
    n.n += 1
    return n.n


@wallaroo.encoder
def encode(n):
    return "%d\n" % n
