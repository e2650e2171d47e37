"""What crossing between workers costs in Python alone: word count's
user functions through machida3's runner (wallaroo._runner) in one
process, once with every partition here, once split over two runners A
and B that hand each other their envelope batches directly (A deals
half the lines to B, each owns half the partitions), as two workers of a
cluster would without sockets, Go or a second process. Prints the CPU
time per line of each (thread time, GC off) and their ratio.

    python3 bench/crossing.py [--lines N] [--reps R] [COUNT_THIS_TXT]

COUNT_THIS_TXT defaults to ../shared/data/count_this.txt from the
repository root. A diagnostic for PERFORMANCE.md, not part of make bench.

Text columns cross pickled here: the binaries pack them with C functions
(bridge/shim.c) that plain Python does not have, and the pure-Python
reference packer (wallaroo._columns) costs far more than either (the
ratio reads about 1.4 with it against 1.2 with pickle), so pickle is the
nearer stand-in; --reference-packer measures with the reference anyway.
"""

import argparse
import gc
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "pyapi"))
sys.path.insert(0, os.path.join(ROOT, "examples", "python", "word_count"))

from wallaroo import _runner as R  # noqa: E402
import word_count as wc  # noqa: E402

PARTITIONS = 256
CHUNK = 1024  # the engine's largest batch per source read


def make_path(runner):
    stages = [R.Stage(R.COMPUTATION, wc.split, "split", "0.1", 1, 0),
              R.Stage(R.KEY_BY, wc.extract_word, "key", "0.2", 0, 0),
              R.Stage(R.STATE, wc.count_word, "count", "0.3", 0, 1)]
    segs = [R.Segment(R.SEG_SOURCE, 0), R.Segment(R.SEG_SPREAD, 0),
            R.Segment(R.SEG_KEYED, 2)]
    return runner.path("src", wc.decode_line, stages,
                       [wc.encode_word_count], segs)


def one(chunks, n):
    path = make_path(R.Runner(PARTITIONS))
    out = 0
    t0 = time.thread_time()
    for c in chunks:
        out += len(path.process(c, 5)[0])
    return (time.thread_time() - t0) * 1e9 / n, out


def two(chunks, n):
    a, b = R.Runner(PARTITIONS), R.Runner(PARTITIONS)
    pa = make_path(a)
    make_path(b)
    # Destination 0 is "here"; 1 is the other runner.
    a.set_ownership([q % 2 for q in range(PARTITIONS)], 1, [0, 1])
    b.set_ownership([1 - q % 2 for q in range(PARTITIONS)], 1, [1, 0])
    spent = {a: 0.0, b: 0.0}
    out = [0]

    def take(runner, envs):
        """runner resumes envs; returns the envelopes it made."""
        t0 = time.thread_time()
        for _dest, _count, data in envs:
            for _pi, outs, _ts in runner.resume(data):
                out[0] += len(outs[0])
        made = runner.take_envelopes()
        spent[runner] += time.thread_time() - t0
        return made

    for c in chunks:
        t0 = time.thread_time()
        out[0] += len(pa.process(c, 5)[0])
        envs = a.take_envelopes()
        spent[a] += time.thread_time() - t0
        while envs:
            envs = take(a, take(b, envs))
    return spent[a] * 1e9 / n, spent[b] * 1e9 / n, out[0]


def main():
    parser = argparse.ArgumentParser(prog="crossing.py")
    parser.add_argument("count_this", nargs="?",
                        default=os.path.join(ROOT, "..", "shared", "data", "count_this.txt"))
    parser.add_argument("--lines", type=int, default=100000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--reference-packer", action="store_true",
                        help="pack text columns with wallaroo._columns (slow) instead of pickling them")
    args = parser.parse_args()
    if not args.reference_packer:
        R._pack_text = lambda values: None  # None: pickle the column
    with open(args.count_this, "rb") as f:
        lines = [l.rstrip(b"\n") for l in f if l.strip()]
    data = [lines[i % len(lines)] for i in range(args.lines)]
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    gc.disable()
    for rep in range(args.reps):
        o, n1 = one(chunks, len(data))
        a, b, n2 = two(chunks, len(data))
        if n1 != n2:
            sys.exit("the two runs wrote %d and %d output bytes" % (n1, n2))
        print("rep %d: one runner %.0f ns/line; two: A %.0f + B %.0f = %.0f ns/line; ratio %.3f"
              % (rep + 1, o, a, b, a + b, (a + b) / o))


if __name__ == "__main__":
    main()
