#!/usr/bin/env python
"""Check sequence window output: every window the application emitted, in
the order it arrived, against the expected windows. The two parities may
interleave in any way, but within one parity the windows must come exactly
as in the expected file (each the one before shifted by one number). With
--wait, keep re-reading the output until it matches or the time runs out.

    python validate.py --expected expected.txt --output received.txt [--wait 30]

The output file is what "data_receiver --framed" writes: one window per
line.
"""

from __future__ import print_function

import argparse
import sys
import time


def windows_by_parity(path):
    """{parity: [window text, ...]} in file order; the parity of a window
    is that of its last (newest) number."""
    with open(path, "rb") as f:
        text = f.read().decode("ascii")
    out = {0: [], 1: []}
    for line in text.split("\n"):
        if not line:
            continue
        if not (line.startswith("[") and line.endswith("]")):
            raise ValueError("malformed window %r" % line)
        values = [int(v) for v in line[1:-1].split(",")]
        if len(values) != 4:
            raise ValueError("window %r does not hold 4 numbers" % line)
        out[values[-1] % 2].append(line)
    return out


def main():
    parser = argparse.ArgumentParser(prog="validate.py")
    parser.add_argument("--expected", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--wait", type=float, default=0)
    args = parser.parse_args()
    expected = windows_by_parity(args.expected)
    deadline = time.time() + args.wait
    while True:
        try:
            got = windows_by_parity(args.output)
        except (IOError, OSError, ValueError):
            got = None
        if got == expected:
            print("sequence window output is correct: %d odd and %d even "
                  "windows, each parity in order"
                  % (len(expected[1]), len(expected[0])))
            return 0
        if time.time() >= deadline:
            break
        time.sleep(0.2)
    if got is None:
        print("no readable output in %s" % args.output, file=sys.stderr)
        return 1
    for p, name in ((1, "odd"), (0, "even")):
        want, have = expected[p], got[p]
        for i in range(max(len(want), len(have))):
            w = want[i] if i < len(want) else None
            h = have[i] if i < len(have) else None
            if w != h:
                print("%s window %d: expected %s, got %s" % (name, i + 1, w, h),
                      file=sys.stderr)
                break
    print("sequence window output is WRONG", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
