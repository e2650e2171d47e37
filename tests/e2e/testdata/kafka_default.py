"""Uses the engine-parsed Kafka source, which this engine does not offer yet."""

import wallaroo


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode(bs):
    return bs


@wallaroo.encoder
def encode(data):
    return data


def application_setup(args):
    p = wallaroo.source("Kafka in", wallaroo.DefaultKafkaSourceCLIParser(decode))
    p = p.to_sink(wallaroo.TCPSinkConfig("127.0.0.1", "1", encode))
    return wallaroo.build_application("Kafka", p)
