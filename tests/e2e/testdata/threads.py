"""Records the thread every user callback runs on.

Two sources merged: a TCP source (any number of connections) and a
generator ("g0" ... "g9", then None). Both go through a computation, a
key_by, a state computation (whose state class records its constructor)
and an encoder. Every callback, application_setup included, records
(kind, thread); a callback entered while another one is still running
records an overlap. The message "report" makes the encoder write one line
"REPORT <json>" with {"threads": {kind: [thread, ...]}, "overlaps": n}.
A thread is "<threading ident>/<OS thread id>" (the OS id is 0 where
Python cannot tell it).
"""

import json
import threading

import wallaroo

_seen = {}
_inside = [0]
_overlaps = [0]


def _thread():
    native = getattr(threading, "get_native_id", None)
    return "%d/%d" % (threading.current_thread().ident, native() if native else 0)


class _Recorded(object):
    """with _Recorded("kind"): records the thread and any overlap."""

    def __init__(self, kind):
        self.kind = kind

    def __enter__(self):
        if _inside[0]:
            _overlaps[0] += 1
        _inside[0] += 1
        _seen.setdefault(self.kind, set()).add(_thread())

    def __exit__(self, *exc):
        _inside[0] -= 1
        return False


def application_setup(args):
    with _Recorded("application_setup"):
        in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
        out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
        lines = wallaroo.source("Lines", wallaroo.TCPSourceConfig(in_host, in_port, decode)).to(upper)
        gen = wallaroo.source("Gen", wallaroo.GenSourceConfig(UpToNine())).to(upper)
        p = (lines.merge(gen).key_by(key).to(count)
             .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
        return wallaroo.build_application("Threads", p)


class UpToNine(object):
    def initial_value(self):
        with _Recorded("generator initial_value"):
            return "g0"

    def apply(self, v):
        with _Recorded("generator apply"):
            n = int(v[1:])
            return "g%d" % (n + 1) if n < 9 else None


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    with _Recorded("decoder"):
        return bs.decode("utf-8")


@wallaroo.computation(name="upper")
def upper(msg):
    with _Recorded("computation"):
        return msg.upper()


@wallaroo.key_extractor
def key(msg):
    with _Recorded("key extractor"):
        return msg


class Count(object):
    def __init__(self):
        with _Recorded("state constructor"):
            self.n = 0


@wallaroo.state_computation(name="count", state=Count)
def count(msg, c):
    with _Recorded("state computation"):
        c.n += 1
        return "%s %d" % (msg, c.n)


@wallaroo.encoder
def encode(out):
    with _Recorded("encoder"):
        if out.startswith("REPORT "):
            report = {"threads": dict((k, sorted(v)) for k, v in _seen.items()),
                      "overlaps": _overlaps[0]}
            return "REPORT " + json.dumps(report, sort_keys=True) + "\n"
        return out + "\n"
