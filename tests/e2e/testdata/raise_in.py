"""One pipeline with every kind of user callback; --raise-in STAGE makes
that callback raise ValueError("<stage> was told to raise") on the message
"boom" (every other message passes; "boom KEY" raises too, and its key
is KEY, so that a test can choose the worker that raises):

  decoder, computation, key, state (the state class's constructor, when it
  is called for the key "boom"), state_computation, encoder, generator
  (the source is then a generator: "fine0", "fine1", "fine2", and
  apply("fine2") raises)

Output: one line "<message> <count of its key>" per message.
"""

import argparse

import wallaroo

STAGE = [None]
_boom_seen = [False]


def application_setup(args):
    parser = argparse.ArgumentParser(prog="raise_in")
    parser.add_argument("--raise-in", required=True,
                        choices=["decoder", "computation", "key", "state",
                                 "state_computation", "encoder", "generator"])
    opts, _ = parser.parse_known_args(args[1:])
    STAGE[0] = opts.raise_in
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    if opts.raise_in == "generator":
        p = wallaroo.source("Gen", wallaroo.GenSourceConfig(FineThenRaise()))
    else:
        in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
        p = wallaroo.source("Raise", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = (p.to(check).key_by(key).to(tally)
         .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
    return wallaroo.build_application("Raise in", p)


def _is_boom(msg):
    return msg == "boom" or msg.startswith("boom ")


def _maybe_raise(stage, msg):
    if STAGE[0] == stage and _is_boom(msg):
        raise ValueError(stage + " was told to raise")


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    msg = bs.decode("utf-8")
    _maybe_raise("decoder", msg)
    return msg


class FineThenRaise(object):
    def initial_value(self):
        return "fine0"

    def apply(self, v):
        if v == "fine2":
            raise ValueError("generator was told to raise")
        return "fine%d" % (int(v[4:]) + 1)


@wallaroo.computation(name="check")
def check(msg):
    _maybe_raise("computation", msg)
    if _is_boom(msg):
        _boom_seen[0] = True
    return msg


@wallaroo.key_extractor
def key(msg):
    _maybe_raise("key", msg)
    return msg.split(" ")[-1]


class Tally(object):
    def __init__(self):
        if STAGE[0] == "state" and _boom_seen[0]:
            raise ValueError("state was told to raise")
        self.n = 0


@wallaroo.state_computation(name="tally", state=Tally)
def tally(msg, t):
    _maybe_raise("state_computation", msg)
    t.n += 1
    return "%s %d" % (msg, t.n)


@wallaroo.encoder
def encode(out):
    _maybe_raise("encoder", out.split(" ")[0])
    return (out + "\n").encode("utf-8")
