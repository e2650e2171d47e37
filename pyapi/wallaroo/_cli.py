# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: the command-line helpers.

Each parses only its own options and ignores the rest
(``parse_known_args``), so the application's other flags pass through.
"""

from __future__ import absolute_import, division, print_function

import argparse

from wallaroo._errors import _api_error


def _parse_addrs(args, short, long_, dest):
    # prog is explicit: an embedded interpreter may have no sys.argv.
    parser = argparse.ArgumentParser(prog="wallaroo")
    parser.add_argument(short, long_, dest=dest)
    value = getattr(parser.parse_known_args(args)[0], dest)
    # Improvement over 0.6: a missing option was an AttributeError and an
    # item without a port a 1-tuple; both are now explained.
    if value is None:
        raise _api_error("{0} is required: give addresses as {0} "
                         "host:port[,host:port...].", long_)
    addrs = []
    for item in value.split(","):
        host, sep, port = item.rpartition(":")
        if not sep:
            raise _api_error("{0} expects host:port items separated by "
                             "commas, got {1!r}.", long_, item)
        addrs.append((host, port))
    return addrs


def tcp_parse_input_addrs(args):
    """Parse ``--in host:port[,host:port...]`` into ``[(host, port), ...]`` (strings)."""
    return _parse_addrs(args, "-i", "--in", "input_addrs")


def tcp_parse_output_addrs(args):
    """Parse ``--out host:port[,host:port...]`` into ``[(host, port), ...]`` (strings)."""
    return _parse_addrs(args, "-o", "--out", "output_addrs")


_KAFKA_LOG_LEVELS = ["Fine", "Info", "Warn", "Error"]


def _kafka_parse_broker(broker):
    """``"host[:port]"`` -> ``(host, port)``, port default ``"9092"``."""
    host, sep, port = broker.partition(":")
    return (host, port if sep and port else "9092")


def kafka_parse_source_options(args):
    """Parse ``--kafka_source_{topic,brokers,log_level}``.

    :returns: ``(topic, [(host, port), ...], log_level)``.
    """
    parser = argparse.ArgumentParser(prog="wallaroo")
    parser.add_argument("--kafka_source_topic", dest="topic", default="")
    parser.add_argument("--kafka_source_brokers", dest="brokers", default="")
    parser.add_argument("--kafka_source_log_level", dest="log_level",
                        default="Warn", choices=_KAFKA_LOG_LEVELS)
    opts = parser.parse_known_args(args)[0]
    brokers = [_kafka_parse_broker(b) for b in opts.brokers.split(",")]
    return (opts.topic, brokers, opts.log_level)


def kafka_parse_sink_options(args):
    """Parse ``--kafka_sink_*`` options.

    :returns: ``(topic, [(host, port), ...], log_level,
        max_produce_buffer_ms, max_message_size)``.
    """
    parser = argparse.ArgumentParser(prog="wallaroo")
    parser.add_argument("--kafka_sink_topic", dest="topic", default="")
    parser.add_argument("--kafka_sink_brokers", dest="brokers", default="")
    parser.add_argument("--kafka_sink_log_level", dest="log_level",
                        default="Warn", choices=_KAFKA_LOG_LEVELS)
    parser.add_argument("--kafka_sink_max_produce_buffer_ms",
                        dest="max_produce_buffer_ms", type=int, default=0)
    parser.add_argument("--kafka_sink_max_message_size",
                        dest="max_message_size", type=int, default=100000)
    opts = parser.parse_known_args(args)[0]
    brokers = [_kafka_parse_broker(b) for b in opts.brokers.split(",")]
    return (opts.topic, brokers, opts.log_level, opts.max_produce_buffer_ms,
            opts.max_message_size)
