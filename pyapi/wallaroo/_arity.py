# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: user callables, as error messages name them and as the host will
call them (arity checks).
"""

from __future__ import absolute_import, division, print_function

import inspect

from wallaroo._compat import _PY2
from wallaroo._errors import _api_error


def _func_name(func):
    name = getattr(func, "__name__", None)
    if not isinstance(name, str):
        name = type(func).__name__
    return name


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
