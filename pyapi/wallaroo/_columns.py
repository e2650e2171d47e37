# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: a column of native strings packed for the link between workers.

An envelope batch (see ``_runner.Runner.take_envelopes``) carries its
records in columns, one list of keys and one of values per group. Most
columns of most applications are native strings (words, lines, keys), and
pickling them costs a memo entry and an opcode per string on both sides.
A column whose items are all of the exact native ``str`` type travels
instead as one bytes object:

    count, then each item's length in bytes, as unsigned LEB128 varints;
    then the items' bytes back to back (UTF-8 on Python 3, the bytes
    themselves on Python 2).

The machida binaries replace ``pack_text`` and ``unpack_text`` in
``wallaroo._runner`` with C versions of the same format (the bridge's
shim.c): per string, packing is about a fifth of pickling's cost and
unpacking two thirds of unpickling's (PERFORMANCE.md); these are the
reference, used where the package runs without a binary (its tests). The
C packer takes any exact ``str``; this one only lists whose text is ASCII
(the others are pickled: correct, only slower). Either unpacker reads
what either packer makes.

Nothing here is public API. One source for Python 2.7 and 3.x.
"""

from __future__ import absolute_import, division

import sys

_PY2 = sys.version_info[0] == 2


# The most bytes of a packed column (the runner's _MAX_BATCH_BYTES): past
# it the column is left to pickle, which writes an object repeated in it
# once (a list of one large string n times would pack to n copies).
_MAX_PACKED = 4 << 20


def _varint(out, n):
    while n > 0x7f:
        out.append((n & 0x7f) | 0x80)
        n >>= 7
    out.append(n)


def pack_text(values):
    """The bytes of a list of exact native strings, or None when values
    is not a list, holds anything else or would pack to more than
    _MAX_PACKED bytes (pickle it then)."""
    if type(values) is not list:
        return None
    for v in values:
        if type(v) is not str:
            return None
    data = "".join(values)
    if len(data) + 5 * (len(values) + 1) > _MAX_PACKED:
        return None
    if not _PY2:
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            return None  # (the C packer takes it as UTF-8)
    head = bytearray()
    _varint(head, len(values))
    for v in values:
        _varint(head, len(v))
    return bytes(head) + data


def _read_varint(data, at):
    """(value, next offset) of the varint at data[at:]; ValueError if it
    runs past the end or its value is over 32 bits."""
    n = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("text column is corrupt: it ends inside a length")
        b = data[at] if not _PY2 else ord(data[at])
        at += 1
        n |= (b & 0x7f) << shift
        if not b & 0x80:
            if n > 0xffffffff:
                break
            return n, at
        shift += 7
        if shift > 28:
            break
    raise ValueError("text column is corrupt: a length of more than 32 bits")


def unpack_text(data):
    """The list of strings packed in data (bytes from pack_text or its C
    twin). ValueError if data is not such a column (lengths that do not
    add up to its size, text that is not UTF-8)."""
    count, at = _read_varint(data, 0)
    if count > len(data) - at:
        raise ValueError("text column is corrupt: %d items in %d bytes"
                         % (count, len(data)))
    lengths = []
    for _ in range(count):
        n, at = _read_varint(data, at)
        lengths.append(n)
    if sum(lengths) != len(data) - at:
        raise ValueError("text column is corrupt: its items' lengths add "
                         "up to %d bytes, it holds %d"
                         % (sum(lengths), len(data) - at))
    out = []
    append = out.append
    for n in lengths:
        s = data[at:at + n]
        if not _PY2:
            try:
                s = s.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError("text column is corrupt: %s" % e)
        append(s)
        at += n
    return out
