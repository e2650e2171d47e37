"""The ceiling: an application's user functions in a plain Python loop.

    python3.X ceiling.py --module word_count --input in0.frames [--input in1.frames]
                         [--prime 1:prime.frames] [--chunk 1024] [--start-at T]

Reads the framed input files (one per source, in --in order; the same bytes
the benchmark sends over TCP), splits them into payloads, then times only
the loop: decode, computations, key extraction, per-key state, encode, with
the outputs collected and joined into one bytes object per chunk as a sink
buffer would be. With several sources the chunks alternate between them.
--prime SRC:FILE is processed first, untimed (market data that sets the
state of every symbol before the timed run). The chunk of 1024 is the
engine's largest batch per source read.

--start-at T (a Unix time) delays the timed loop until then, so that two
processes started a moment apart run their loops at the same time (the
cluster phase's measure of the machine: two CPU-bound processes at once).

--via-runner is a diagnostic, not the ceiling: the same chunks go through
machida3's own Python layer (wallaroo._runner) instead of the plain loop,
which tells the cost of that layer from the cost of the Go side.

Prints one JSON object: messages, outputs, out_bytes, seconds, rate (input
messages per second), t0_wall and t1_wall (the loop's start and end, Unix
time), python version, max_rss_kb.

The module and the ``wallaroo`` package are found on PYTHONPATH.
"""

import argparse
import json
import resource
import sys
import time

import apps


def main():
    parser = argparse.ArgumentParser(prog="ceiling.py")
    parser.add_argument("--module", required=True)
    parser.add_argument("--input", action="append", required=True)
    parser.add_argument("--prime", default=None)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--start-at", type=float, default=0.0,
                        help="start the timed loop at this Unix time (after "
                        "loading), so that several processes run it at once")
    parser.add_argument("--via-runner", action="store_true",
                        help="diagnostic: run the chunks through machida3's "
                        "Python layer (wallaroo._runner) instead of the "
                        "plain loop; outputs is then -1 (bytes only)")
    args = parser.parse_args()

    load = apps.load_via_runner if args.via_runner else apps.load
    sources = load(args.module, len(args.input))
    inputs = [apps.read_frames(path, s.header_length, s.decoder.length_fmt)
              for path, s in zip(args.input, sources)]
    if args.prime:
        idx, _, path = args.prime.partition(":")
        s = sources[int(idx)]
        sources[int(idx)].run(
            apps.read_frames(path, s.header_length, s.decoder.length_fmt), [])

    # The schedule: (run, chunk of payloads), alternating between sources.
    chunk = args.chunk
    schedule = []
    longest = max(len(frames) for frames in inputs)
    for start in range(0, longest, chunk):
        for s, frames in zip(sources, inputs):
            part = frames[start:start + chunk]
            if part:
                schedule.append((s.run, part))
    messages = sum(len(frames) for frames in inputs)

    outputs = 0
    out_bytes = 0
    join = b"".join
    if args.start_at > 0:
        time.sleep(max(0.0, args.start_at - time.time()))
    wall0 = time.time()
    t0 = time.perf_counter()
    for run, part in schedule:
        out = []
        run(part, out)
        buf = join(out)
        outputs += len(out)
        out_bytes += len(buf)
    seconds = time.perf_counter() - t0
    if args.via_runner:
        outputs = -1

    print(json.dumps({
        "messages": messages,
        "outputs": outputs,
        "out_bytes": out_bytes,
        "seconds": seconds,
        "rate": messages / seconds if seconds > 0 else 0.0,
        "t0_wall": wall0,
        "t1_wall": wall0 + seconds,
        "python": sys.version,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


if __name__ == "__main__":
    main()
