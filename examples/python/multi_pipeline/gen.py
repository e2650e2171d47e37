#!/usr/bin/env python
"""Write this example's input and expected output.

    python gen.py [--count 100] [--seed 9]

deposits.txt     COUNT lines "<account> <amount>", amounts 1..500
withdrawals.txt  COUNT lines "<account> <amount>", amounts 1..500
expected.json    per account: {"entries": n, "balance": final balance}
                 (deposits added, withdrawals subtracted)

The numbers come from a small linear congruential generator, so Python 2.7
and Python 3 write byte-for-byte the same files for the same seed.
"""

from __future__ import print_function

import argparse
import json

ACCOUNTS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace",
            "heidi"]


class Numbers(object):
    """Deterministic pseudo-random numbers (the same on every Python)."""

    def __init__(self, seed):
        self.state = seed & 0x7FFFFFFF

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 8) % n


def main():
    parser = argparse.ArgumentParser(prog="gen.py")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--deposits-file", default="deposits.txt")
    parser.add_argument("--withdrawals-file", default="withdrawals.txt")
    parser.add_argument("--expected-file", default="expected.json")
    args = parser.parse_args()

    numbers = Numbers(args.seed)
    expected = {}
    for path, sign in ((args.deposits_file, 1), (args.withdrawals_file, -1)):
        with open(path, "w") as out:
            for _ in range(args.count):
                account = ACCOUNTS[numbers.below(len(ACCOUNTS))]
                amount = 1 + numbers.below(500)
                out.write("%s %d\n" % (account, amount))
                e = expected.setdefault(account, {"entries": 0, "balance": 0})
                e["entries"] += 1
                e["balance"] += sign * amount
    with open(args.expected_file, "w") as out:
        json.dump(expected, out, indent=1, sort_keys=True,
                  separators=(",", ": "))
        out.write("\n")
    print("wrote %d deposits to %s, %d withdrawals to %s, final balances of "
          "%d accounts to %s"
          % (args.count, args.deposits_file, args.count,
             args.withdrawals_file, len(expected), args.expected_file))


if __name__ == "__main__":
    main()
