# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: the default serialisation hooks, pickle."""

from __future__ import absolute_import, division, print_function

try:  # Python 2: the C pickler writes the same format, much faster.
    import cPickle as pickle
except ImportError:
    import pickle


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
