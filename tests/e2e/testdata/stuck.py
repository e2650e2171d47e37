"""An app whose computation never returns for some messages, for the
bounded-stop tests: "spin" loops in Python forever, "block" waits in C
for a lock nobody releases (a signal does not cut that wait short, on
Python 2 or 3). Other messages come back as lines."""

import threading
import wallaroo

_never = threading.Lock()


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Stuck", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = p.to(never_returns).to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Stuck", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs


@wallaroo.computation(name="never returns")
def never_returns(data):
    if data == b"spin":
        print("SPINNING")
        n = 0
        while True:
            n += 1
    if data == b"block":
        print("BLOCKING")
        _never.acquire()
        _never.acquire()
    return data


@wallaroo.encoder
def encode(data):
    return data + b"\n"
