"""computation_multi returning lists with None in them, to every sink of
--out (to_sinks): "x" gives [x-a, None, x-b]; "only-none" gives [None];
"empty" gives []; "none" gives None."""

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    outs = wallaroo.tcp_parse_output_addrs(args)
    p = wallaroo.source("Multi", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = p.to(split).to_sinks([wallaroo.TCPSinkConfig(h, port, encode) for (h, port) in outs])
    return wallaroo.build_application("Multi with None", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs.decode("utf-8")


@wallaroo.computation_multi(name="split")
def split(msg):
    if msg == "only-none":
        return [None]
    if msg == "empty":
        return []
    if msg == "none":
        return None
    return [msg + "-a", None, msg + "-b"]


@wallaroo.encoder
def encode(s):
    return (s + "\n").encode("utf-8")
