#!/usr/bin/env python
"""Write this example's input and expected output.

    python gen.py [--count 1000] [--seed 3]

temperatures.msg  COUNT framed messages: a 4-byte big-endian length (4) and
                  a temperature in degrees Celsius as a big-endian float32:
                  a few landmarks (-273.15, -40, 0, 36.6, 100 ...), then
                  pseudo-random values between -100 and 200
expected.txt      the Fahrenheit value of every message, "%.6f" per line,
                  computed exactly as celsius.py does (value*1.8 + 32 on
                  the double that the float32 holds)

The numbers come from a small linear congruential generator, so Python 2.7
and Python 3 write byte-for-byte the same files for the same seed.
"""

from __future__ import print_function

import argparse
import struct

LANDMARKS = [-273.15, -40.0, -17.5, 0.0, 21.5, 36.6, 100.0, 1000.25]


class Numbers(object):
    """Deterministic pseudo-random numbers (the same on every Python)."""

    def __init__(self, seed):
        self.state = seed & 0x7FFFFFFF

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 8) % n


def main():
    parser = argparse.ArgumentParser(prog="gen.py")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--messages-file", default="temperatures.msg")
    parser.add_argument("--expected-file", default="expected.txt")
    args = parser.parse_args()

    numbers = Numbers(args.seed)
    values = LANDMARKS[:args.count]
    while len(values) < args.count:
        # -100.000 .. 199.999 in steps of 0.001 (then rounded to float32)
        values.append((numbers.below(300000) - 100000) / 1000.0)
    with open(args.messages_file, "wb") as msgs:
        with open(args.expected_file, "w") as expected:
            for value in values:
                payload = struct.pack(">f", value)
                msgs.write(struct.pack(">I", len(payload)) + payload)
                celsius = struct.unpack(">f", payload)[0]
                expected.write("%.6f\n" % (celsius * 1.8 + 32))
    print("wrote %d temperatures to %s, Fahrenheit values to %s"
          % (len(values), args.messages_file, args.expected_file))


if __name__ == "__main__":
    main()
