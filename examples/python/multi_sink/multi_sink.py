"""Multi sink, written to the Wallaroo 0.6 Python API.

One TCP source, one stateless computation, and as many TCP sinks as --out
names (two in the examples): to_sinks sends every output to every sink.
The computation, "shout", turns a line of text into upper case with an
exclamation mark at the end; the encoder writes it followed by a newline.
"""

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_addrs = wallaroo.tcp_parse_output_addrs(args)

    lines = wallaroo.source(
        "Shout",
        wallaroo.TCPSourceConfig(in_host, in_port, decode_line))
    pipeline = (lines
                .to(shout)
                .to_sinks([wallaroo.TCPSinkConfig(host, port, encode_line)
                           for host, port in out_addrs]))
    return wallaroo.build_application("Shout to every sink", pipeline)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode_line(bs):
    return bs.decode("utf-8")


@wallaroo.computation(name="shout")
def shout(text):
    return text.upper() + "!"


@wallaroo.encoder
def encode_line(text):
    return (text + "\n").encode("utf-8")
