"""Two sources keyed alike, merged, then one stateless computation: every
message has the key "c", which 0.6 passes through the merge, so the
computation runs in one place and keeps each source's order. It tags each
number with the process that ran it ("<n>:<pid>")."""

import os

import wallaroo


def application_setup(args):
    ins = wallaroo.tcp_parse_input_addrs(args)
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    a = (wallaroo.source("A", wallaroo.TCPSourceConfig(ins[0][0], ins[0][1], decode))
         .key_by(constant))
    b = (wallaroo.source("B", wallaroo.TCPSourceConfig(ins[1][0], ins[1][1], decode))
         .key_by(constant))
    p = (a.merge(b)
         .to(tag)
         .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
    return wallaroo.build_application("Keyed Merge", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return int(bs)


@wallaroo.key_extractor
def constant(n):
    return "c"


@wallaroo.computation(name="tag")
def tag(n):
    return "%d:%d" % (n, os.getpid())


@wallaroo.encoder
def encode(s):
    return s + "\n"
