"""One app, several behaviours, chosen by the first byte of each message:

  k...  key_by: "ki" gives the int 65 (chr -> "A"), "ks" the str "A",
        "kb" the bytes b"A"; all three are the same key, counted by one state
  n...  the encoder returns None for it: nothing is written
  t...  a computation_multi returns a tuple: the worker must stop
  p...  prints "PRINTED <msg>" from the computation (stdout is unbuffered)
  every message also reports whether it ran on the same thread as the
  first one ("same"/"different")
"""

import threading

import wallaroo

_first_thread = []


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Contracts", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = (p.to(multi).key_by(key).to(count)
         .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
    return wallaroo.build_application("Contracts", p)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs.decode("utf-8")


@wallaroo.computation_multi(name="maybe tuple")
def multi(msg):
    if not _first_thread:
        _first_thread.append(threading.current_thread().ident)
    same = "same" if threading.current_thread().ident == _first_thread[0] else "different"
    if msg.startswith("p"):
        print("PRINTED " + msg)
    if msg.startswith("t"):
        return (msg, msg)
    return [msg + " " + same]


@wallaroo.key_extractor
def key(msg):
    if msg.startswith("ki"):
        return 65
    if msg.startswith("ks"):
        return "A"
    if msg.startswith("kb"):
        return b"A"
    return msg


class Count(object):
    def __init__(self):
        self.n = 0


@wallaroo.state_computation(name="count", state=Count)
def count(msg, c):
    c.n += 1
    return "%s %d" % (msg, c.n)


@wallaroo.encoder
def encode(out):
    if out.startswith("n"):
        return None
    return (out + "\n").encode("utf-8")
