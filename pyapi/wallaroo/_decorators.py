# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: the decorators and the classes they generate.

Each decoration creates a class of one marker kind (see ``wallaroo._bases``)
named ``<Kind>_<n>__<function name>``, registers it on the ``wallaroo``
package (not on this module) and returns its only instance; pickle finds the
class there again by that name.
"""

from __future__ import absolute_import, division, print_function

import collections
import struct
import sys

from wallaroo._arity import _func_name, _validate_arity_compatability
from wallaroo._bases import (Computation, ComputationMulti, KeyExtractor,
                             OctetDecoder, OctetEncoder, StateComputation,
                             StateComputationMulti)
from wallaroo._compat import _PY2, _integer_types, _string_types
from wallaroo._errors import _api_error, _validate_name

# The package that generated classes are registered on and say they belong
# to: "wallaroo", where they were defined before the package was split up.
_PACKAGE = __name__.rpartition(".")[0]

# ---------------------------------------------------------------------------
# Generated classes and pickling.

# How many times each decorator kind has been used; gives the "_<n>" of the
# generated class names. Every worker imports the same module and so numbers
# its decorations the same way, which is what makes pickled references match.
_C = collections.Counter()


def attach_to_module(cls, cls_name, func, idx=None):
    """Name a generated class and register it on the ``wallaroo`` package.

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
    cls.__module__ = _PACKAGE
    setattr(sys.modules[_PACKAGE], name, cls)
    return cls


def _wallaroo_wrap(name, func, base_cls, attrs=None):
    """Create, name and register a class of kind ``base_cls`` for ``func``.

    ``attrs`` (a dict) become class attributes (the methods the host calls
    and the decoration's settings). Everything lives on the class, so an
    instance's ``__dict__`` is empty and pickles as a bare reference to the
    class.
    """
    _C[base_cls] += 1
    namespace = dict(attrs or {})
    namespace["_wallaroo_name"] = name
    # staticmethod: a plain function stored on a class would be turned into
    # a method and receive `self`.
    namespace["_user_func"] = staticmethod(func)
    namespace["__doc__"] = getattr(func, "__doc__", None)
    namespace["__module__"] = _PACKAGE
    cls = type(str(base_cls.__name__), (base_cls,), namespace)
    return attach_to_module(cls, base_cls.__name__, func, _C[base_cls])


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
