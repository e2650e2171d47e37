"""Connector test app: text in through the source connector "feed", each
text t out as the pair (t, T.upper()).

The pairs leave through the sink connector "pairs" (JSON frames; its
decoder gives the script a (key, value) tuple) or, with --out, through a
TCP sink as lines "t => T". The connectors' ports come from --source-port
and --sink-port: the test gives the same arguments to machida3 and to the
connector scripts, which call application_setup with their own command
line.
"""

import argparse
import json

import wallaroo
import wallaroo.experimental as connectors


def application_setup(args):
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--source-port", required=True)
    parser.add_argument("--sink-port")
    parser.add_argument("--out")
    opts = parser.parse_known_args(args)[0]

    feed = connectors.SourceConnectorConfig(
        "feed", encoder=encode_text, decoder=decode_text,
        port=opts.source_port)
    if opts.out:
        host, port = opts.out.rsplit(":", 1)
        sink = wallaroo.TCPSinkConfig(host, port, encode_line)
    else:
        sink = connectors.SinkConnectorConfig(
            "pairs", encoder=encode_pair, decoder=decode_pair,
            port=opts.sink_port)
    pipeline = (wallaroo.source("connector feed", feed)
                .to(pair)
                .to_sink(sink))
    return wallaroo.build_application("connector pairs", pipeline)


@wallaroo.computation(name="pair")
def pair(text):
    return (text, text.upper())


# Used by the source scripts: they write bytes or text.
@connectors.stream_message_encoder
def encode_text(data):
    if isinstance(data, bytes):
        return data
    return data.encode("utf-8")


@connectors.stream_message_decoder
def decode_text(data):
    return data.decode("utf-8")


@wallaroo.encoder
def encode_line(pair):
    return (u"%s => %s\n" % pair).encode("utf-8")


@connectors.stream_message_encoder
def encode_pair(pair):
    return json.dumps(list(pair)).encode("utf-8")


# Used by the sink scripts.
@connectors.stream_message_decoder
def decode_pair(data):
    return tuple(json.loads(data.decode("utf-8")))
