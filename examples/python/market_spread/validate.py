#!/usr/bin/env python
"""Check market spread output: the framed records received must be, in any
order, exactly those of the expected file, ignoring the last 8 bytes of
every record (the timestamp, which the expected file holds as 0). With
--wait, keep re-reading the output until it matches or the time runs out.

    python validate.py --expected expected.msg --output received.msg \
        [--framed] [--wait 30]

The output file is what data_receiver writes without --framed: the bytes
as they arrived, length headers included. With --framed it is what
`data_receiver --framed` writes: each record's payload followed by a
newline (what a cluster's sink needs: several workers write to the
receiver at once, and only --framed keeps their binary records whole).
"""

from __future__ import print_function

import argparse
import collections
import struct
import sys
import time

RECORD = ">BI6s4sddddQ"


def records(path, framed=False):
    """The payloads of a file of u32-framed records (or, framed, of
    payloads each followed by a newline), without timestamps."""
    with open(path, "rb") as f:
        data = f.read()
    out = collections.Counter()
    if framed:
        size = struct.calcsize(RECORD) + 1
        if len(data) % size:
            raise ValueError("the output ends inside a record (%d bytes, "
                             "records of %d): still being written?"
                             % (len(data), size))
        for i in range(0, len(data), size):
            if data[i + size - 1:i + size] != b"\n":
                raise ValueError("record at byte %d is not followed by a "
                                 "newline: was the output written by "
                                 "data_receiver --framed?" % i)
            out[data[i:i + size - 1 - 8]] += 1
        return out
    i = 0
    while i + 4 <= len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        if n != struct.calcsize(RECORD):
            raise ValueError("record at byte %d has length %d, not %d"
                             % (i, n, struct.calcsize(RECORD)))
        if i + 4 + n > len(data):
            break
        out[data[i + 4:i + 4 + n - 8]] += 1
        i += 4 + n
    return out


def describe(payload):
    side, account, order_id, symbol, qty, price, bid, offer, _ = \
        struct.unpack(RECORD, payload + b"\0" * 8)
    return ("side %d account %d order %r symbol %r qty %r price %r "
            "bid %r offer %r" % (side, account, order_id, symbol, qty, price,
                                 bid, offer))


def main():
    parser = argparse.ArgumentParser(prog="validate.py")
    parser.add_argument("--expected", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--framed", action="store_true",
                        help="the output is data_receiver --framed's")
    parser.add_argument("--wait", type=float, default=0)
    args = parser.parse_args()
    expected = records(args.expected)
    deadline = time.time() + args.wait
    while True:
        problem = None
        try:
            got = records(args.output, args.framed)
        except (IOError, OSError, ValueError) as e:
            got, problem = collections.Counter(), e
        if got == expected:
            print("market spread output is correct: %d rejected orders"
                  % sum(expected.values()))
            return 0
        if time.time() >= deadline:
            break
        time.sleep(0.2)
    missing = expected - got
    extra = got - expected
    print("market spread output is WRONG: %d records missing, %d unexpected"
          % (sum(missing.values()), sum(extra.values())), file=sys.stderr)
    if problem is not None:
        print("  the output could not be read: %s" % problem, file=sys.stderr)
    for payload in list(missing)[:5]:
        print("  missing:    " + describe(payload), file=sys.stderr)
    for payload in list(extra)[:5]:
        print("  unexpected: " + describe(payload), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
