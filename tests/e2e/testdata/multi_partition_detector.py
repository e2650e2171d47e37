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
--depth (only 1 is supported here); --gen-source: an internal generator
source instead of TCP, giving the keys "0000000" to "<partitions - 1>" the values
1, 2, 3, ... in turn (0.6's option); --partitions N (40); and, ours, for
the resilience tests: --gen-limit N stops the generator after each key
reached N, --gen-rate R paces it to about R messages per second;
--refuse-moved-state makes the state class unknown by name on this worker,
so that the state of keys moved here cannot be read (as if it ran
another version of the module): a grow whose joiner has it fails after
its state began to move; --die-exporting-state kills this worker
(SIGKILL) the first time one of its states is pickled, as when a grow or
shrink sends it to another worker, and --die-importing-state the first
time one is unpickled, as when it takes in a state moved to it: a
worker that crashes after the state began to move.
"""

import os
import signal
import struct
import time

import wallaroo

WINDOW = 4


def application_setup(args):
    return build(args, trace_id)


def build(args, first):
    """The application, with first (a computation, or a state
    computation keyed alike) as the step before TraceWindow."""
    depth = 1
    if "--depth" in args:
        depth = int(args[args.index("--depth") + 1])
    if depth != 1:
        raise ValueError("this multi_partition_detector supports --depth 1 only")
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
    if "--die-exporting-state" in args:
        TraceWindowState.die_exporting = True
    if "--die-importing-state" in args:
        TraceWindowState.die_importing = True
    if "--refuse-moved-state" in args:
        # (trace_window still creates new states: it holds the class.)
        globals().pop("TraceWindowState", None)

    def opt(name, default):
        if name in args:
            return int(args[args.index(name) + 1])
        return default
    if "--gen-source" in args:
        gen = KeyedSequence(opt("--partitions", 40), opt("--gen-limit", 0),
                            opt("--gen-rate", 0))
        p = wallaroo.source("Detector", wallaroo.GenSourceConfig(gen))
    else:
        in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
        p = wallaroo.source("Detector",
                            wallaroo.TCPSourceConfig(in_host, in_port, decode))
    p = (p.key_by(partition_key)
         .to(first)
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


class KeyedSequence(object):
    """Gives keys "0000000" .. "<keys - 1>" (seven digits, as the rescale
    tests' sender names them) the values 1, 2, 3, ... round-robin;
    stops after each key has limit values (0: never). With rate > 0 it
    sleeps now and then to keep to about rate messages per second."""

    def __init__(self, keys, limit, rate):
        self.keys = keys
        self.limit = limit
        self.rate = rate
        self.t0 = None

    def initial_value(self):
        return Message("%07d" % 0, 1)

    def apply(self, msg):
        k = int(msg.tag) + 1
        v = msg.value
        if k == self.keys:
            k, v = 0, v + 1
            if self.limit and v > self.limit:
                return None
        if self.rate:
            n = v * self.keys + k
            if n % 32 == 0:
                now = time.time()
                if self.t0 is None:
                    self.t0 = now - float(n) / self.rate
                ahead = self.t0 + float(n) / self.rate - now
                if ahead > 0:
                    time.sleep(min(ahead, 0.5))
        return Message("%07d" % k, v)


class TraceWindowState(object):
    """The last WINDOW values of one key, oldest first."""

    die_exporting = False
    die_importing = False

    def __init__(self):
        self.values = []

    def __getstate__(self):
        if self.die_exporting:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.__dict__

    def __setstate__(self, d):
        if self.die_importing:
            os.kill(os.getpid(), signal.SIGKILL)
        self.__dict__.update(d)

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
