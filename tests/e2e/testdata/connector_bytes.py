"""Connector test app: every payload from the source connector "feed"
goes unchanged to the sink connector "out". Ports from --source-port and
--sink-port.
"""

import argparse

import wallaroo
import wallaroo.experimental as connectors


def application_setup(args):
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--source-port", required=True)
    parser.add_argument("--sink-port", required=True)
    opts = parser.parse_known_args(args)[0]
    feed = connectors.SourceConnectorConfig(
        "feed", encoder=encode, decoder=decode, port=opts.source_port)
    out = connectors.SinkConnectorConfig(
        "out", encoder=encode, decoder=decode, port=opts.sink_port)
    pipeline = wallaroo.source("bytes", feed).to(same).to_sink(out)
    return wallaroo.build_application("connector bytes", pipeline)


@wallaroo.computation(name="same")
def same(data):
    return data


@connectors.stream_message_encoder
def encode(data):
    return data


@connectors.stream_message_decoder
def decode(data):
    return data
