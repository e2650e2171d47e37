"""Source/sink configurations, command-line helpers and decoder validation."""

from __future__ import absolute_import, print_function

import unittest

import wallaroo
from wallaroo.tests._helpers import quiet_stderr

ApiError = wallaroo.WallarooParameterError


@wallaroo.decoder(4, ">I")
def decode(bs):
    return bs


@wallaroo.encoder
def encode(data):
    return data


class TCPConfigTest(unittest.TestCase):

    def test_tuples(self):
        self.assertEqual(wallaroo.TCPSourceConfig("h", "1", decode).to_tuple(),
                         ("tcp", "h", "1", decode))
        self.assertEqual(wallaroo.TCPSinkConfig("h", "2", encode).to_tuple(),
                         ("tcp", "h", "2", encode))

    def test_int_port_becomes_a_string(self):
        self.assertEqual(wallaroo.TCPSourceConfig("h", 7010, decode)
                         .to_tuple()[2], "7010")
        self.assertEqual(wallaroo.TCPSinkConfig("h", 7002, encode)
                         .to_tuple()[2], "7002")

    def test_bad_host_port_and_components(self):
        cases = [
            (lambda: wallaroo.TCPSourceConfig(None, "1", decode), "host"),
            (lambda: wallaroo.TCPSourceConfig("h", 1.5, decode), "port"),
            (lambda: wallaroo.TCPSinkConfig("h", True, encode), "port"),
            (lambda: wallaroo.TCPSourceConfig("h", "1", encode),
             "TCPSourceConfig expects a decoder made with @wallaroo.decoder"),
            (lambda: wallaroo.TCPSinkConfig("h", "1", decode),
             "TCPSinkConfig expects an encoder made with @wallaroo.encoder"),
            (lambda: wallaroo.GenSourceConfig(object()),
             "GenSourceConfig expects a generator object"),
        ]
        for make, fragment in cases:
            with self.assertRaises(ApiError) as ctx:
                make()
            self.assertIn(fragment, str(ctx.exception))


class TCPAddressParsingTest(unittest.TestCase):

    def test_input_addresses(self):
        args = ["app", "--in", "a:1,b:2", "--other", "x"]
        self.assertEqual(wallaroo.tcp_parse_input_addrs(args),
                         [("a", "1"), ("b", "2")])

    def test_output_addresses_and_short_forms(self):
        self.assertEqual(wallaroo.tcp_parse_output_addrs(
            ["app", "-o", "127.0.0.1:7002"]), [("127.0.0.1", "7002")])
        self.assertEqual(wallaroo.tcp_parse_input_addrs(
            ["app", "-i", "h:9", "--out", "o:1"]), [("h", "9")])
        self.assertEqual(wallaroo.tcp_parse_output_addrs(
            ["app", "--out=o:1"]), [("o", "1")])

    def test_unknown_options_are_ignored(self):
        args = ["app", "--in", "h:1", "--depth", "3", "--gen-source",
                "--application-module", "x"]
        self.assertEqual(wallaroo.tcp_parse_input_addrs(args), [("h", "1")])

    def test_missing_option_or_port(self):
        with self.assertRaises(ApiError) as ctx:
            wallaroo.tcp_parse_input_addrs(["app"])
        self.assertIn("--in is required", str(ctx.exception))
        with self.assertRaises(ApiError) as ctx:
            wallaroo.tcp_parse_output_addrs(["app", "--out", "a:1,b"])
        self.assertIn("got 'b'", str(ctx.exception))


class KafkaParsingTest(unittest.TestCase):

    def test_source_defaults(self):
        self.assertEqual(wallaroo.kafka_parse_source_options(["app"]),
                         ("", [("", "9092")], "Warn"))

    def test_source_options(self):
        args = ["app", "--kafka_source_topic", "t",
                "--kafka_source_brokers", "k1:9000,k2",
                "--kafka_source_log_level", "Info", "--in", "x:1"]
        self.assertEqual(wallaroo.kafka_parse_source_options(args),
                         ("t", [("k1", "9000"), ("k2", "9092")], "Info"))

    def test_sink_defaults_and_options(self):
        self.assertEqual(wallaroo.kafka_parse_sink_options(["app"]),
                         ("", [("", "9092")], "Warn", 0, 100000))
        args = ["app", "--kafka_sink_topic", "out",
                "--kafka_sink_brokers", "b:1", "--kafka_sink_log_level",
                "Error", "--kafka_sink_max_produce_buffer_ms", "10",
                "--kafka_sink_max_message_size", "5"]
        self.assertEqual(wallaroo.kafka_parse_sink_options(args),
                         ("out", [("b", "1")], "Error", 10, 5))

    def test_invalid_log_level_exits_2(self):
        for parse, opt in ((wallaroo.kafka_parse_source_options,
                            "--kafka_source_log_level"),
                           (wallaroo.kafka_parse_sink_options,
                            "--kafka_sink_log_level")):
            with quiet_stderr():
                with self.assertRaises(SystemExit) as ctx:
                    parse(["app", opt, "Debug"])
            self.assertEqual(ctx.exception.code, 2)

    def test_custom_parsers(self):
        src = wallaroo.CustomKafkaSourceCLIParser(
            ["app", "--kafka_source_topic", "in",
             "--kafka_source_brokers", "h:1"], decode)
        self.assertEqual((src.topic, src.brokers, src.log_level, src.decoder),
                         ("in", [("h", "1")], "Warn", decode))
        self.assertEqual(src.to_tuple(),
                         ("kafka", "in", [("h", "1")], "Warn", decode))
        sink = wallaroo.CustomKafkaSinkCLIParser(
            ["app", "--kafka_sink_topic", "out"], encode)
        self.assertEqual(sink.to_tuple(),
                         ("kafka", "out", [("", "9092")], "Warn", 0, 100000,
                          encode))
        self.assertEqual((sink.max_produce_buffer_ms, sink.max_message_size),
                         (0, 100000))

    def test_default_parsers(self):
        self.assertEqual(wallaroo.DefaultKafkaSourceCLIParser(decode)
                         .to_tuple(), ("kafka-internal", "kafka_source",
                                       decode))
        self.assertEqual(wallaroo.DefaultKafkaSinkCLIParser(encode, "celsius")
                         .to_tuple(), ("kafka-internal", "celsius", encode))


class DecoderValidationTest(unittest.TestCase):

    def assertBad(self, header_length, length_fmt, fragment):
        with self.assertRaises(ApiError) as ctx:
            wallaroo.decoder(header_length, length_fmt)
        self.assertIn(fragment, str(ctx.exception))
        self.assertTrue(str(ctx.exception).startswith("API_Error: decoder "))

    def test_header_length_range_and_type(self):
        for bad in (0, 9, -1, "4", 4.0, True, None):
            self.assertBad(bad, ">I", "header_length must be an int from 1 "
                                      "to 8")

    def test_length_fmt_must_match_header_length(self):
        self.assertBad(2, ">I", "describes 4 byte(s) but header_length is 2")
        self.assertBad(8, ">I", "describes 4 byte(s) but header_length is 8")

    def test_length_fmt_must_be_one_integer(self):
        self.assertBad(4, ">f", "exactly one integer")
        self.assertBad(4, ">HH", "exactly one integer")
        self.assertBad(4, ">4s", "exactly one integer")
        self.assertBad(4, "zz", "not a valid struct format")
        self.assertBad(4, 4, "length_fmt must be a struct format string")

    def test_valid_formats(self):
        for header_length, fmt in ((1, ">B"), (2, ">H"), (4, "<I"),
                                   (8, ">Q"), (4, b">I"), (4, u">i")):
            dec = wallaroo.decoder(header_length, fmt)(lambda bs: bs)
            self.assertEqual(dec.header_length(), header_length)
            self.assertIsInstance(dec.length_fmt, str)
            self.assertEqual(dec.payload_length(b"\x01" * header_length) > 0,
                             True)


if __name__ == "__main__":
    unittest.main()
