"""Echo app for the end-to-end tests: every framed message comes back as a
line. Messages "boom" make the computation raise; "drop" are filtered by
the decoder. It also prints the args it was given, for the args test."""

import json
import wallaroo


def application_setup(args):
    print("ARGS " + json.dumps(args))
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Echo", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = p.to(check).to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Echo", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    if bs == b"drop":
        return None
    return bs


@wallaroo.computation(name="check for boom")
def check(data):
    if data == b"boom":
        raise ValueError("the message said boom")
    return data


@wallaroo.encoder
def encode(data):
    return data + b"\n"
