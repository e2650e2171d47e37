"""Reverse, written to the Wallaroo 0.6 Python API.

Every message is a piece of UTF-8 text. A stateless computation reverses it
(character by character) and the encoder writes the result, followed by a
newline, to a TCP sink.
"""

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    texts = wallaroo.source(
        "Reverse",
        wallaroo.TCPSourceConfig(in_host, in_port, decode_text))
    pipeline = (texts
                .to(reverse)
                .to_sink(wallaroo.TCPSinkConfig(out_host, out_port,
                                                encode_line)))
    return wallaroo.build_application("Reverse Text", pipeline)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode_text(bs):
    return bs.decode("utf-8")


@wallaroo.computation(name="reverse")
def reverse(text):
    return text[::-1]


@wallaroo.encoder
def encode_line(text):
    return (text + "\n").encode("utf-8")
