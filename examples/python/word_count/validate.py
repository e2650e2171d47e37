#!/usr/bin/env python3
"""Check word count output: the last "word => count" per word must equal the
expected totals. With --wait, keep re-reading the output until it matches or
the time runs out (for use while the application is still running).

    python3 validate.py --expected expected.json --output received.txt [--wait 30]
"""

import argparse
import json
import sys
import time


def last_counts(path):
    counts = {}
    with open(path, "rb") as f:
        for raw in f.read().decode("utf-8").split("\n"):
            if not raw:
                continue
            word, sep, count = raw.rpartition(" => ")
            if not sep:
                raise ValueError("malformed line %r" % raw)
            counts[word] = int(count)
    return counts


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
            got = last_counts(args.output)
        except (IOError, OSError, ValueError):
            got = None
        if got == expected:
            print("word count output is correct: %d words, %d occurrences"
                  % (len(expected), sum(expected.values())))
            return 0
        if time.time() >= deadline:
            break
        time.sleep(0.2)
    if got is None:
        print("no readable output in %s" % args.output, file=sys.stderr)
        return 1
    missing = sorted(set(expected) - set(got))
    wrong = sorted(w for w in expected if w in got and got[w] != expected[w])
    extra = sorted(set(got) - set(expected))
    print("word count output is WRONG: %d missing, %d wrong, %d unexpected"
          % (len(missing), len(wrong), len(extra)), file=sys.stderr)
    for w in (missing + wrong + extra)[:10]:
        print("  %r: expected %s, got %s" % (w, expected.get(w), got.get(w)),
              file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
