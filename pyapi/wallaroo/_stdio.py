# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: unbuffered stdout/stderr under pipes.

``wallaroo/__init__.py`` calls :func:`_unbuffer_if_piped` for both streams
when the package is imported, as 0.6 did.
"""

from __future__ import absolute_import, division, print_function

import sys


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
