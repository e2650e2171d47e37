"""wallaroo.experimental: connector frames, configs and the script runtime."""

from __future__ import absolute_import, print_function

import argparse
import datetime
import os
import pickle
import select
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import types
import unittest

import wallaroo
import wallaroo.experimental as ex
from wallaroo.tests._helpers import quiet_stderr, run_python

try:
    from StringIO import StringIO as _StringIO  # Python 2: str and unicode
except ImportError:
    from io import StringIO as _StringIO


@ex.stream_message_encoder
def encode_text(data):
    return data.encode("utf-8")


@ex.stream_message_decoder
def decode_text(bs):
    return bs.decode("utf-8")


@wallaroo.computation("upper")
def upper(data):
    return data.upper()


def frame(payload, event_time=0):
    return struct.pack("<Iq", len(payload) + 8, event_time) + payload


class UTC(datetime.tzinfo):
    """A fixed-offset zone; Python 2 has no datetime.timezone."""

    def __init__(self, hours=0):
        self._offset = datetime.timedelta(hours=hours)

    def utcoffset(self, dt):
        return self._offset

    def dst(self, dt):
        return datetime.timedelta(0)

    def tzname(self, dt):
        return "UTC%+d" % (self._offset.seconds // 3600)


class FrameTest(unittest.TestCase):

    def test_encoder_builds_a_full_frame(self):
        self.assertEqual(encode_text.encode("hi"), frame(b"hi"))
        self.assertEqual(encode_text.encode("hi", 1234), frame(b"hi", 1234))
        self.assertEqual(encode_text.encode("", event_time=-1), frame(b"", -1))
        self.assertIsInstance(encode_text, wallaroo.ConnectorEncoder)
        self.assertIsInstance(encode_text, wallaroo.Encoder)

    def test_datetime_event_time_is_milliseconds(self):
        aware = datetime.datetime(2018, 11, 30, 12, 0, 0, 123456, UTC())
        self.assertEqual(encode_text.encode("x", aware),
                         frame(b"x", 1543579200123))
        east = datetime.datetime(2018, 11, 30, 14, 0, 0, 123456, UTC(2))
        self.assertEqual(encode_text.encode("x", east),
                         frame(b"x", 1543579200123))
        naive = datetime.datetime(2018, 11, 30, 12, 0, 0, 5000)
        expected = int(time.mktime(naive.timetuple())) * 1000 + 5
        self.assertEqual(encode_text.encode("x", naive),
                         frame(b"x", expected))
        if hasattr(naive, "timestamp"):  # agrees with Python 3's definition
            self.assertEqual(expected, int(round(naive.timestamp() * 1000)))

    def test_encoder_errors(self):
        with self.assertRaises(TypeError):
            encode_text.encode("x", "soon")

        @ex.stream_message_encoder
        def returns_text(data):
            return u"text"
        if sys.version_info[0] >= 3:
            with self.assertRaises(TypeError) as ctx:
                returns_text.encode("x")
            self.assertIn("must return bytes", str(ctx.exception))

    def test_decoder(self):
        body = frame(b"hello", 99)[4:]
        self.assertEqual(decode_text.header_length(), 4)
        self.assertEqual(decode_text.payload_length(frame(b"hello")[:4]), 13)
        self.assertEqual(decode_text.decode(body), u"hello")
        self.assertEqual(decode_text.decoder().__name__, "decode_text")
        self.assertEqual(decode_text.decoder()(b"ab"), u"ab")
        self.assertEqual(decode_text.length_fmt, "<I")
        self.assertEqual(wallaroo._stock_length_fmt(decode_text), "<I")
        self.assertIsInstance(decode_text, wallaroo.ConnectorDecoder)
        self.assertIsInstance(decode_text, wallaroo.Decoder)

    def test_pickle_round_trips(self):
        enc = pickle.loads(pickle.dumps(encode_text))
        dec = pickle.loads(pickle.dumps(decode_text))
        self.assertEqual(enc.encode("a", 1), frame(b"a", 1))
        self.assertEqual(dec.decode(frame(b"a")[4:]), u"a")
        self.assertIs(type(enc), getattr(wallaroo, type(encode_text).__name__))

    def test_arity_checked(self):
        with self.assertRaises(wallaroo.WallarooParameterError):
            ex.stream_message_encoder(lambda a, b: a)
        with self.assertRaises(wallaroo.WallarooParameterError):
            ex.stream_message_decoder(3)


class ConfigTest(unittest.TestCase):

    def test_tuples(self):
        src = ex.SourceConnectorConfig("feed", encoder=encode_text,
                                       decoder=decode_text, port=7100)
        self.assertEqual(src.to_tuple(), ("source_connector", "feed",
                                          "127.0.0.1", "7100", encode_text,
                                          decode_text))
        sink = ex.SinkConnectorConfig("out", encode_text, decode_text, "7200",
                                      host="0.0.0.0")
        self.assertEqual(sink.to_tuple(), ("sink_connector", "out", "0.0.0.0",
                                           "7200", encode_text, decode_text))

    def test_in_a_pipeline(self):
        p = (wallaroo.source("feed", ex.SourceConnectorConfig(
            "feed", encode_text, decode_text, 1)).to(upper)
            .to_sink(ex.SinkConnectorConfig("out", encode_text, decode_text,
                                            2)))
        _, _, vs, _ = wallaroo.build_application("app", p)
        self.assertEqual(vs[0][0][2][0], "source_connector")
        self.assertEqual(vs[0][-1][1][0], "sink_connector")


class ArgsTest(unittest.TestCase):

    def test_parse(self):
        params = ex.parse_connector_args(
            ["prog", "--application-module", "celsius", "--connector",
             "feed", "--feed-host", "h", "--feed-port", "1", "--other", "x"],
            required_params=["host"], optional_params=["port", "password"])
        self.assertEqual(params.application, "celsius")
        self.assertEqual(params.connector_name, "feed")
        self.assertEqual((params.host, params.port, params.password),
                         ("h", "1", None))

    def test_usage_names_the_script(self):
        saved = sys.stderr
        sys.stderr = captured = _StringIO()
        try:
            with self.assertRaises(SystemExit):
                ex.parse_connector_args(
                    ["/opt/connectors/udp_source", "--application-module",
                     "m", "--connector", "feed"], required_params=["host"])
        finally:
            sys.stderr = saved
        self.assertIn("usage: udp_source", captured.getvalue())
        self.assertIn("--feed-host", captured.getvalue())

    def test_missing_required_exits_2(self):
        for args in (["p", "--connector", "feed"],
                     ["p", "--application-module", "m"],
                     ["p", "--application-module", "m", "--connector",
                      "feed"]):
            with quiet_stderr():
                with self.assertRaises(SystemExit) as ctx:
                    ex.parse_connector_args(args, required_params=["host"])
            self.assertEqual(ctx.exception.code, 2)


# A fake application module, registered in sys.modules for the runtime to
# import. Its sink connector sits inside to_sinks (not found by 0.6).
APP_MODULE = "wallaroo_tests_fake_connector_app"


def application_setup(args):
    parser = argparse.ArgumentParser(prog="fake")
    parser.add_argument("--source-port", default="0")
    parser.add_argument("--sink-port", default="0")
    opts = parser.parse_known_args(args)[0]
    p = (wallaroo.source("feed", ex.SourceConnectorConfig(
        "feed", encode_text, decode_text, opts.source_port))
        .to(upper)
        .to_sinks([wallaroo.TCPSinkConfig("127.0.0.1", "1",
                                          wallaroo.encoder(lambda d: d)),
                   ex.SinkConnectorConfig("results", encode_text,
                                          decode_text, opts.sink_port)]))
    return wallaroo.build_application("fake", p)


def setUpModule():
    module = types.ModuleType(APP_MODULE)
    module.application_setup = application_setup
    sys.modules[APP_MODULE] = module


def tearDownModule():
    sys.modules.pop(APP_MODULE, None)


def connector_args(name, *extra):
    return (["connector", "--application-module", APP_MODULE,
             "--connector", name] + list(extra))


# How long a test waits for something that should happen at once (a frame
# sent over loopback, a peer's close being seen). Only a failing test waits
# this long, so it is generous: the suite also runs beside busy processes.
PATIENCE = 30


class RecordingSelect(object):
    """Stands in for the ``select`` module inside wallaroo.experimental.

    Records the read set and timeout of every ``select`` call, so tests can
    check what ``SinkConnector.read`` waits on instead of timing it, and
    calls ``on_call(rlist, timeout)`` (if given) before each one.
    """

    error = select.error

    def __init__(self, on_call=None):
        self.calls = []
        self._on_call = on_call

    def select(self, rlist, wlist, xlist, timeout=None):
        self.calls.append((list(rlist), timeout))
        if self._on_call is not None:
            self._on_call(rlist, timeout)
        return select.select(rlist, wlist, xlist, timeout)


class patched(object):
    """Context manager: ``setattr(obj, name, value)``, undone on exit."""

    def __init__(self, obj, name, value):
        self._obj, self._name, self._value = obj, name, value

    def __enter__(self):
        self._saved = getattr(self._obj, self._name)
        setattr(self._obj, self._name, self._value)
        return self._value

    def __exit__(self, *exc):
        setattr(self._obj, self._name, self._saved)


def recv_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


class DiscoveryTest(unittest.TestCase):

    def test_finds_connectors_and_params(self):
        src = ex.SourceConnector(connector_args("feed", "--feed-topic", "t"),
                                 required_params=["topic"])
        self.assertEqual(src.params.topic, "t")
        self.assertIs(src._encoder, encode_text)
        sink = ex.SinkConnector(connector_args("results"))
        self.assertIs(sink._decoder, decode_text)

    def test_wrong_name_is_a_runtime_error(self):
        with self.assertRaises(RuntimeError) as ctx:
            ex.SourceConnector(connector_args("nope"))
        message = str(ctx.exception)
        self.assertIn("Unable to find a source connector with the name "
                      "'nope'", message)
        self.assertIn("'feed'", message)
        with self.assertRaises(RuntimeError) as ctx:
            ex.SinkConnector(connector_args("feed"))
        self.assertIn("Unable to find a sink connector with the name 'feed'",
                      str(ctx.exception))
        self.assertIn("'results'", str(ctx.exception))

    def test_bad_application_result(self):
        with self.assertRaises(RuntimeError):
            list(ex._connector_configs(None, "sink_connector"))

    def test_lookup_errors_have_their_own_class(self):
        # Scripts tell "no such connector" from a RuntimeError of the app.
        with self.assertRaises(ex._ConnectorLookupError):
            ex.SinkConnector(connector_args("nope"))
        self.assertTrue(issubclass(ex._ConnectorLookupError, RuntimeError))

    def test_module_without_application_setup(self):
        module = types.ModuleType("wallaroo_tests_no_setup")
        sys.modules[module.__name__] = module
        try:
            with self.assertRaises(RuntimeError) as ctx:
                ex.SourceConnector(["connector", "--application-module",
                                    module.__name__, "--connector", "feed"])
        finally:
            del sys.modules[module.__name__]
        self.assertIn("has no application_setup(args) function",
                      str(ctx.exception))

    def test_application_module_in_the_working_directory(self):
        # A script's directory heads sys.path, not the working directory;
        # the runtime must still find an application module there.
        work = tempfile.mkdtemp()
        try:
            with open(os.path.join(work, "cwd_connector_app.py"), "w") as f:
                f.write(CWD_APP)
            rc, out, err = run_python(
                "import os, sys\n"
                "sys.path = [p for p in sys.path\n"
                "            if p not in ('', os.getcwd())]\n"
                "sys.path.insert(0, {0!r})\n"
                "import wallaroo.experimental as ex\n"
                "src = ex.SourceConnector(['/x/script', "
                "'--application-module', 'cwd_connector_app', "
                "'--connector', 'here'])\n"
                "print(src._port)\n".format(PACKAGE_DIR), cwd=work)
        finally:
            shutil.rmtree(work)
        self.assertEqual((rc, out.strip()), (0, "7123"), err)


# The directory that holds the wallaroo package under test.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(
    wallaroo.__file__)))

CWD_APP = """
import wallaroo
import wallaroo.experimental as ex


@ex.stream_message_encoder
def enc(data):
    return data


@ex.stream_message_decoder
def dec(data):
    return data


def application_setup(args):
    p = (wallaroo.source("here", ex.SourceConnectorConfig("here", enc, dec,
                                                         7123))
         .to_sink(wallaroo.TCPSinkConfig("127.0.0.1", "1",
                                         wallaroo.encoder(lambda d: d))))
    return wallaroo.build_application("cwd app", p)
"""


class SourceConnectorTest(unittest.TestCase):

    def setUp(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]

    def tearDown(self):
        self.listener.close()

    def test_write_before_connect(self):
        src = ex.SourceConnector(connector_args("feed"))
        with self.assertRaises(RuntimeError) as ctx:
            src.write("x")
        self.assertIn("Please call connect before writing", str(ctx.exception))

    def test_round_trip_to_a_listener(self):
        src = ex.SourceConnector(connector_args(
            "feed", "--source-port", str(self.port)))
        src.connect()
        conn, _ = self.listener.accept()
        try:
            src.write("hello", event_time=5)
            src.write(u"w\u00f6rld")
            expected = frame(b"hello", 5) + frame(u"w\u00f6rld".encode("utf-8"))
            self.assertEqual(recv_exactly(conn, len(expected)), expected)
            src.close()
            self.assertEqual(conn.recv(1), b"")
        finally:
            conn.close()

    def test_connect_retries_while_refused(self):
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens on `port` now
        late = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        late.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sleeps = []

        class ListenOnFirstSleep(object):
            """connect's pause between attempts: listen, do not wait."""

            def sleep(self, seconds):
                if not sleeps:
                    late.bind(("127.0.0.1", port))
                    late.listen(1)
                sleeps.append(seconds)

        try:
            src = ex.SourceConnector(connector_args("feed"))
            with patched(ex, "time", ListenOnFirstSleep()):
                src.connect(port=port)
            # Refused once, paused a second, then connected.
            self.assertEqual(sleeps, [1])
            conn, _ = late.accept()
            conn.close()
            src.close()
        finally:
            late.close()


class SinkConnectorTest(unittest.TestCase):

    def setUp(self):
        self.sink = ex.SinkConnector(connector_args("results"))
        self.sink.listen()  # port "0" in the application: any free port
        self.address = self.sink._acceptor.getsockname()

    def tearDown(self):
        self.sink.close()

    def test_read_before_listen(self):
        with self.assertRaises(RuntimeError):
            ex.SinkConnector(connector_args("results")).read(timeout=0)

    def test_reads_frames_then_survives_the_peer_closing(self):
        client = socket.create_connection(self.address)
        data = (frame(b"one", 1) + frame(b"two") + frame(u"thr\u00e9e"
                                                         .encode("utf-8")))
        # Split awkwardly: inside a header, then inside a payload.
        client.sendall(data[:2])
        self.assertIsNone(self.sink.read(timeout=0.2))
        client.sendall(data[2:18])
        self.assertEqual(self.sink.read(timeout=PATIENCE), u"one")
        client.sendall(data[18:] + frame(b"partial")[:6])
        client.close()
        self.assertEqual(self.sink.read(timeout=PATIENCE), u"two")
        self.assertEqual(self.sink.read(timeout=PATIENCE), u"thr\u00e9e")

        # The close is seen by some later read (when is up to the kernel
        # and the scheduler); the partial frame is then discarded.
        deadline = time.time() + PATIENCE
        while self.sink._open or self.sink._buffers:
            self.assertLess(time.time(), deadline,
                            "the closed peer was never dropped")
            self.assertIsNone(self.sink.read(timeout=0.1))
        # Once dropped, the peer has left the select set, so waiting does
        # not spin on its EOF: read() waits on the listener alone.
        with patched(ex, "select", RecordingSelect()) as recorder:
            self.assertIsNone(self.sink.read(timeout=0.1))
        self.assertTrue(recorder.calls)
        for rlist, _ in recorder.calls:
            self.assertEqual(rlist, [self.sink._acceptor])

    def test_several_workers(self):
        first = socket.create_connection(self.address)
        try:
            second = socket.create_connection(self.address)
        except Exception:
            first.close()
            raise
        try:
            first.sendall(frame(b"a"))
            second.sendall(frame(b"b"))
            got = set([self.sink.read(timeout=PATIENCE),
                       self.sink.read(timeout=PATIENCE)])
            self.assertEqual(got, set([u"a", u"b"]))
            second.sendall(frame(b"c"))
            self.assertEqual(self.sink.read(timeout=PATIENCE), u"c")
        finally:
            first.close()
            second.close()

    def test_blocking_read_waits_for_a_frame(self):
        client = socket.create_connection(self.address)
        blocking = threading.Event()

        def note_blocking_select(rlist, timeout):
            if timeout is None:
                blocking.set()

        def send_once_blocked():
            # The frame goes out once read() waits with no timeout (or,
            # should it never, after PATIENCE: the test then fails below
            # instead of hanging).
            blocking.wait(PATIENCE)
            client.sendall(frame(b"late"))
        thread = threading.Thread(target=send_once_blocked)
        thread.start()
        try:
            with patched(ex, "select", RecordingSelect(note_blocking_select)):
                self.assertEqual(self.sink.read(), u"late")
            self.assertTrue(blocking.is_set())
        finally:
            thread.join()
            client.close()


if __name__ == "__main__":
    unittest.main()
