"""Echo app whose decoder framing comes from the command line:
--length-fmt FMT (a struct format of one integer), or --custom-header N for
a decoder class with its own payload_length reading an N-byte big-endian
length. Payloads "drop" are dropped by the decoder (it returns None);
"raise" make the decoder raise."""

import argparse
import struct

import wallaroo


def application_setup(args):
    parser = argparse.ArgumentParser(prog="header_formats")
    parser.add_argument("--length-fmt", default=">I")
    parser.add_argument("--custom-header", type=int, default=0)
    opts, _ = parser.parse_known_args(args[1:])
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    if opts.custom_header:
        decoder = CustomHeader(opts.custom_header)
    else:
        decoder = wallaroo.decoder(header_length=struct.calcsize(opts.length_fmt),
                                   length_fmt=opts.length_fmt)(echo_payload)
    p = wallaroo.source("Framed", wallaroo.TCPSourceConfig(in_host, in_port, decoder))
    p = p.to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Header formats", p)


def echo_payload(bs):
    if bs == b"drop":
        return None
    if bs == b"raise":
        raise ValueError("the decoder was told to raise")
    return bs


class CustomHeader(wallaroo.OctetDecoder):
    """A hand-written decoder: an n-byte big-endian length header."""

    def __init__(self, n):
        self.n = n

    def header_length(self):
        return self.n

    def payload_length(self, bs):
        if bs[:1] == b"\xff":
            raise ValueError("header starts with 0xff")
        return int.from_bytes(bs, "big") if hasattr(int, "from_bytes") else int(bs.encode("hex"), 16)

    def decode(self, bs):
        return echo_payload(bs)


@wallaroo.encoder
def encode(data):
    return data + b"\n"
