#!/usr/bin/env python
"""Write this example's input and expected output.

    python gen.py [--count 1000]

numbers.msg   the numbers 1..COUNT, each a 12-byte message: a 4-byte
              big-endian length (8) and the number as a big-endian u64
              (what "sender --u64 --binary --msg-size 12" sends)
expected.txt  every window the application emits, one per line, "[a,b,c,d]",
              the odd windows first, then the even ones, each parity in
              the order the application emits it

Python 2.7 and Python 3 write byte-for-byte the same files.
"""

from __future__ import print_function

import argparse
import struct

WINDOW_SIZE = 4


def main():
    parser = argparse.ArgumentParser(prog="gen.py")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--messages-file", default="numbers.msg")
    parser.add_argument("--expected-file", default="expected.txt")
    args = parser.parse_args()

    with open(args.messages_file, "wb") as out:
        for n in range(1, args.count + 1):
            out.write(struct.pack(">IQ", 8, n))

    # What the application does to 1..COUNT: every number once, in order
    # (a multiple of 12 brings the next two early, and they are dropped
    # when they arrive), each parity with its own window of four.
    windows = {0: [0] * WINDOW_SIZE, 1: [0] * WINDOW_SIZE}
    lines = {0: [], 1: []}
    for n in range(1, args.count + 1):
        w = windows[n % 2] = windows[n % 2][1:] + [n]
        lines[n % 2].append("[%s]\n" % ",".join("%d" % v for v in w))
    with open(args.expected_file, "w") as out:
        out.writelines(lines[1] + lines[0])
    print("wrote 1..%d to %s, %d windows to %s"
          % (args.count, args.messages_file, args.count, args.expected_file))


if __name__ == "__main__":
    main()
