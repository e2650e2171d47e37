# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""The packed text columns of envelope batches (wallaroo._columns): the
reference packer and unpacker, whose format the binaries' C versions
share (their Go tests check the two against each other)."""

from __future__ import absolute_import

import sys
import unittest

from wallaroo import _columns

_PY2 = sys.version_info[0] == 2


class _Str(str):
    pass


class ColumnsTest(unittest.TestCase):
    def test_lists_of_native_strings_round_trip(self):
        for values in [[], [""], ["a", "", "bc"], ["word"] * 300,
                       ["x" * 200, "y" * 20000]]:
            packed = _columns.pack_text(values)
            self.assertIs(type(packed), bytes)
            got = _columns.unpack_text(packed)
            self.assertEqual(got, values)
            self.assertTrue(all(type(v) is str for v in got))
        # Count and lengths as LEB128 varints, then the bytes.
        self.assertEqual(_columns.pack_text(["ab", "c" * 200]),
                         b"\x02\x02\xc8\x01ab" + b"c" * 200)

    def test_anything_else_is_left_to_pickle(self):
        # Over the bound too: pickle writes a repeated string once.
        big = "x" * 100000
        others = [[big] * 64, ("a", "b"), ["a", None], ["a", 1], [_Str("a")],
                  [b"a" if not _PY2 else u"a"], "ab", None]
        if not _PY2:
            # (The reference packer takes ASCII only; the C one UTF-8.)
            others.append([u"caf\xe9"])
        for values in others:
            self.assertIsNone(_columns.pack_text(values), repr(values))

    def test_utf8_columns_from_the_c_packer_are_read(self):
        data = u"caf\xe9 \u65e5\u672c".encode("utf-8")
        packed = b"\x02\x05" + bytearray([len(data) - 5]) + data
        got = _columns.unpack_text(bytes(packed))
        if _PY2:
            self.assertEqual(got, [data[:5], data[5:]])
        else:
            self.assertEqual(got, [u"caf\xe9", u" \u65e5\u672c"])

    def test_corrupt_columns_are_refused(self):
        for data, what in [
                (b"", "ends inside a length"),
                (b"\x80", "ends inside a length"),
                (b"\x02\x01", "2 items in 2 bytes"),
                (b"\x02\x01\x81", "ends inside a length"),
                (b"\xff\xff\xff\xff\xff\x01", "more than 32 bits"),
                (b"\x01\x80\x80\x80\x80\x10", "more than 32 bits"),
                (b"\x05a", "5 items in 2 bytes"),
                (b"\x01\x02a", "add up to 2 bytes, it holds 1"),
                (b"\x01\x01ab", "add up to 1 bytes, it holds 2")]:
            with self.assertRaises(ValueError) as ctx:
                _columns.unpack_text(data)
            self.assertIn(what, str(ctx.exception), repr(data))
        if not _PY2:
            with self.assertRaises(ValueError) as ctx:
                _columns.unpack_text(b"\x01\x01\xff")
            self.assertIn("text column is corrupt", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
