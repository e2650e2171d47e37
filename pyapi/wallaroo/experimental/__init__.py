# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Connectors: Wallaroo 0.6's experimental bridge to external systems.

A *connector* is a separate process (a "connector script") that moves data
between Wallaroo and some other system. The application declares one with
:class:`SourceConnectorConfig` or :class:`SinkConnectorConfig`; Wallaroo
listens for a source connector and connects to a sink connector.

Frames on the wire (no handshake, no acknowledgements)::

    u32 little-endian  L = 8 + len(payload)
    i64 little-endian  event time, milliseconds since the epoch (0 = none)
    L - 8 bytes        payload

A source connector script::

    from wallaroo.experimental import SourceConnector

    connector = SourceConnector(required_params=["host", "port"])
    connector.connect()
    for line in read_lines(connector.params.host, int(connector.params.port)):
        connector.write(line)

run as ``my_source --application-module celsius --connector celsius_feed
--celsius_feed-host 127.0.0.1 --celsius_feed-port 8801``. The script imports
the application module, calls its ``application_setup`` with the script's
own argv and uses the encoder, host and port of the connector with that name.

Improvements over 0.6 (each is marked in the code): a sink connector inside
``to_sinks`` is found; a peer that closes is dropped from ``read``'s
``select`` set instead of making it spin; the "not found" error lists the
connectors the application does define; the application module is also
found in the working directory; ``listen`` queues more than one worker.
"""

from __future__ import absolute_import, division, print_function

import argparse
import errno
import importlib
import os
import select
import socket
import struct
import sys
import time

import wallaroo


# ---------------------------------------------------------------------------
# Decorators and configurations (seen by the application and the host).

def stream_message_decoder(func):
    """Declare the decoder of connector frames: ``f(payload_bytes)`` -> message.

    The result has ``header_length()`` (4), ``payload_length(header)``
    (little-endian u32), ``decode(frame_body)`` (drops the 8-byte event time
    and calls ``f`` on the payload) and ``decoder()`` (returns ``f``).
    """
    name = wallaroo._func_name(func)
    wallaroo._validate_arity_compatability(name, func, 1)
    methods = {"header_length": wallaroo._get_header_length,
               "decode": wallaroo._connector_decode,
               "decoder": wallaroo._connector_decoder}
    cls = wallaroo._wallaroo_wrap(name, func, wallaroo.ConnectorDecoder,
                                  methods)
    return cls()


def stream_message_encoder(func):
    """Declare the encoder of connector frames: ``f(message)`` -> payload bytes.

    The result's ``encode(message, event_time=0)`` returns a complete frame.
    ``event_time`` is milliseconds since the epoch or a ``datetime``.
    """
    name = wallaroo._func_name(func)
    wallaroo._validate_arity_compatability(name, func, 1)
    cls = wallaroo._wallaroo_wrap(name, func, wallaroo.ConnectorEncoder,
                                  {"encode": wallaroo._connector_encode})
    return cls()


class _ConnectorConfig(object):
    _kind = None

    def __init__(self, name, encoder, decoder, port, host="127.0.0.1"):
        what = type(self).__name__
        wallaroo._validate_name(what, name)
        self._host, self._port = wallaroo._validate_address(what, host, port)
        self._name = name
        self._encoder = encoder
        self._decoder = decoder

    def to_tuple(self):
        return (self._kind, self._name, self._host, str(self._port),
                self._encoder, self._decoder)


class SourceConnectorConfig(_ConnectorConfig):
    """A source fed by a connector script.

    ``("source_connector", name, host, port, encoder, decoder)``: Wallaroo
    listens on ``host:port`` and decodes frames with ``decoder`` (a
    :func:`stream_message_decoder`); the script frames with ``encoder``
    (a :func:`stream_message_encoder`).
    """
    _kind = "source_connector"


class SinkConnectorConfig(_ConnectorConfig):
    """A sink drained by a connector script.

    ``("sink_connector", name, host, port, encoder, decoder)``: every worker
    connects to ``host:port`` and writes ``encoder.encode(data)``; the
    script reads frames with ``decoder``.
    """
    _kind = "sink_connector"


# ---------------------------------------------------------------------------
# Connector script runtime.

class UnexpectedSocketError(Exception):
    """The listening socket of a SinkConnector reported an error."""


class _ConnectorLookupError(RuntimeError):
    """The application module does not define the connector asked for.

    A RuntimeError, as in 0.6; its own class so that scripts can tell it
    from a RuntimeError raised by the application's code.
    """


def parse_connector_args(args, required_params=None, optional_params=None):
    """Parse a connector script's command line.

    Options: ``--application-module`` and ``--connector`` (both required),
    then ``--<connector>-<param>`` for each parameter (stored as ``param``).
    Unknown options are ignored. A missing required option prints usage
    and exits with status 2.

    :returns: an ``argparse.Namespace`` with ``application``,
        ``connector_name`` and one attribute per parameter.
    """
    required_params = list(required_params or [])
    optional_params = list(optional_params or [])
    prog = "connector"
    if args and not args[0].startswith("-"):
        prog = os.path.basename(args[0])  # the script, as in sys.argv
    pre = argparse.ArgumentParser(prog=prog, add_help=False)
    pre.add_argument("--connector", dest="connector_name")
    connector = pre.parse_known_args(args)[0].connector_name

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--application-module", dest="application",
                        required=True,
                        help="the Wallaroo application module")
    parser.add_argument("--connector", dest="connector_name", required=True,
                        help="the name of the connector in the application")
    if connector is not None:
        for param in required_params:
            parser.add_argument("--{0}-{1}".format(connector, param),
                                dest=param, required=True)
        for param in optional_params:
            parser.add_argument("--{0}-{1}".format(connector, param),
                                dest=param)
    return parser.parse_known_args(args)[0]


def _connector_configs(app, kind):
    """Yield the config tuples of ``kind`` found in an application tuple."""
    try:
        nodes = app[2]
        iter(nodes)
    except (TypeError, IndexError, KeyError):
        raise _ConnectorLookupError(
            "application_setup must return the result of "
            "wallaroo.build_application, got {0!r}".format(app))
    for stages in nodes:
        for stage in stages:
            if stage[0] == "source":
                configs = [stage[2]]
            elif stage[0] == "to_sink":
                configs = [stage[1]]
            elif stage[0] == "to_sinks":
                # Improvement over 0.6: sinks inside to_sinks were not found.
                configs = stage[1]
            else:
                continue
            for config in configs:
                if config and config[0] == kind:
                    yield config


def _import_application(name):
    """Import the application module from sys.path or the working directory.

    A script's own directory, not the working directory, heads ``sys.path``
    (``connectors/udp_source`` puts ``connectors/`` there), so the working
    directory is appended when it is missing: an application module beside
    the user is found as the engine finds it. Improvement over 0.6, which
    needed the directory on PYTHONPATH.
    """
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)
    return importlib.import_module(name)


def _load_connector(args, required_params, optional_params, kind):
    args = args or sys.argv
    params = parse_connector_args(args, required_params, optional_params)
    module = _import_application(params.application)
    setup = getattr(module, "application_setup", None)
    if not callable(setup):
        raise _ConnectorLookupError(
            "application module {0!r} ({1}) has no application_setup("
            "args) function".format(params.application,
                                    getattr(module, "__file__", "?")))
    app = setup(args)
    configs = list(_connector_configs(app, kind))
    for config in configs:
        if config[1] == params.connector_name:
            return params, config
    what = kind.replace("_", " ")
    raise _ConnectorLookupError(
        "Unable to find a {0} with the name {1!r} in application module {2!r}"
        " (its {0}s: {3})".format(
            what, params.connector_name, params.application,
            ", ".join(repr(c[1]) for c in configs) or "none"))


class SourceConnector(object):
    """The runtime of a source connector script: frames messages to Wallaroo.

    :arg args: the command line (default ``sys.argv``); see
        :func:`parse_connector_args`.
    :arg required_params: names of the script's required ``--<connector>-*``
        options.
    :arg optional_params: names of its optional options.
    :raises RuntimeError: if the application has no source connector of
        that name.

    ``params`` holds the parsed options.
    """

    def __init__(self, args=None, required_params=None, optional_params=None):
        self.params, config = _load_connector(
            args, required_params, optional_params, "source_connector")
        _, self._name, self._host, self._port, self._encoder, _ = config
        self._sock = None

    def connect(self, host=None, port=None):
        """Connect to Wallaroo, retrying every second while it refuses."""
        address = (host or self._host, int(port or self._port))
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.connect(address)
            except socket.error as e:
                sock.close()
                if e.errno != errno.ECONNREFUSED:
                    raise
                time.sleep(1)
                continue
            self._sock = sock
            return

    def write(self, message, event_time=0):
        """Encode ``message`` as one frame and send it."""
        if self._sock is None:
            raise RuntimeError("Please call connect before writing")
        self._sock.sendall(self._encoder.encode(message, event_time))

    def close(self):
        """Close the connection to Wallaroo (``connect`` may be called again)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


_HEADER = struct.Struct("<I")


class SinkConnector(object):
    """The runtime of a sink connector script: reads frames from Wallaroo.

    Arguments as for :class:`SourceConnector`; the application must have a
    sink connector (in ``to_sink`` or ``to_sinks``) of the given name.
    """

    def __init__(self, args=None, required_params=None, optional_params=None):
        self.params, config = _load_connector(
            args, required_params, optional_params, "sink_connector")
        _, self._name, self._host, self._port, _, self._decoder = config
        self._acceptor = None
        self._open = []     # accepted connections still open
        self._buffers = {}  # accepted connection -> bytes not yet decoded

    def listen(self, host=None, port=None, backlog=16):
        """Listen for the workers' connections (``SO_REUSEADDR``).

        Host and port default to those of the application's config.
        """
        # Improvement over 0.6: its default backlog of 0 queues a single
        # connection, so with several workers the others waited for TCP to
        # retransmit their SYN (a second or more each).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host or self._host,
                   int(self._port if port is None else port)))
        sock.listen(backlog)
        sock.setblocking(False)
        self._acceptor = sock

    def read(self, timeout=None):
        """Return the next decoded message from any connection.

        Blocks until one frame is complete, or for ``timeout`` seconds and
        then returns None. When a peer closes its connection, the complete
        frames it sent are still returned; a partial frame is discarded.

        :raises UnexpectedSocketError: if the listening socket fails.
        """
        if self._acceptor is None:
            raise RuntimeError("Please call listen before reading")
        deadline = None if timeout is None else time.time() + timeout
        while True:
            for conn in list(self._buffers):
                payload = self._pop_frame(conn)
                if payload is not None:
                    return self._decoder.decode(payload)
                if conn not in self._open:
                    # closed by the peer; only a partial frame is left
                    del self._buffers[conn]
            wait = None
            if deadline is not None:
                wait = max(deadline - time.time(), 0)
            socks = [self._acceptor] + self._open
            try:
                readable, _, broken = select.select(socks, [], socks, wait)
            except select.error as e:  # Python 2 does not retry on EINTR
                if e.args[0] == errno.EINTR:
                    continue
                raise
            if not readable and not broken:
                if deadline is not None and time.time() >= deadline:
                    return None
                continue
            if self._acceptor in broken:
                raise UnexpectedSocketError(
                    "the listening socket of sink connector {0!r} "
                    "failed".format(self._name))
            for conn in broken:
                self._drop(conn)
            for sock in readable:
                if sock is self._acceptor:
                    self._accept()
                elif sock in self._open:
                    self._receive(sock)

    def close(self):
        """Close the listener and every accepted connection."""
        for conn in list(self._open):
            self._drop(conn)
        self._buffers.clear()
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None

    def _accept(self):
        try:
            conn, _ = self._acceptor.accept()
        except socket.error as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK,
                           errno.ECONNABORTED):
                return
            raise
        conn.setblocking(False)
        self._open.append(conn)
        self._buffers[conn] = b""

    def _receive(self, conn):
        try:
            data = conn.recv(4096)
        except socket.error as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return
            data = b""  # reset or similar: treat as closed
        if not data:
            self._drop(conn)
            return
        self._buffers[conn] += data

    def _pop_frame(self, conn):
        buf = self._buffers[conn]
        if len(buf) < _HEADER.size:
            return None
        size = _HEADER.unpack(buf[:_HEADER.size])[0]
        end = _HEADER.size + size
        if len(buf) < end:
            return None
        self._buffers[conn] = buf[end:]
        return buf[_HEADER.size:end]

    def _drop(self, conn):
        # Improvement over 0.6: a closed peer stayed in the select set and
        # made read() spin at full CPU. Its buffer is kept until drained.
        if conn in self._open:
            self._open.remove(conn)
        conn.close()
