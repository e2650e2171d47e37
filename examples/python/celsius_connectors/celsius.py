"""Celsius to Fahrenheit with connectors, written to the Wallaroo 0.6 API.

Temperatures in degrees Celsius arrive through the source connector
"celsius_feed" (Wallaroo listens on 127.0.0.1:7100; a connector script such
as connectors/udp_source connects and sends each reading, a big-endian
32-bit float). Two stateless computations convert them, "multiply by 1.8"
and "add 32", and the sink connector "fahrenheit_conversion" (a script such
as connectors/udp_sink listening on 127.0.0.1:7200) receives each result as
text: str(value), e.g. "32.0" for 0.0.

The ports are those of the 0.6 documentation. Two optional arguments move
them, for running beside something else: --feed-port and --conversion-port
(give them to machida3 and to both connector scripts alike).
"""

import argparse
import struct

import wallaroo
import wallaroo.experimental


def application_setup(args):
    ports = argparse.ArgumentParser(add_help=False)
    ports.add_argument("--feed-port", default="7100")
    ports.add_argument("--conversion-port", default="7200")
    ports = ports.parse_known_args(args)[0]

    feed = wallaroo.experimental.SourceConnectorConfig(
        "celsius_feed",
        encoder=encode_feed,
        decoder=decode_feed,
        port=ports.feed_port)
    conversion = wallaroo.experimental.SinkConnectorConfig(
        "fahrenheit_conversion",
        encoder=encode_conversion,
        decoder=decode_conversion,
        port=ports.conversion_port)
    pipeline = (wallaroo.source("convert temperature readings", feed)
                .to(multiply)
                .to(add)
                .to_sink(conversion))
    return wallaroo.build_application("Celsius to Fahrenheit with Connectors",
                                      pipeline)


@wallaroo.computation(name="multiply by 1.8")
def multiply(data):
    return data * 1.8


@wallaroo.computation(name="add 32")
def add(data):
    return data + 32


# Used by the connector script (udp_source): the reading goes to Wallaroo as
# it came, 4 bytes.
@wallaroo.experimental.stream_message_encoder
def encode_feed(data):
    return data


# Used by Wallaroo: the payload of every frame is a big-endian float.
@wallaroo.experimental.stream_message_decoder
def decode_feed(data):
    return struct.unpack(">f", data)[0]


# Used by Wallaroo: each result leaves as text.
@wallaroo.experimental.stream_message_encoder
def encode_conversion(data):
    return str(data).encode("utf-8")


# Used by the connector script (udp_sink).
@wallaroo.experimental.stream_message_decoder
def decode_conversion(data):
    return data.decode("utf-8")
