"""Wallaroo 0.6's cli_tests application, in our own words: a stateless
pass-through, a state without key_by (one state for all messages, under
the single-partition key), a key_by on the hash of the message, and a
state per key; the message goes out unchanged (framed)."""

import struct

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = (wallaroo.source("Dummy", wallaroo.TCPSourceConfig(in_host, in_port, decode))
         .to(pass_through)
         .to(count_updates)
         .key_by(partition)
         .to(count_partitioned)
         .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
    return wallaroo.build_application("Dummy", p)


class Updates(object):
    def __init__(self):
        self.count = 0


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs.decode("utf-8")


@wallaroo.computation(name="Pass through")
def pass_through(data):
    return data


@wallaroo.state_computation(name="Count State Updates", state=Updates)
def count_updates(data, updates):
    updates.count += 1
    return data


@wallaroo.key_extractor
def partition(data):
    return str(hash(data))


@wallaroo.state_computation(name="Count Partitioned State Updates", state=Updates)
def count_partitioned(data, updates):
    updates.count += 1
    return data


@wallaroo.encoder
def encode(data):
    b = data.encode("utf-8")
    return struct.pack(">I", len(b)) + b
