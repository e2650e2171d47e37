"""The state class needs a constructor argument: the state computation
cannot create its state for the first key."""

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Needs arg", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = p.key_by(key).to(use).to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("State needs arg", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs


@wallaroo.key_extractor
def key(data):
    return data


class NeedsArg(object):
    def __init__(self, start):
        self.n = start


@wallaroo.state_computation(name="use", state=NeedsArg)
def use(data, state):
    return data


@wallaroo.encoder
def encode(data):
    return data
