"""Multi partition detector, the behaviour of Wallaroo 0.6's correctness
app (testing/correctness/apps/multi_partition_detector, --depth 1, TCP
source), written to the Wallaroo 0.6 Python API for the rescale tests.

Input frames: U32 BE length, U64 BE value, key bytes (the partition, e.g.
"0000007"). Each message is routed by its key to a stateless TraceID step
(which appends ".TraceID" to the message's key tag), then by its key again
to the state TraceWindow, which keeps the last four values of the key and
appends ".TraceWindow". Every message produces one output:

    U32 BE length . "(<key>.TraceID.TraceWindow,[a,b,c,d])"

where [a,b,c,d] are the key's last up-to-four values, oldest first (so
"[1]", "[1,2]", "[1,2,3]", then four values). A test that sends each key
the values 1..N can prove from the output alone that no message was lost
or duplicated and that the state moved with its key.

Options (from the application's arguments, ignored by the engine):
--depth (only 1 is supported here).
"""

import struct

import wallaroo

WINDOW = 4


def application_setup(args):
    depth = 1
    if "--depth" in args:
        depth = int(args[args.index("--depth") + 1])
    if depth != 1:
        raise ValueError("this multi_partition_detector supports --depth 1 only")
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    p = wallaroo.source("Detector",
                        wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = (p.key_by(partition_key)
         .to(trace_id)
         .key_by(partition_key)
         .to(trace_window)
         .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
    return wallaroo.build_application("Multi Partition Detector", p)


class Message(object):
    """A value on its way through the pipeline: the key tag (the key plus
    the names of the stages that saw it) and the value (a number, then the
    window)."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value


class TraceWindowState(object):
    """The last WINDOW values of one key, oldest first."""

    def __init__(self):
        self.values = []

    def push(self, value):
        self.values.append(value)
        if len(self.values) > WINDOW:
            self.values = self.values[-WINDOW:]


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    value = struct.unpack(">Q", bs[:8])[0]
    key = bs[8:]
    if not isinstance(key, str):  # Python 3: bytes -> str
        key = key.decode("utf-8")
    return Message(key, value)


@wallaroo.key_extractor
def partition_key(msg):
    return msg.tag.split(".")[0]


@wallaroo.computation(name="TraceID")
def trace_id(msg):
    return Message(msg.tag + ".TraceID", msg.value)


@wallaroo.state_computation(name="TraceWindow", state=TraceWindowState)
def trace_window(msg, state):
    state.push(msg.value)
    return Message(msg.tag + ".TraceWindow", list(state.values))


@wallaroo.encoder
def encode(msg):
    text = "(%s,[%s])" % (msg.tag, ",".join("%d" % v for v in msg.value))
    return struct.pack(">I", len(text)) + text.encode("utf-8")
