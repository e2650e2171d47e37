# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""The Wallaroo 0.6 Python API.

An application module imports this package, builds a pipeline and returns
the result of :func:`build_application` from its ``application_setup(args)``::

    import wallaroo

    def application_setup(args):
        in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
        out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
        p = (wallaroo.source("Reverse",
                             wallaroo.TCPSourceConfig(in_host, in_port,
                                                      decode))
             .to(reverse)
             .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
        return wallaroo.build_application("Reverse Word", p)

    @wallaroo.decoder(header_length=4, length_fmt=">I")
    def decode(bs):
        return bs.decode("utf-8")

    @wallaroo.computation(name="reverse")
    def reverse(data):
        return data[::-1]

    @wallaroo.encoder
    def encode(data):
        return (data + "\\n").encode("utf-8")

The public names, the generated class names (which pickle relies on) and the
application tuple are those of Wallaroo 0.6.0. Where this module deliberately
differs from 0.6.0 a comment starting with "Improvement over 0.6:" says so;
in short: every API error is a WallarooParameterError whose message says what
was expected and what was given (0.6 printed the message and raised an empty
exception, or an AttributeError on Python 3), arity checks work on every
Python from 2.7 to 3.13, and more mistakes are caught when the application is
built rather than when the first message arrives.

One source file serves Python 2.7 and 3.x: no annotations, f-strings,
``nonlocal`` or keyword-only syntax.
"""

from __future__ import absolute_import, division, print_function

import argparse
import calendar
import collections
import datetime
import inspect
import struct
import sys
import time

try:  # Python 2: the C pickler writes the same format, much faster.
    import cPickle as pickle
except ImportError:
    import pickle

__version__ = "0.6.0"

__all__ = [
    "serialize", "deserialize", "source", "build_application",
    "tcp_parse_input_addrs", "tcp_parse_output_addrs",
    "kafka_parse_source_options", "kafka_parse_sink_options",
    "attach_to_module", "Pipeline",
    "computation", "computation_multi", "state_computation",
    "state_computation_multi", "key_extractor", "decoder", "encoder",
    "BaseWrapped", "Computation", "ComputationMulti", "StateComputation",
    "StateComputationMulti", "KeyExtractor", "Encoder", "Decoder",
    "OctetDecoder", "OctetEncoder", "ConnectorDecoder", "ConnectorEncoder",
    "WallarooParameterError",
    "TCPSourceConfig", "GenSourceConfig", "TCPSinkConfig",
    "CustomKafkaSourceCLIParser", "CustomKafkaSinkCLIParser",
    "DefaultKafkaSourceCLIParser", "DefaultKafkaSinkCLIParser",
]

_PY2 = sys.version_info[0] == 2

if _PY2:
    _string_types = (str, unicode)  # noqa: F821 (Python 2 only)
    _integer_types = (int, long)  # noqa: F821 (Python 2 only)
else:
    _string_types = (str, bytes)
    _integer_types = (int,)


# ---------------------------------------------------------------------------
# Import-time side effect: unbuffered stdout/stderr under pipes.

class _Unbuffered(object):
    """Wraps a text stream so that every write is flushed at once.

    The test harness and the host read a worker's stdout through a pipe;
    without this, ``print`` output from user code would sit in a buffer.
    Everything other than ``write``/``writelines`` is forwarded.
    """

    def __init__(self, stream):
        self._stream = stream

    def write(self, data):
        self._stream.write(data)
        self._stream.flush()

    def writelines(self, lines):
        self._stream.writelines(lines)
        self._stream.flush()

    def __getattr__(self, attr):
        return getattr(self._stream, attr)


def _unbuffer_if_piped(name):
    stream = getattr(sys, name, None)
    if stream is None or isinstance(stream, _Unbuffered):
        return
    try:
        is_tty = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or already closed
        return
    if not is_tty:
        setattr(sys, name, _Unbuffered(stream))


_unbuffer_if_piped("stdout")
_unbuffer_if_piped("stderr")


# ---------------------------------------------------------------------------
# Errors and serialisation.

class WallarooParameterError(Exception):
    """Raised when the application is built with invalid arguments.

    The message starts with ``API_Error:`` (the 0.6 wording, kept for anyone
    who searches logs for it) and says what was expected and what was given.
    """


def _api_error(message, *args):
    return WallarooParameterError("API_Error: " + message.format(*args))


def serialize(o):
    """Pickle ``o`` with the interpreter's default protocol.

    This is what the host uses for Python values that leave the interpreter
    (another worker, a checkpoint) when the application module does not
    define its own ``serialize``/``deserialize``.
    """
    return pickle.dumps(o)


def deserialize(bs):
    """Unpickle bytes produced by :func:`serialize`."""
    return pickle.loads(bs)


# ---------------------------------------------------------------------------
# Marker / base classes. The methods the host calls are put on the classes
# generated by the decorators (see _wallaroo_wrap); these bases only mark
# the kind, exactly as in 0.6, so that "multi" can be told from "single" by
# hasattr(obj, "compute_multi") alone.

class BaseWrapped(object):
    """Base of every object the decorators return.

    Calling a decorated object returns the object itself, so ``.to(f)`` and
    ``.to(f())`` are the same thing and calling it never runs user code.
    """

    def __call__(self, *args, **kwargs):
        return self

    def __repr__(self):
        func = type(self).__dict__.get("_user_func")
        if func is None:
            return object.__repr__(self)
        return "<wallaroo.{0} wrapping {1}>".format(
            type(self).__name__, _f_repr(func.__get__(None, type(self))))


class Computation(BaseWrapped):
    """Marker for ``@computation``: ``name()`` and ``compute(data)``."""
    _is_multi = False


class ComputationMulti(Computation):
    """Marker for ``@computation_multi``: ``compute_multi(data)`` returns a list."""
    _is_multi = True


class StateComputation(Computation):
    """Marker for ``@state_computation``: ``compute(data, state)``, ``initial_state()``."""


class StateComputationMulti(StateComputation, ComputationMulti):
    """Marker for ``@state_computation_multi``: ``compute_multi(data, state)``."""


class KeyExtractor(BaseWrapped):
    """Marker for ``@key_extractor``: ``extract_key(data)``."""


class Encoder(BaseWrapped):
    """Marker for every encoder."""


class Decoder(BaseWrapped):
    """Marker for every decoder."""


def _payload_length_from_fmt(self, bs):
    """Unpack the frame header ``bs`` with ``self.length_fmt``.

    This one function object is the stock ``payload_length`` of both
    OctetDecoder and ConnectorDecoder. A host that finds it unchanged on a
    decoder may frame the stream itself from ``header_length()`` and
    ``length_fmt`` instead of calling into Python for every header
    (see :func:`_stock_length_fmt`).
    """
    return struct.unpack(self.length_fmt, bs)[0]


class OctetDecoder(Decoder):
    """Marker for ``@decoder``: length-prefixed TCP framing.

    ``header_length()`` bytes of header, ``payload_length(header)`` bytes of
    payload, then ``decode(payload)``. ``length_fmt`` is the ``struct``
    format of the header.
    """
    payload_length = _payload_length_from_fmt


class OctetEncoder(Encoder):
    """Marker for ``@encoder``: ``encode(data)`` returns the bytes to write."""


class ConnectorDecoder(Decoder):
    """Marker for ``@wallaroo.experimental.stream_message_decoder``.

    Frames are a 4-byte little-endian length ``L``, then ``L`` bytes: an
    8-byte event time (dropped by ``decode``) followed by the payload.
    """
    length_fmt = "<I"
    _header_length = 4
    payload_length = _payload_length_from_fmt


class ConnectorEncoder(Encoder):
    """Marker for ``@wallaroo.experimental.stream_message_encoder``.

    ``encode(data, event_time=0)`` returns a complete connector frame.
    """


def _stock_length_fmt(decoder):
    """Return ``decoder.length_fmt`` if its ``payload_length`` is the stock one.

    For a host: when this returns a format string, ``payload_length(header)``
    is exactly ``struct.unpack(fmt, header)[0]`` and need not be called from
    the framing loop. Returns None for any decoder that brings its own
    ``payload_length`` (in its class or on the instance) or has no
    ``length_fmt``.
    """
    method = getattr(type(decoder), "payload_length", None)
    method = getattr(method, "__func__", method)  # Python 2 unbound method
    if method is not _payload_length_from_fmt:
        return None
    if "payload_length" in getattr(decoder, "__dict__", {}):
        return None
    fmt = getattr(decoder, "length_fmt", None)
    if not isinstance(fmt, str):
        return None
    return fmt


# ---------------------------------------------------------------------------
# Generated classes and pickling.

# How many times each decorator kind has been used; gives the "_<n>" of the
# generated class names. Every worker imports the same module and so numbers
# its decorations the same way, which is what makes pickled references match.
_C = collections.Counter()


def _func_name(func):
    name = getattr(func, "__name__", None)
    if not isinstance(name, str):
        name = type(func).__name__
    return name


def attach_to_module(cls, cls_name, func, idx=None):
    """Name a generated class and register it on the ``wallaroo`` module.

    The class becomes ``wallaroo.<cls_name>_<idx>__<function name>`` (the
    ``_<idx>`` part is left out when ``idx`` is falsy), so pickle can find it
    again by that name.
    """
    if idx:
        name = "{0}_{1}__{2}".format(cls_name, idx, _func_name(func))
    else:
        name = "{0}__{1}".format(cls_name, _func_name(func))
    cls.__name__ = name
    if hasattr(cls, "__qualname__"):
        cls.__qualname__ = name
    cls.__module__ = __name__
    globals()[name] = cls
    return cls


def _wallaroo_wrap(name, func, base_cls, attrs=None):
    """Create, name and register a class of kind ``base_cls`` for ``func``.

    ``attrs`` (a dict) become class attributes (the methods the host calls
    and the decoration's settings). Everything lives on the class, so an instance's
    ``__dict__`` is empty and pickles as a bare reference to the class.
    """
    _C[base_cls] += 1
    namespace = dict(attrs or {})
    namespace["_wallaroo_name"] = name
    # staticmethod: a plain function stored on a class would be turned into
    # a method and receive `self`.
    namespace["_user_func"] = staticmethod(func)
    namespace["__doc__"] = getattr(func, "__doc__", None)
    namespace["__module__"] = __name__
    cls = type(str(base_cls.__name__), (base_cls,), namespace)
    return attach_to_module(cls, base_cls.__name__, func, _C[base_cls])


# ---------------------------------------------------------------------------
# Arity checks.

def _f_repr(func):
    """Render a user callable for error messages: <function 'mod.qual' line N>."""
    target = getattr(func, "__func__", func)  # bound method -> function
    code = getattr(target, "__code__", None)
    qualname = getattr(target, "__qualname__", None) or getattr(
        target, "__name__", None)
    if code is None or qualname is None:
        return repr(func)
    module = getattr(target, "__module__", None)
    if module:
        qualname = module + "." + qualname
    return "<function '{0}' line {1}>".format(qualname, code.co_firstlineno)


class _Params(object):
    """How a callable can be called positionally."""

    def __init__(self, required, positional, varargs, kwonly_required):
        self.required = required          # positional params without default
        self.positional = positional      # all positional params
        self.varargs = varargs            # has *args
        # names of keyword-only parameters without default (the host
        # passes everything positionally, so these can never be filled)
        self.kwonly_required = kwonly_required

    def accepts(self, n):
        if self.kwonly_required:
            return False
        return self.required <= n and (self.varargs or n <= self.positional)

    def describe(self):
        if self.kwonly_required:
            return ("has keyword-only parameter(s) without a default: "
                    + ", ".join(self.kwonly_required))
        if self.varargs:
            return "takes at least {0} positional parameter(s)".format(
                self.required)
        if self.required == self.positional:
            return "takes {0} positional parameter(s)".format(self.required)
        return "takes {0} to {1} positional parameters".format(
            self.required, self.positional)


def _params_py3(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    P = inspect.Parameter
    required = positional = 0
    varargs = False
    kwonly_required = []
    for p in sig.parameters.values():
        if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
            positional += 1
            if p.default is P.empty:
                required += 1
        elif p.kind == P.VAR_POSITIONAL:
            varargs = True
        elif p.kind == P.KEYWORD_ONLY and p.default is P.empty:
            kwonly_required.append(p.name)
    return _Params(required, positional, varargs, kwonly_required)


def _params_py2(obj):
    # getargspec counts `self` of a method; drop it when it is already bound.
    if inspect.isfunction(obj):
        target, skip = obj, 0
    elif inspect.ismethod(obj):
        target, skip = obj, (1 if obj.__self__ is not None else 0)
    elif inspect.isclass(obj):
        target, skip = getattr(obj, "__init__", None), 1
    else:
        target, skip = getattr(obj, "__call__", None), 1
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        return None  # builtins, slot wrappers, partials: cannot inspect
    try:
        spec = inspect.getargspec(target)
    except TypeError:
        return None
    positional = max(len(spec.args) - skip, 0)
    required = max(positional - len(spec.defaults or ()), 0)
    return _Params(required, positional, spec.varargs is not None, [])


# Improvement over 0.6: 0.6 called inspect.getargspec on every Python, which
# Python 3.11 removed, rejected functions with annotations or keyword-only
# parameters on Python 3, counted `self` of bound methods, could not inspect
# callable instances, ignored *args, and on Python 3 failed with an
# AttributeError (a misplaced `.format`). Here Python 3 uses
# inspect.signature and Python 2 inspect.getargspec; both raise
# WallarooParameterError with the full message. A callable that cannot be
# inspected at all (some builtins) is accepted, as it may well be valid.
_params = _params_py2 if _PY2 else _params_py3


def _validate_arity_compatability(name, obj, arity):
    """Check that ``obj`` can be called with ``arity`` positional arguments.

    :arg name: how the user knows the function (used in the message).
    :raises WallarooParameterError: if ``obj`` is not callable or cannot be
        called with exactly ``arity`` positional arguments.
    """
    if not callable(obj):
        raise _api_error("Expected a callable object but got a {0!r} for {1}",
                         obj, name)
    params = _params(obj)
    if params is not None and not params.accepts(arity):
        raise _api_error(
            "Incompatible function arity, your function {0} must have {1} "
            "parameter(s). {2} {3}.", name, arity, _f_repr(obj),
            params.describe())


def _validate_name(what, name):
    # Improvement over 0.6: the host needs a string name; 0.6 accepted
    # anything here and crashed later. For decorators the usual cause is a
    # missing pair of parentheses (`@computation` for `@computation("name")`).
    if not isinstance(name, _string_types):
        hint = ""
        if callable(name):
            hint = (" Write @wallaroo.{0}(\"my name\") above the "
                    "function.".format(what))
        raise _api_error("{0} expects a name string, got {1!r}.{2}",
                         what, name, hint)


# ---------------------------------------------------------------------------
# Methods of the generated classes. Shared functions that read the class
# attributes set by _wallaroo_wrap.

def _name(self):
    return self._wallaroo_name


def _compute(self, data):
    return self._user_func(data)


def _compute_multi(self, data):
    return self._user_func(data)


def _compute_state(self, data, state):
    return self._user_func(data, state)


def _compute_multi_state(self, data, state):
    return self._user_func(data, state)


def _initial_state(self):
    return self._state_factory()


def _extract_key(self, data):
    key = self._user_func(data)
    # 0.6 behaviour: an int key (bool included; not a Python 2 long) becomes
    # a one-character string. chr() on Python 2 takes 0..255 only.
    if isinstance(key, int):
        key = chr(key)
    return key


def _get_header_length(self):
    return self._header_length


def _decode(self, bs):
    return self._user_func(bs)


def _encode(self, data):
    return self._user_func(data)


# ---------------------------------------------------------------------------
# Decorators.

def computation(name):
    """Declare a stateless computation: ``f(data)`` returns one output or None.

    :arg name: the step name shown in metrics and queries.
    """
    _validate_name("computation", name)

    def wrapped(func):
        _validate_arity_compatability(name, func, 1)
        cls = _wallaroo_wrap(name, func, Computation,
                             {"name": _name, "compute": _compute,
                              "initial_state": None, "is_stateful": False})
        return cls()
    return wrapped


def computation_multi(name):
    """Declare a stateless computation returning a list of outputs (or None)."""
    _validate_name("computation_multi", name)

    def wrapped(func):
        _validate_arity_compatability(name, func, 1)
        cls = _wallaroo_wrap(name, func, ComputationMulti,
                             {"name": _name, "compute_multi": _compute_multi,
                              "initial_state": None, "is_stateful": False})
        return cls()
    return wrapped


def state_computation(name, state):
    """Declare a state computation: ``f(data, state)`` updates ``state`` in place.

    :arg name: the step name.
    :arg state: a zero-argument callable (normally a class) that creates a
        fresh state object; called once for every new key.
    """
    _validate_name("state_computation", name)

    def wrapped(func):
        _validate_arity_compatability(name, func, 2)
        cls = _wallaroo_wrap(name, func, StateComputation,
                             {"name": _name, "compute": _compute_state,
                              "initial_state": _initial_state,
                              "is_stateful": True,
                              "_state_factory": staticmethod(state)})
        return cls()
    return wrapped


def state_computation_multi(name, state):
    """Declare a state computation returning a list of outputs (or None)."""
    _validate_name("state_computation_multi", name)

    def wrapped(func):
        _validate_arity_compatability(name, func, 2)
        cls = _wallaroo_wrap(name, func, StateComputationMulti,
                             {"name": _name,
                              "compute_multi": _compute_multi_state,
                              "initial_state": _initial_state,
                              "is_stateful": True,
                              "_state_factory": staticmethod(state)})
        return cls()
    return wrapped


def key_extractor(func):
    """Declare a key extractor: ``f(data)`` returns the partition key (text).

    An int result is turned into a one-character string with ``chr``.
    """
    _validate_arity_compatability(_func_name(func), func, 1)
    cls = _wallaroo_wrap(_func_name(func), func, KeyExtractor,
                         {"extract_key": _extract_key})
    return cls()


def _validate_framing(header_length, length_fmt):
    # Improvement over 0.6: 0.6 accepted any values; a header length outside
    # 1..8 was replaced by 4 at run time and a format of the wrong size made
    # every payload_length call fail, desynchronising the stream.
    if (not isinstance(header_length, _integer_types)
            or isinstance(header_length, bool)
            or not 1 <= header_length <= 8):
        raise _api_error(
            "decoder header_length must be an int from 1 to 8, got {0!r}.",
            header_length)
    if not isinstance(length_fmt, _string_types):
        raise _api_error(
            "decoder length_fmt must be a struct format string such as "
            "'>I', got {0!r}.", length_fmt)
    if isinstance(length_fmt, bytes) and not _PY2:
        length_fmt = length_fmt.decode("ascii")
    length_fmt = str(length_fmt)  # native str (Python 2 unicode -> str)
    try:
        size = struct.calcsize(length_fmt)
    except struct.error as e:
        raise _api_error("decoder length_fmt {0!r} is not a valid struct "
                         "format: {1}.", length_fmt, e)
    if size != header_length:
        raise _api_error(
            "decoder length_fmt {0!r} describes {1} byte(s) but header_length "
            "is {2}; they must be equal (e.g. header_length=4, "
            "length_fmt='>I').", length_fmt, size, header_length)
    fields = struct.unpack(length_fmt, b"\0" * size)
    if len(fields) != 1 or not isinstance(fields[0], _integer_types):
        raise _api_error(
            "decoder length_fmt {0!r} must describe exactly one integer "
            "(e.g. '>I', '>H', '<Q').", length_fmt)
    return length_fmt


def decoder(header_length, length_fmt):
    """Declare a framed TCP decoder: ``f(payload_bytes)`` returns a message.

    Each frame is a header of ``header_length`` bytes holding the payload
    length as the ``struct`` format ``length_fmt``, then the payload.

    :arg header_length: 1 to 8.
    :arg length_fmt: one integer, ``struct.calcsize(length_fmt) ==
        header_length``; usually ``">I"``.
    """
    length_fmt = _validate_framing(header_length, length_fmt)

    def wrapped(func):
        _validate_arity_compatability(_func_name(func), func, 1)
        cls = _wallaroo_wrap(_func_name(func), func, OctetDecoder,
                             {"header_length": _get_header_length,
                              "decode": _decode,
                              "_header_length": header_length,
                              "length_fmt": length_fmt})
        return cls()
    return wrapped


def encoder(func):
    """Declare an encoder: ``f(data)`` returns the bytes written to the sink.

    The bytes are written verbatim; add your own framing if the receiver
    needs it. None writes nothing.
    """
    _validate_arity_compatability(_func_name(func), func, 1)
    cls = _wallaroo_wrap(_func_name(func), func, OctetEncoder,
                         {"encode": _encode})
    return cls()


# ---------------------------------------------------------------------------
# Pipelines.

_SINK_COMMANDS = ("to_sink", "to_sinks")


class _PipelineTree(object):
    """The node and edge lists behind a Pipeline (see build_application)."""

    def __init__(self, source_stage):
        self.vs = [[source_stage]]
        self.es = [[]]
        self.root_idx = 0
        self.is_closed = False

    def clone(self):
        other = _PipelineTree.__new__(_PipelineTree)
        other.vs = [list(stages) for stages in self.vs]
        other.es = [list(edges) for edges in self.es]
        other.root_idx = self.root_idx
        other.is_closed = self.is_closed
        return other

    def add_stage(self, stage):
        if self.is_closed:
            raise _api_error(
                "You can't add stages after to_sink/s. Tried to add {0!r}.",
                stage[0])
        self.vs[self.root_idx].append(stage)
        if stage[0] in _SINK_COMMANDS:
            self.is_closed = True

    def merge(self, other):
        # A new, empty node becomes the root; its children are this tree's
        # root (left) and the other tree's root (right). The other tree's
        # nodes are appended with their indices shifted. Closedness comes
        # from the left side only, as in 0.6; the host checks the rest.
        merge_idx = len(self.vs)
        self.vs.append([])
        self.es.append([])
        shift = len(self.vs)
        for stages, edges in zip(other.vs, other.es):
            self.vs.append(list(stages))
            self.es.append([e + shift for e in edges])
        self.es[merge_idx] = [self.root_idx, other.root_idx + shift]
        self.root_idx = merge_idx

    def to_tuple(self, app_name):
        return (app_name, self.root_idx,
                [list(stages) for stages in self.vs],
                [list(edges) for edges in self.es])


def _check_config(what, config):
    if not callable(getattr(config, "to_tuple", None)):
        raise _api_error(
            "{0} expects a source/sink configuration object such as "
            "TCPSourceConfig or TCPSinkConfig, got {1!r}.", what, config)
    return config.to_tuple()


class Pipeline(object):
    """An immutable description of a pipeline.

    Every method returns a new Pipeline and leaves this one unchanged, so a
    pipeline can be branched: ``p.to(a)`` and ``p.to(b)`` are independent.
    Create one with :func:`source`.
    """

    def __init__(self, tree):
        self._pipeline_tree = tree

    @classmethod
    def from_source(cls, name, source_config):
        """A new open pipeline reading from ``source_config``, named ``name``."""
        _validate_name("source", name)
        config = _check_config("source", source_config)
        return cls(_PipelineTree(("source", name, config)))

    def clone(self):
        """A copy whose node and edge lists are independent of this one's."""
        return Pipeline(self._pipeline_tree.clone())

    def _with_stage(self, stage):
        p = self.clone()
        p._pipeline_tree.add_stage(stage)
        return p

    def to(self, computation):
        """Add a computation (stateless or state) made with a decorator."""
        # Improvement over 0.6: 0.6 accepted any object here and failed when
        # the first message arrived.
        if not (hasattr(computation, "compute")
                or hasattr(computation, "compute_multi")):
            raise _api_error(
                "to() expects a computation made with @wallaroo.computation, "
                "@computation_multi, @state_computation or "
                "@state_computation_multi, got {0!r}.", computation)
        if isinstance(computation, StateComputation):
            return self._with_stage(("to_state", computation))
        return self._with_stage(("to", computation))

    def key_by(self, key_extractor):
        """Partition the following steps by ``key_extractor.extract_key(data)``."""
        if not hasattr(key_extractor, "extract_key"):
            raise _api_error(
                "key_by() expects a key extractor made with "
                "@wallaroo.key_extractor, got {0!r}.", key_extractor)
        return self._with_stage(("key_by", key_extractor))

    def to_sink(self, sink_config):
        """End the pipeline with one sink."""
        config = _check_config("to_sink", sink_config)
        return self._with_stage(("to_sink", config))

    def to_sinks(self, sink_configs):
        """End the pipeline with several sinks; each output goes to all of them."""
        try:
            configs = list(sink_configs)
        except TypeError:
            raise _api_error("to_sinks() expects a list of sink "
                             "configurations, got {0!r}.", sink_configs)
        # Improvement over 0.6: the empty list was accepted in Python and the
        # engine aborted later with the same sentence.
        if not configs:
            raise _api_error(
                "You must specify at least one sink when using to_sinks().")
        return self._with_stage(
            ("to_sinks", [_check_config("to_sinks", c) for c in configs]))

    def merge(self, pipeline):
        """Combine this pipeline and ``pipeline``; later stages see both streams."""
        if not isinstance(pipeline, Pipeline):
            raise _api_error("merge() expects a Pipeline, got {0!r}.",
                             pipeline)
        p = self.clone()
        p._pipeline_tree.merge(pipeline._pipeline_tree)
        return p

    def __to_tuple__(self, app_name):
        return self._pipeline_tree.to_tuple(app_name)

    def __is_closed__(self):
        return self._pipeline_tree.is_closed

    def _stages(self, commands):
        return [stage for stages in self._pipeline_tree.vs
                for stage in stages if stage[0] in commands]

    def _sources(self):
        return self._stages(("source",))

    def _sinks(self):
        return self._stages(_SINK_COMMANDS)


def source(name, source_config):
    """Start a pipeline: a source called ``name`` configured by ``source_config``."""
    return Pipeline.from_source(name, source_config)


def build_application(app_name, pipeline):
    """Return the application tuple ``(app_name, root_idx, vs, es)``.

    ``vs[i]`` lists the stages of tree node ``i``: a leaf starts with its
    ``("source", name, config)`` stage, a merge node holds only the stages
    after the merge. ``es[i]`` is ``[]`` for a leaf and ``[left, right]``
    for a merge. ``root_idx`` is the node that ends with the sink.

    :raises WallarooParameterError: if the pipeline does not end with
        ``to_sink``/``to_sinks``.
    """
    _validate_name("build_application", app_name)
    if not isinstance(pipeline, Pipeline):
        raise _api_error("build_application expects a Pipeline, got {0!r}.",
                         pipeline)
    # Improvement over 0.6: the message is carried by the exception instead
    # of being printed before raising an empty one.
    if not pipeline.__is_closed__():
        raise _api_error("An application must end with to_sink/s.")
    return pipeline.__to_tuple__(app_name)


# ---------------------------------------------------------------------------
# Source and sink configurations.

def _validate_address(what, host, port):
    # Improvement over 0.6: an int port crashed the host; it is converted to
    # a string here. Anything else that is not a string is rejected.
    if not isinstance(host, _string_types):
        raise _api_error("{0} host must be a string, got {1!r}.", what, host)
    if isinstance(port, _integer_types) and not isinstance(port, bool):
        port = str(port)
    if not isinstance(port, _string_types):
        raise _api_error("{0} port must be a string or an int, got {1!r}.",
                         what, port)
    return host, port


def _require_methods(what, obj, methods, hint):
    missing = [m for m in methods if not callable(getattr(obj, m, None))]
    if missing:
        raise _api_error("{0} expects {1} (an object with {2}), got {3!r}.",
                         what, hint, ", ".join(m + "()" for m in methods), obj)


class TCPSourceConfig(object):
    """A TCP listener decoded with a ``@decoder``: ``("tcp", host, port, decoder)``."""

    def __init__(self, host, port, decoder):
        self._host, self._port = _validate_address("TCPSourceConfig", host,
                                                   port)
        _require_methods("TCPSourceConfig", decoder,
                         ("header_length", "payload_length", "decode"),
                         "a decoder made with @wallaroo.decoder")
        self._decoder = decoder

    def to_tuple(self):
        return ("tcp", self._host, self._port, self._decoder)


class GenSourceConfig(object):
    """A generator source: ``("gen", gen_instance)``.

    ``gen_instance.initial_value()`` gives the first message and
    ``gen_instance.apply(v)`` the one after ``v``; None stops the source.
    """

    def __init__(self, gen_instance):
        _require_methods("GenSourceConfig", gen_instance,
                         ("initial_value", "apply"), "a generator object")
        self._gen = gen_instance

    def to_tuple(self):
        return ("gen", self._gen)


class TCPSinkConfig(object):
    """A TCP connection written with an ``@encoder``: ``("tcp", host, port, encoder)``."""

    def __init__(self, host, port, encoder):
        self._host, self._port = _validate_address("TCPSinkConfig", host, port)
        _require_methods("TCPSinkConfig", encoder, ("encode",),
                         "an encoder made with @wallaroo.encoder")
        self._encoder = encoder

    def to_tuple(self):
        return ("tcp", self._host, self._port, self._encoder)


class CustomKafkaSourceCLIParser(object):
    """A Kafka source whose options are parsed here from ``args``.

    ``("kafka", topic, [(host, port), ...], log_level, decoder)``; see
    :func:`kafka_parse_source_options`.
    """

    def __init__(self, args, decoder):
        (self.topic, self.brokers,
         self.log_level) = kafka_parse_source_options(args)
        self.decoder = decoder

    def to_tuple(self):
        return ("kafka", self.topic, self.brokers, self.log_level,
                self.decoder)


class CustomKafkaSinkCLIParser(object):
    """A Kafka sink whose options are parsed here from ``args``.

    ``("kafka", topic, brokers, log_level, max_produce_buffer_ms,
    max_message_size, encoder)``; the encoder returns ``(value, key,
    partition)``.
    """

    def __init__(self, args, encoder):
        (self.topic, self.brokers, self.log_level, self.max_produce_buffer_ms,
         self.max_message_size) = kafka_parse_sink_options(args)
        self.encoder = encoder

    def to_tuple(self):
        return ("kafka", self.topic, self.brokers, self.log_level,
                self.max_produce_buffer_ms, self.max_message_size,
                self.encoder)


class DefaultKafkaSourceCLIParser(object):
    """A Kafka source whose ``--<name>_*`` options the engine parses.

    ``("kafka-internal", name, decoder)``.
    """

    def __init__(self, decoder, name="kafka_source"):
        self.decoder = decoder
        self.name = name

    def to_tuple(self):
        return ("kafka-internal", self.name, self.decoder)


class DefaultKafkaSinkCLIParser(object):
    """A Kafka sink whose ``--<name>_*`` options the engine parses.

    ``("kafka-internal", name, encoder)``.
    """

    def __init__(self, encoder, name="kafka_sink"):
        self.encoder = encoder
        self.name = name

    def to_tuple(self):
        return ("kafka-internal", self.name, self.encoder)


# ---------------------------------------------------------------------------
# Command-line helpers. Each parses only its own options and ignores the
# rest (parse_known_args), so the application's other flags pass through.

def _parse_addrs(args, short, long_, dest):
    # prog is explicit: an embedded interpreter may have no sys.argv.
    parser = argparse.ArgumentParser(prog="wallaroo")
    parser.add_argument(short, long_, dest=dest)
    value = getattr(parser.parse_known_args(args)[0], dest)
    # Improvement over 0.6: a missing option was an AttributeError and an
    # item without a port a 1-tuple; both are now explained.
    if value is None:
        raise _api_error("{0} is required: give addresses as {0} "
                         "host:port[,host:port...].", long_)
    addrs = []
    for item in value.split(","):
        host, sep, port = item.rpartition(":")
        if not sep:
            raise _api_error("{0} expects host:port items separated by "
                             "commas, got {1!r}.", long_, item)
        addrs.append((host, port))
    return addrs


def tcp_parse_input_addrs(args):
    """Parse ``--in host:port[,host:port...]`` into ``[(host, port), ...]`` (strings)."""
    return _parse_addrs(args, "-i", "--in", "input_addrs")


def tcp_parse_output_addrs(args):
    """Parse ``--out host:port[,host:port...]`` into ``[(host, port), ...]`` (strings)."""
    return _parse_addrs(args, "-o", "--out", "output_addrs")


_KAFKA_LOG_LEVELS = ["Fine", "Info", "Warn", "Error"]


def _kafka_parse_broker(broker):
    """``"host[:port]"`` -> ``(host, port)``, port default ``"9092"``."""
    host, sep, port = broker.partition(":")
    return (host, port if sep and port else "9092")


def kafka_parse_source_options(args):
    """Parse ``--kafka_source_{topic,brokers,log_level}``.

    :returns: ``(topic, [(host, port), ...], log_level)``.
    """
    parser = argparse.ArgumentParser(prog="wallaroo")
    parser.add_argument("--kafka_source_topic", dest="topic", default="")
    parser.add_argument("--kafka_source_brokers", dest="brokers", default="")
    parser.add_argument("--kafka_source_log_level", dest="log_level",
                        default="Warn", choices=_KAFKA_LOG_LEVELS)
    opts = parser.parse_known_args(args)[0]
    brokers = [_kafka_parse_broker(b) for b in opts.brokers.split(",")]
    return (opts.topic, brokers, opts.log_level)


def kafka_parse_sink_options(args):
    """Parse ``--kafka_sink_*`` options.

    :returns: ``(topic, [(host, port), ...], log_level,
        max_produce_buffer_ms, max_message_size)``.
    """
    parser = argparse.ArgumentParser(prog="wallaroo")
    parser.add_argument("--kafka_sink_topic", dest="topic", default="")
    parser.add_argument("--kafka_sink_brokers", dest="brokers", default="")
    parser.add_argument("--kafka_sink_log_level", dest="log_level",
                        default="Warn", choices=_KAFKA_LOG_LEVELS)
    parser.add_argument("--kafka_sink_max_produce_buffer_ms",
                        dest="max_produce_buffer_ms", type=int, default=0)
    parser.add_argument("--kafka_sink_max_message_size",
                        dest="max_message_size", type=int, default=100000)
    opts = parser.parse_known_args(args)[0]
    brokers = [_kafka_parse_broker(b) for b in opts.brokers.split(",")]
    return (opts.topic, brokers, opts.log_level, opts.max_produce_buffer_ms,
            opts.max_message_size)


# ---------------------------------------------------------------------------
# Connector frames (used by wallaroo.experimental).

def _event_time_ms(event_time):
    """Milliseconds since the epoch for an int or a datetime.

    Aware datetimes are exact. Naive datetimes are local time, as Python 3's
    ``datetime.timestamp()`` treats them. Computed the same way on every
    Python version (0.6 called ``timestamp()``, which Python 2 lacks).
    """
    if isinstance(event_time, datetime.datetime):
        if event_time.utcoffset() is not None:
            delta = event_time.replace(tzinfo=None) - event_time.utcoffset() \
                - datetime.datetime(1970, 1, 1)
            return (delta.days * 86400000 + delta.seconds * 1000
                    + delta.microseconds // 1000)
        seconds = int(time.mktime(event_time.timetuple()))
        return seconds * 1000 + event_time.microsecond // 1000
    if isinstance(event_time, datetime.date):
        return calendar.timegm(event_time.timetuple()) * 1000
    if (isinstance(event_time, _integer_types)
            and not isinstance(event_time, bool)):
        return event_time
    raise TypeError("event_time must be an int (milliseconds since the epoch) "
                    "or a datetime, got {0!r}".format(event_time))


def _connector_decode(self, bs):
    return self._user_func(bs[8:])  # drop the 8-byte event time


def _connector_decoder(self):
    return self._user_func


def _connector_encode(self, data, event_time=0):
    payload = self._user_func(data)
    # Improvement over 0.6: a text payload failed inside struct.pack with an
    # unhelpful message.
    if not isinstance(payload, bytes):
        raise TypeError(
            "stream_message_encoder function {0} must return bytes, got "
            "{1}".format(_f_repr(self._user_func), type(payload).__name__))
    return struct.pack("<Iq", len(payload) + 8,
                       _event_time_ms(event_time)) + payload


import wallaroo.experimental  # noqa: E402  (needs the names above)
