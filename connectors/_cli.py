"""What every connector script in this directory shares: finding the
``wallaroo`` package and the client libraries, turning the command line into
a SourceConnector or SinkConnector, one-line error messages, and a clean
exit on SIGINT and SIGTERM.

A script is a module with a ``main()`` and this at its end::

    if __name__ == "__main__":
        _cli.run(main, __doc__)

``run`` prints the script's docstring for ``-h``/``--help`` (before any
import of the application), calls ``main()``, and exits with

- 0 after SIGINT or SIGTERM (``main``'s ``finally`` blocks close clients);
- 1 with ``<script>: error: <message>`` for a :class:`ScriptError`;
- 1 with the traceback for anything else;
- 2 for a command line that argparse refuses.
"""

import importlib
import os
import re
import select
import signal
import socket
import sys
import traceback

PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "connector"

# Debian's interpreter and the directory its python3-* packages live in.
_DEBIAN_PYTHON = "/usr/bin/python3"
_DEBIAN_PACKAGES = "/usr/lib/python3/dist-packages"


class ScriptError(Exception):
    """A problem the user can fix, reported as one line (exit status 1)."""


class Stop(BaseException):
    """SIGINT or SIGTERM arrived.

    A BaseException, like KeyboardInterrupt, so that the client libraries'
    ``except Exception`` blocks let it through.
    """


def say(message):
    """Print a status line, ``<script>: <message>``, to standard error."""
    print("{0}: {1}".format(PROG, message), file=sys.stderr, flush=True)


def ready(message):
    """Announce that the script is ready to move data (tests wait for it)."""
    say("ready: " + message)


def _import_wallaroo():
    try:
        return importlib.import_module("wallaroo.experimental")
    except ImportError:
        pass
    # Run from a checkout: the package is in ../pyapi beside this directory.
    here = os.path.dirname(os.path.realpath(__file__))
    pyapi = os.path.join(os.path.dirname(here), "pyapi")
    if os.path.isfile(os.path.join(pyapi, "wallaroo", "__init__.py")):
        sys.path.append(pyapi)
        return importlib.import_module("wallaroo.experimental")
    raise ScriptError(
        "cannot import the wallaroo package: put its directory on the path "
        "(PYTHONPATH=<wallaroo checkout>/pyapi) or install it "
        "(pip install <wallaroo checkout>/pyapi)")


def require(module, debian_package, pip_package):
    """Import a client library, or explain which package provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        where = "{0} (Python {1}.{2})".format(sys.executable,
                                              *sys.version_info[:2])
        message = ("{0} needs the Python module {1!r}, which {2} cannot "
                   "import ({3}): install Debian's {4} (apt-get install {4}) "
                   "or pip install {5}".format(PROG, module, where, e,
                                               debian_package, pip_package))
        installed = (os.path.isdir(os.path.join(_DEBIAN_PACKAGES, module))
                     or os.path.isfile(os.path.join(_DEBIAN_PACKAGES,
                                                    module + ".py")))
        if installed and os.path.realpath(sys.executable) != \
                os.path.realpath(_DEBIAN_PYTHON):
            message += ("; it is installed for {0}: run the script with "
                        "{0} {1} ...".format(_DEBIAN_PYTHON, sys.argv[0]))
        raise ScriptError(message)


def _connector(kind, required_params, optional_params):
    experimental = _import_wallaroo()
    cls = (experimental.SourceConnector if kind == "source"
           else experimental.SinkConnector)
    # The application module is imported with the script's argv; tell
    # import errors of the module itself (whose traceback matters) from a
    # module that is not there.
    args = list(sys.argv)
    name = experimental.parse_connector_args(args, required_params,
                                             optional_params).application
    try:
        return cls(args=args, required_params=required_params,
                   optional_params=optional_params)
    except ImportError as e:
        if getattr(e, "name", None) == name:
            raise ScriptError(
                "cannot import application module {0!r}: {1} (it must be in "
                "the current directory or on PYTHONPATH)".format(name, e))
        raise
    except experimental._ConnectorLookupError as e:
        raise ScriptError(str(e))
    except SystemExit as e:
        # Our own options were parsed above: this is the application's
        # argparse refusing the script's command line.
        if e.code not in (0, None):
            say("application_setup of {0!r} refused this command line; it "
                "must accept the script's options (argparse: "
                "parse_known_args) and get everything it requires".format(
                    name))
        raise


def source_connector(required_params=(), optional_params=()):
    """Parse the command line and return the application's SourceConnector."""
    return _connector("source", list(required_params), list(optional_params))


def sink_connector(required_params=(), optional_params=()):
    """Parse the command line and return the application's SinkConnector."""
    return _connector("sink", list(required_params), list(optional_params))


def wallaroo_address(connector, host=None, port=None):
    """``host:port`` where ``connector`` talks to Wallaroo."""
    return "{0}:{1}".format(host or connector._host, port or connector._port)


def connect(source):
    """Connect a SourceConnector to Wallaroo, saying so while it waits."""
    say("connecting to Wallaroo at {0}".format(wallaroo_address(source)))
    source.connect()


def _closed_by_peer(sock):
    """Whether Wallaroo closed the connection (it never sends anything)."""
    if sock is None:
        return False
    readable = select.select([sock], [], [], 0)[0]
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def write(source, message, event_time=0):
    """Write one message; if Wallaroo went away, reconnect and write it again.

    A connection Wallaroo has closed is noticed before writing (the kernel
    would accept one more write on it and drop it); a write that fails is
    sent again whole on the new connection, so the stream stays well
    framed. (0.6's scripts died here.)
    """
    try:
        if _closed_by_peer(source._sock):
            raise OSError("closed by Wallaroo")
        source.write(message, event_time)
        return
    except OSError as e:
        say("lost the connection to Wallaroo at {0} ({1}); "
            "reconnecting".format(wallaroo_address(source), e))
    source.close()
    connect(source)
    source.write(message, event_time)


def hide_password(text):
    """``text`` (a DSN or URL) with any password replaced by ``***``."""
    text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***",
                  text)
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def first_line(error):
    """The first line of an exception's message (libpq's run to several)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else repr(error)


def port_number(value, option):
    """``int(value)`` for a port option, or a ScriptError naming the option."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if not 0 <= port <= 65535:
        raise ScriptError("{0} must be a port number, got {1!r}".format(
            option, value))
    return port


def option(connector, param):
    """The command-line spelling of a parameter: ``--<connector>-<param>``."""
    return "--{0}-{1}".format(connector.params.connector_name, param)


def _stop(signum, frame):
    # A second signal while main() cleans up kills the process at once.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Stop(signum)


def run(main, doc):
    """Run a script's ``main()`` with the exit behaviour described above."""
    if any(a in ("-h", "--help") for a in sys.argv[1:]) and \
            "--connector" not in sys.argv:
        print((doc or "").strip())
        sys.exit(0)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        main()
    except Stop as stop:
        say("stopping ({0})".format(signal.Signals(stop.args[0]).name))
        sys.exit(0)
    except ScriptError as e:
        print("{0}: error: {1}".format(PROG, e), file=sys.stderr, flush=True)
        sys.exit(1)
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        print("{0}: error: stopped by the exception above".format(PROG),
              file=sys.stderr, flush=True)
        sys.exit(1)
