"""Two TCP sources merged into one keyed count, written to two sinks."""

import wallaroo


def application_setup(args):
    ins = wallaroo.tcp_parse_input_addrs(args)
    outs = wallaroo.tcp_parse_output_addrs(args)
    left = wallaroo.source("Left", wallaroo.TCPSourceConfig(ins[0][0], ins[0][1], decode))
    right = wallaroo.source("Right", wallaroo.TCPSourceConfig(ins[1][0], ins[1][1], decode))
    p = (left.to(tag_left)
         .merge(right)
         .key_by(name_key)
         .to(count)
         .to_sinks([wallaroo.TCPSinkConfig(h, port, encode) for (h, port) in outs]))
    return wallaroo.build_application("Merge and fan out", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs.decode("utf-8")


@wallaroo.computation(name="tag left")
def tag_left(s):
    return s


@wallaroo.key_extractor
def name_key(s):
    return s


class Seen(object):
    def __init__(self):
        self.n = 0


@wallaroo.state_computation(name="count", state=Seen)
def count(s, seen):
    seen.n += 1
    return "%s %d" % (s, seen.n)


@wallaroo.encoder
def encode(s):
    return s + "\n"
