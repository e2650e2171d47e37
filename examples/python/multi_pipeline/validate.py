#!/usr/bin/env python
"""Check multi pipeline output against expected.json. For every account the
lines must count its entries 1, 2, ... n in the order they arrived, and the
line of entry n must show the final balance. (The balances in between
depend on how the two sources interleaved.) With --wait, keep re-reading
the output until it matches or the time runs out.

    python validate.py --expected expected.json --output received.txt [--wait 30]
"""

from __future__ import print_function

import argparse
import json
import re
import sys
import time

LINE = re.compile(r"^(\S+) => (-?\d+) after entry (\d+)$")


def check(expected, path):
    """Return a list of problems (empty when the output is right)."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    seen = {}
    problems = []
    for line in text.split("\n"):
        if not line:
            continue
        m = LINE.match(line)
        if not m:
            return ["malformed line %r" % line]
        account, balance, entries = m.group(1), int(m.group(2)), int(m.group(3))
        count, _ = seen.get(account, (0, 0))
        if entries != count + 1:
            problems.append("%s: entry %d after entry %d" % (account, entries,
                                                            count))
        seen[account] = (entries, balance)
    for account in sorted(set(expected) | set(seen)):
        want = expected.get(account)
        got = seen.get(account)
        want = (want["entries"], want["balance"]) if want else None
        if got != want:
            problems.append("%s: expected (entries, balance) %s, got %s"
                            % (account, want, got))
    return problems


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
            problems = check(expected, args.output)
        except (IOError, OSError, UnicodeDecodeError) as e:
            problems = [str(e)]
        if not problems:
            print("multi pipeline output is correct: %d accounts, %d entries"
                  % (len(expected),
                     sum(e["entries"] for e in expected.values())))
            return 0
        if time.time() >= deadline:
            break
        time.sleep(0.2)
    print("multi pipeline output is WRONG:", file=sys.stderr)
    for p in problems[:10]:
        print("  " + p, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
