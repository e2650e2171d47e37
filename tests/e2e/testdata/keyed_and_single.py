"""Two state computations: one keyed by the message, one after a stateless
step (so, as in Wallaroo 0.6, unkeyed: it uses single-partition-key)."""

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Letters", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = (p.key_by(itself).to(count_per_key)
         .to(pass_through).to(count_all)
         .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
    return wallaroo.build_application("Keyed and single", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs


@wallaroo.key_extractor
def itself(data):
    return data


class Count(object):
    def __init__(self):
        self.n = 0


@wallaroo.state_computation(name="count per key", state=Count)
def count_per_key(data, count):
    count.n += 1
    return data


@wallaroo.computation(name="pass through")
def pass_through(data):
    return data


@wallaroo.state_computation(name="count all", state=Count)
def count_all(data, count):
    count.n += 1
    return b"%s %d" % (data, count.n) if not isinstance(data, str) else "%s %d" % (data, count.n)


@wallaroo.encoder
def encode(data):
    return data + b"\n"
