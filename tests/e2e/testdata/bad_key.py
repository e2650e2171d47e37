"""The key extractor returns a float, which is not a key."""

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Floats", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = p.key_by(float_key).to(keep).to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Bad key", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs


@wallaroo.key_extractor
def float_key(data):
    return 1.5


class Nothing(object):
    pass


@wallaroo.state_computation(name="keep", state=Nothing)
def keep(data, state):
    return data


@wallaroo.encoder
def encode(data):
    return data + b"\n"
