"""The encoder returns a list: a contract violation reported with the stage."""

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Lists", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = p.to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode_as_list))
    return wallaroo.build_application("Bad encoder", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs


@wallaroo.encoder
def encode_as_list(data):
    return [data]
