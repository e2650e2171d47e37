#!/usr/bin/env python
"""Check reverse output: the received lines, in any order, must be exactly
the lines of the expected file (the stateless step runs in parallel, so the
order of the output is not that of the input). With --wait, keep re-reading
the output until it matches or the time runs out.

    python validate.py --expected expected.txt --output received.txt [--wait 30]
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


def main():
    parser = argparse.ArgumentParser(prog="validate.py")
    parser.add_argument("--expected", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--wait", type=float, default=0)
    args = parser.parse_args()
    expected = lines_of(args.expected)
    deadline = time.time() + args.wait
    while True:
        try:
            got = lines_of(args.output)
        except (IOError, OSError, UnicodeDecodeError):
            got = collections.Counter()
        if got == expected:
            print("reverse output is correct: %d lines"
                  % sum(expected.values()))
            return 0
        if time.time() >= deadline:
            break
        time.sleep(0.2)
    missing = expected - got
    extra = got - expected
    print("reverse output is WRONG: %d lines missing, %d unexpected"
          % (sum(missing.values()), sum(extra.values())), file=sys.stderr)
    for line in list(missing)[:5]:
        print("  missing:    %r" % line, file=sys.stderr)
    for line in list(extra)[:5]:
        print("  unexpected: %r" % line, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
