"""Pipelines made from the command line, as Wallaroo 0.6's topology
suite made them: each of --stateless, --state, --key-by-stateless and
--key-by-state (in the order given, any number of times) adds a step;
every computation appends its name to the message's tags, so the output
says which steps ran, in which order.

Input: frames of a big-endian u64 value followed by the key's bytes.
Output: one line per message, "<key> <value> <tags, comma-separated>".
The computations are made at start-up and filed in topo_components
(their module), one function serving as a computation and as a state
computation alike (def f(data, state=None)), as 0.6's generator did.
"""

import argparse
import struct

import wallaroo

import topo_components as comps


def application_setup(args):
    parser = argparse.ArgumentParser(prog="topo_gen")
    for flag in ("stateless", "state", "key-by-stateless", "key-by-state"):
        parser.add_argument("--" + flag, dest="steps", action="append_const",
                            const=flag)
    opts, _ = parser.parse_known_args(args[1:])
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    p = wallaroo.source("Topology", wallaroo.TCPSourceConfig(in_host, in_port, decode))
    for i, step in enumerate(opts.steps or []):
        if step.startswith("key-by-"):
            p = p.key_by(key_of)
            step = step[len("key-by-"):]
        p = p.to(make_step(i, step))
    p = p.to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode))
    return wallaroo.build_application("Topology", p)


def make_step(i, kind):
    name = "%s_%d" % (kind, i)

    def step(data, state=None):
        if state is not None:
            state.count += 1
        data.tags.append(name)
        return data
    comps.register(name, step)
    if kind == "state":
        return wallaroo.state_computation(name=name, state=comps.Seen)(step)
    return wallaroo.computation(name=name)(step)


@wallaroo.key_extractor
def key_of(data):
    return data.key


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    value = struct.unpack(">Q", bs[:8])[0]
    return comps.Message(bs[8:].decode("ascii"), value)


@wallaroo.encoder
def encode(data):
    return "%s %d %s\n" % (data.key, data.value, ",".join(data.tags))
