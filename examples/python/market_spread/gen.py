#!/usr/bin/env python
"""Write this example's input and expected output.

    python gen.py [--market 400] [--orders 400] [--seed 5]

market.msg    MARKET framed market data (NBBO) messages, 46 bytes each: the
              first half for the ten "accept" symbols, with spreads of 1 to
              4 cents on prices of 10 to 500 (orders on them are accepted),
              the second half for the ten "reject" symbols, with a spread
              of 1.00 (orders on them are rejected). Symbols rotate, so
              every symbol gets several updates; the last one counts.
orders.msg    ORDERS framed orders, 57 bytes each, alternating between an
              accept symbol and a reject symbol.
expected.msg  the framed result of every order on a reject symbol, in
              order, with the timestamp field set to 0.

Symbols are right-justified to 4 bytes ("  GO"). The numbers come from a
small linear congruential generator, so Python 2.7 and Python 3 write
byte-for-byte the same files for the same seed.
"""

from __future__ import print_function

import argparse
import struct

ACCEPT_SYMBOLS = ["GO", "PY", "WAL", "ROO", "NBBO", "FIX", "TCP", "KEY",
                  "SNK", "SRC"]
REJECT_SYMBOLS = ["BAD", "RJT", "WIDE", "GAP", "XX", "ZZZ", "Q", "HALT",
                  "OUT", "NOPE"]


class Numbers(object):
    """Deterministic pseudo-random numbers (the same on every Python)."""

    def __init__(self, seed):
        self.state = seed & 0x7FFFFFFF

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 8) % n


def symbol_bytes(name):
    return ("%4s" % name).encode("ascii")


def transact_time(i):
    """21 bytes, e.g. 20260125-09:30:00.000, one millisecond per message."""
    seconds, millis = divmod(i, 1000)
    minutes, seconds = divmod(seconds, 60)
    return ("20260125-%02d:%02d:%02d.%03d"
            % (9 + (30 + minutes) // 60, (30 + minutes) % 60, seconds,
               millis)).encode("ascii")


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def main():
    parser = argparse.ArgumentParser(prog="gen.py")
    parser.add_argument("--market", type=int, default=400)
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--market-file", default="market.msg")
    parser.add_argument("--orders-file", default="orders.msg")
    parser.add_argument("--expected-file", default="expected.msg")
    args = parser.parse_args()
    numbers = Numbers(args.seed)

    last_nbbo = {}
    with open(args.market_file, "wb") as out:
        for i in range(args.market):
            if i < args.market // 2:
                symbol = symbol_bytes(ACCEPT_SYMBOLS[i % 10])
                spread_cents = 1 + numbers.below(4)
            else:
                symbol = symbol_bytes(REJECT_SYMBOLS[i % 10])
                spread_cents = 100
            bid_cents = 1000 + numbers.below(49000)
            bid = bid_cents / 100.0
            offer = (bid_cents + spread_cents) / 100.0
            out.write(frame(struct.pack(">B4s21sdd", 2, symbol,
                                        transact_time(i), bid, offer)))
            last_nbbo[symbol] = (bid, offer)

    results = 0
    with open(args.orders_file, "wb") as out:
        with open(args.expected_file, "wb") as expected:
            for i in range(args.orders):
                names = REJECT_SYMBOLS if i % 2 else ACCEPT_SYMBOLS
                symbol = symbol_bytes(names[numbers.below(10)])
                side = 1 + numbers.below(2)
                account = numbers.below(100000)
                order_id = ("O%05d" % i).encode("ascii")
                qty = float(1 + numbers.below(1000))
                price = (1000 + numbers.below(49000)) / 100.0
                out.write(frame(struct.pack(
                    ">BBI6s4sdd21s", 1, side, account, order_id, symbol, qty,
                    price, transact_time(args.market + i))))
                if names is REJECT_SYMBOLS:
                    bid, offer = last_nbbo.get(symbol, (0.0, 0.0))
                    expected.write(frame(struct.pack(
                        ">BI6s4sddddQ", side, account, order_id, symbol, qty,
                        price, bid, offer, 0)))
                    results += 1
    print("wrote %d market data messages to %s, %d orders to %s, %d "
          "expected results to %s"
          % (args.market, args.market_file, args.orders, args.orders_file,
             results, args.expected_file))


if __name__ == "__main__":
    main()
