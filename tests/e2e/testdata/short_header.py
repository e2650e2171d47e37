"""Frames with a 2-byte big-endian header (decoder(2, ">H"))."""

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Short", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = p.to(upper).to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Short header", p)


@wallaroo.decoder(header_length=2, length_fmt=">H")
def decode(bs):
    return bs.decode("utf-8")


@wallaroo.computation(name="upper")
def upper(s):
    return s.upper()


@wallaroo.encoder
def encode(s):
    return s + "\n"  # a str: written as UTF-8
