"""A generator source that stops: 1, 2, ... 10, then None."""

import wallaroo


class UpToTen(object):
    def initial_value(self):
        return 1

    def apply(self, v):
        return v + 1 if v < 10 else None


def application_setup(args):
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Up to ten", wallaroo.GenSourceConfig(UpToTen()))
    p = p.to(double).to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Finite generator", p)


@wallaroo.computation(name="double")
def double(v):
    return v * 2


@wallaroo.encoder
def encode(v):
    return "%d\n" % v
