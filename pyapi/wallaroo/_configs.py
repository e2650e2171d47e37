# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: the source and sink configurations.

Each has ``to_tuple()``, which gives the tuple the host reads
(see :func:`wallaroo.build_application`).
"""

from __future__ import absolute_import, division, print_function

from wallaroo._cli import (kafka_parse_sink_options,
                           kafka_parse_source_options)
from wallaroo._compat import _integer_types, _string_types
from wallaroo._errors import _api_error


def _validate_address(what, host, port):
    # Improvement over 0.6: an int port crashed the host; it is converted to
    # a string here. Anything else that is not a string is rejected.
    if not isinstance(host, _string_types):
        raise _api_error("{0} host must be a string, got {1!r}.", what, host)
    if isinstance(port, _integer_types) and not isinstance(port, bool):
        port = str(port)
    if not isinstance(port, _string_types):
        raise _api_error("{0} port must be a string or an int, got {1!r}.",
                         what, port)
    return host, port


def _require_methods(what, obj, methods, hint):
    missing = [m for m in methods if not callable(getattr(obj, m, None))]
    if missing:
        raise _api_error("{0} expects {1} (an object with {2}), got {3!r}.",
                         what, hint, ", ".join(m + "()" for m in methods), obj)


class TCPSourceConfig(object):
    """A TCP listener decoded with a ``@decoder``: ``("tcp", host, port, decoder)``."""

    def __init__(self, host, port, decoder):
        self._host, self._port = _validate_address("TCPSourceConfig", host,
                                                   port)
        _require_methods("TCPSourceConfig", decoder,
                         ("header_length", "payload_length", "decode"),
                         "a decoder made with @wallaroo.decoder")
        self._decoder = decoder

    def to_tuple(self):
        return ("tcp", self._host, self._port, self._decoder)


class GenSourceConfig(object):
    """A generator source: ``("gen", gen_instance)``.

    ``gen_instance.initial_value()`` gives the first message and
    ``gen_instance.apply(v)`` the one after ``v``; None stops the source.
    """

    def __init__(self, gen_instance):
        _require_methods("GenSourceConfig", gen_instance,
                         ("initial_value", "apply"), "a generator object")
        self._gen = gen_instance

    def to_tuple(self):
        return ("gen", self._gen)


class TCPSinkConfig(object):
    """A TCP connection written with an ``@encoder``: ``("tcp", host, port, encoder)``."""

    def __init__(self, host, port, encoder):
        self._host, self._port = _validate_address("TCPSinkConfig", host, port)
        _require_methods("TCPSinkConfig", encoder, ("encode",),
                         "an encoder made with @wallaroo.encoder")
        self._encoder = encoder

    def to_tuple(self):
        return ("tcp", self._host, self._port, self._encoder)


class CustomKafkaSourceCLIParser(object):
    """A Kafka source whose options are parsed here from ``args``.

    ``("kafka", topic, [(host, port), ...], log_level, decoder)``; see
    :func:`kafka_parse_source_options`.
    """

    def __init__(self, args, decoder):
        (self.topic, self.brokers,
         self.log_level) = kafka_parse_source_options(args)
        self.decoder = decoder

    def to_tuple(self):
        return ("kafka", self.topic, self.brokers, self.log_level,
                self.decoder)


class CustomKafkaSinkCLIParser(object):
    """A Kafka sink whose options are parsed here from ``args``.

    ``("kafka", topic, brokers, log_level, max_produce_buffer_ms,
    max_message_size, encoder)``; the encoder returns ``(value, key,
    partition)``.
    """

    def __init__(self, args, encoder):
        (self.topic, self.brokers, self.log_level, self.max_produce_buffer_ms,
         self.max_message_size) = kafka_parse_sink_options(args)
        self.encoder = encoder

    def to_tuple(self):
        return ("kafka", self.topic, self.brokers, self.log_level,
                self.max_produce_buffer_ms, self.max_message_size,
                self.encoder)


class DefaultKafkaSourceCLIParser(object):
    """A Kafka source whose ``--<name>_*`` options the engine parses.

    ``("kafka-internal", name, decoder)``.
    """

    def __init__(self, decoder, name="kafka_source"):
        self.decoder = decoder
        self.name = name

    def to_tuple(self):
        return ("kafka-internal", self.name, self.decoder)


class DefaultKafkaSinkCLIParser(object):
    """A Kafka sink whose ``--<name>_*`` options the engine parses.

    ``("kafka-internal", name, encoder)``.
    """

    def __init__(self, encoder, name="kafka_sink"):
        self.encoder = encoder
        self.name = name

    def to_tuple(self):
        return ("kafka-internal", self.name, self.encoder)
