"""A stateless computation directly after key_by: 0.6 routes it by the key
(spec 2.2, 2.4), so each key's messages run in one process, in order,
and the keys are shared out over the workers. Each number n has the key
n mod 50; the output is "<n>:<key>:<pid>"."""

import os

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = (wallaroo.source("Numbers", wallaroo.TCPSourceConfig(in_host, in_port, decode))
         .key_by(mod50)
         .to(tag)
         .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
    return wallaroo.build_application("Keyed Stateless", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return int(bs)


@wallaroo.key_extractor
def mod50(n):
    return str(n % 50)


@wallaroo.computation(name="tag")
def tag(n):
    return "%d:%d:%d" % (n, n % 50, os.getpid())


@wallaroo.encoder
def encode(s):
    return s + "\n"
