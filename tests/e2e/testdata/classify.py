"""Wallaroo 0.6's parallel_classifier check: one stateless computation
right after the source, which tags each number with the process that ran
it ("<n>:<pid>"). Over a cluster, the numbers must come out once each and
the pids must name every worker: the stateless work is dealt to all of
them."""

import os

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = (wallaroo.source("Classify", wallaroo.TCPSourceConfig(in_host, in_port, decode))
         .to(classify)
         .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
    return wallaroo.build_application("Parallel Classifier", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return int(bs)


@wallaroo.computation(name="classify")
def classify(n):
    return "%d:%d" % (n, os.getpid())


@wallaroo.encoder
def encode(s):
    return s + "\n"
