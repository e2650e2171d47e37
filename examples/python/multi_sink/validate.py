#!/usr/bin/env python
"""Check multi sink output: what every sink received must be, in any order,
exactly the lines of the expected file (the stateless step runs in
parallel, so the order of the output is not that of the input). Give one
--output per sink. With --wait, keep re-reading the outputs until they
match or the time runs out.

    python validate.py --expected expected.txt \\
        --output received-1.txt --output received-2.txt [--wait 30]
"""

from __future__ import print_function

import argparse
import collections
import sys
import time


def lines_of(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    return collections.Counter(line for line in text.split("\n") if line)


def read_all(paths):
    got = []
    for path in paths:
        try:
            got.append(lines_of(path))
        except (IOError, OSError, UnicodeDecodeError):
            got.append(collections.Counter())
    return got


def main():
    parser = argparse.ArgumentParser(prog="validate.py")
    parser.add_argument("--expected", required=True)
    parser.add_argument("--output", required=True, action="append")
    parser.add_argument("--wait", type=float, default=0)
    args = parser.parse_args()
    expected = lines_of(args.expected)
    deadline = time.time() + args.wait
    while True:
        got = read_all(args.output)
        if all(g == expected for g in got):
            print("multi sink output is correct: %d sinks got the same %d "
                  "lines" % (len(got), sum(expected.values())))
            return 0
        if time.time() >= deadline:
            break
        time.sleep(0.2)
    for path, g in zip(args.output, got):
        if g == expected:
            continue
        missing = expected - g
        extra = g - expected
        print("%s is WRONG: %d lines missing, %d unexpected"
              % (path, sum(missing.values()), sum(extra.values())),
              file=sys.stderr)
        for line in list(missing)[:3]:
            print("  missing:    %r" % line, file=sys.stderr)
        for line in list(extra)[:3]:
            print("  unexpected: %r" % line, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
