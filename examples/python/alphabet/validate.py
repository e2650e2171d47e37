#!/usr/bin/env python
"""Check alphabet output: the last "letter => total" line of every letter
must equal the totals in the expected file. With --wait, keep re-reading the
output until it matches or the time runs out (for use while the application
is still running).

    python validate.py --expected expected.json --output received.txt [--wait 30]
"""

from __future__ import print_function

import argparse
import json
import sys
import time


def last_totals(path):
    totals = {}
    with open(path, "rb") as f:
        for raw in f.read().decode("utf-8").split("\n"):
            if not raw:
                continue
            letter, sep, total = raw.partition(" => ")
            if not sep or len(letter) != 1:
                raise ValueError("malformed line %r" % raw)
            totals[letter] = int(total)
    return totals


def main():
    parser = argparse.ArgumentParser(prog="validate.py")
    parser.add_argument("--expected", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--wait", type=float, default=0)
    args = parser.parse_args()
    with open(args.expected) as f:
        expected = json.load(f)
    deadline = time.time() + args.wait
    while True:
        try:
            got = last_totals(args.output)
        except (IOError, OSError, ValueError):
            got = None
        if got == expected:
            print("alphabet output is correct: %d letters, %d votes"
                  % (len(expected), sum(expected.values())))
            return 0
        if time.time() >= deadline:
            break
        time.sleep(0.2)
    if got is None:
        print("no readable output in %s" % args.output, file=sys.stderr)
        return 1
    for letter in sorted(set(expected) | set(got)):
        if expected.get(letter) != got.get(letter):
            print("  %r: expected %s, got %s"
                  % (letter, expected.get(letter), got.get(letter)),
                  file=sys.stderr)
    print("alphabet output is WRONG", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
