"""Merges a keyed pipeline with an unkeyed one: a build error in 0.6."""

import wallaroo


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs


@wallaroo.key_extractor
def key(data):
    return data


class S(object):
    pass


@wallaroo.state_computation(name="s", state=S)
def s(data, state):
    return data


@wallaroo.encoder
def encode(data):
    return data


def application_setup(args):
    a = wallaroo.source("A", wallaroo.TCPSourceConfig("127.0.0.1", "0", decode)).key_by(key)
    b = wallaroo.source("B", wallaroo.TCPSourceConfig("127.0.0.1", "0", decode))
    p = a.merge(b).to(s).to_sink(wallaroo.TCPSinkConfig("127.0.0.1", "1", encode))
    return wallaroo.build_application("Mismatch", p)
