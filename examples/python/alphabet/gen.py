#!/usr/bin/env python
"""Write this example's input and expected output.

    python gen.py [--votes 1000] [--seed 1]

votes.msg      VOTES framed messages: a 4-byte big-endian length (5), one
               lowercase letter, a big-endian u32 vote count (1..9999)
expected.json  the total of every letter that got votes

The numbers come from a small linear congruential generator, so Python 2.7
and Python 3 write byte-for-byte the same files for the same seed.
"""

from __future__ import print_function

import argparse
import json
import struct

LETTERS = "abcdefghijklmnopqrstuvwxyz"


class Numbers(object):
    """Deterministic pseudo-random numbers (the same on every Python)."""

    def __init__(self, seed):
        self.state = seed & 0x7FFFFFFF

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 8) % n


def main():
    parser = argparse.ArgumentParser(prog="gen.py")
    parser.add_argument("--votes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--messages-file", default="votes.msg")
    parser.add_argument("--expected-file", default="expected.json")
    args = parser.parse_args()

    numbers = Numbers(args.seed)
    totals = {}
    with open(args.messages_file, "wb") as out:
        for _ in range(args.votes):
            letter = LETTERS[numbers.below(len(LETTERS))]
            count = 1 + numbers.below(9999)
            out.write(struct.pack(">I1sI", 5, letter.encode("ascii"), count))
            totals[letter] = totals.get(letter, 0) + count
    with open(args.expected_file, "w") as out:
        json.dump(totals, out, indent=1, sort_keys=True, separators=(",", ": "))
        out.write("\n")
    print("wrote %d votes for %d letters to %s, totals to %s"
          % (args.votes, len(totals), args.messages_file, args.expected_file))


if __name__ == "__main__":
    main()
