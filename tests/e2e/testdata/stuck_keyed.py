"""A keyed app for the cluster's stuck-peer test: each message is
"<key> <command>", routed by key to the worker owning it; the command
"spin" loops in Python forever there. Other messages come back as lines."""

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Keyed", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = p.key_by(first_word).to(maybe_spin).to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Stuck Keyed", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs.decode("utf-8")


@wallaroo.key_extractor
def first_word(msg):
    return msg.split(" ")[0]


class Seen(object):
    def __init__(self):
        self.n = 0


@wallaroo.state_computation(name="maybe spin", state=Seen)
def maybe_spin(msg, seen):
    seen.n += 1
    if msg.endswith(" spin"):
        n = 0
        while True:
            n += 1
    return msg


@wallaroo.encoder
def encode(msg):
    return (msg + "\n").encode("utf-8")
