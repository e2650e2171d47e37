"""The alternative a user would write by hand: an asyncio TCP server.

    python3.X asyncio_app.py --module word_count --in HOST:PORT[,HOST:PORT] --out HOST:PORT

Runs the application's user functions (see apps.py) behind plain asyncio
streams, one process, one thread: it connects to the sink first, then
listens on every --in address (the same framed input machida3 reads),
prints "asyncio app ready" and serves until killed. Each read of up to
256 KiB is split into frames (the decoder's own header format), the frames
go through the application's loop, and the outputs of that read are
written to the sink with one write (and a drain, which waits only when the
sink's buffer is above its high-water mark). Several sources share the
per-key state, as they do in the engine (merge before key_by).

This is a competent hand-written server, not a strawman: no per-message
readexactly() or write(), no per-message await.
"""

import argparse
import asyncio
import sys

import apps

READ_SIZE = 256 * 1024


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


async def serve_source(source, reader, sink):
    header = source.header_length
    unpack = source.length.unpack_from
    run = source.run
    rest = b""
    while True:
        data = await reader.read(READ_SIZE)
        if not data:
            break
        if rest:
            data = rest + data
        frames = []
        append = frames.append
        pos = 0
        n = len(data)
        while n - pos >= header:
            start = pos + header
            end = start + unpack(data, pos)[0]
            if end > n:
                break
            append(data[start:end])
            pos = end
        rest = data[pos:]
        if frames:
            out = []
            run(frames, out)
            if out:
                sink.write(b"".join(out))
                await sink.drain()


async def main():
    parser = argparse.ArgumentParser(prog="asyncio_app.py")
    parser.add_argument("--module", required=True)
    parser.add_argument("--in", dest="inputs", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    in_addrs = [parse_addr(a) for a in args.inputs.split(",")]
    sources = apps.load(args.module, len(in_addrs))
    _sink_reader, sink = await asyncio.open_connection(*parse_addr(args.out))

    def handler(source):
        async def handle(reader, writer):
            try:
                await serve_source(source, reader, sink)
            finally:
                writer.close()
        return handle

    servers = []
    for source, (host, port) in zip(sources, in_addrs):
        servers.append(await asyncio.start_server(handler(source), host,
                                                  port))
    print("asyncio app ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
