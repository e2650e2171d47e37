"""The names ``import wallaroo`` provides, and the module they claim.

The package's code lives in private modules (``wallaroo._decorators``,
``wallaroo._pipeline``, ...) behind ``wallaroo/__init__.py``. These tests
pin what a user, the Go host, ``wallaroo._runner`` and
``wallaroo.experimental`` can reach as ``wallaroo.<name>``, and that every
class reachable there says it is ``wallaroo.<name>``: pickle writes that
reference for the generated classes and the configs, and tracebacks and
reprs show it.
"""

from __future__ import absolute_import, print_function

import pickle
import unittest

import wallaroo

from wallaroo.tests._helpers import run_python

# dir(wallaroo) without dunders, in a fresh interpreter, as it was when the
# whole API was one file (wallaroo/__init__.py, 1101 lines). The lowercase
# stdlib module names were reachable as wallaroo.<module> then and still
# are. Generated classes (Computation_1__f, ...) are absent: nothing is
# decorated in a fresh interpreter.
PUBLIC_NAMES = [
    "BaseWrapped", "Computation", "ComputationMulti", "ConnectorDecoder",
    "ConnectorEncoder", "CustomKafkaSinkCLIParser",
    "CustomKafkaSourceCLIParser", "Decoder", "DefaultKafkaSinkCLIParser",
    "DefaultKafkaSourceCLIParser", "Encoder", "GenSourceConfig",
    "KeyExtractor", "OctetDecoder", "OctetEncoder", "Pipeline",
    "StateComputation", "StateComputationMulti", "TCPSinkConfig",
    "TCPSourceConfig", "WallarooParameterError",
    "absolute_import", "argparse", "attach_to_module", "build_application",
    "calendar", "collections", "computation", "computation_multi",
    "datetime", "decoder", "deserialize", "division", "encoder",
    "experimental", "inspect", "kafka_parse_sink_options",
    "kafka_parse_source_options", "key_extractor", "pickle",
    "print_function", "serialize", "source", "state_computation",
    "state_computation_multi", "struct", "sys", "tcp_parse_input_addrs",
    "tcp_parse_output_addrs", "time", "wallaroo",
]

# The private names of that same module. Some are used elsewhere and must
# stay: _stock_length_fmt (wallaroo._runner, for the host's framing),
# _func_name, _validate_arity_compatability, _wallaroo_wrap,
# _get_header_length, _connector_*, _validate_name, _validate_address
# (wallaroo.experimental), _C, _Unbuffered, _unbuffer_if_piped (these
# tests), _kafka_parse_broker and _PipelineTree (named by the 0.6 spec).
# The rest are kept so that code written against the single file (such as
# a _runner.py rewritten in parallel) keeps working.
PRIVATE_NAMES = [
    "_C", "_KAFKA_LOG_LEVELS", "_PY2", "_Params", "_PipelineTree",
    "_SINK_COMMANDS", "_Unbuffered", "_api_error", "_check_config",
    "_compute", "_compute_multi", "_compute_multi_state", "_compute_state",
    "_connector_decode", "_connector_decoder", "_connector_encode",
    "_decode", "_encode", "_event_time_ms", "_extract_key", "_f_repr",
    "_func_name", "_get_header_length", "_initial_state", "_integer_types",
    "_kafka_parse_broker", "_name", "_params", "_params_py2", "_params_py3",
    "_parse_addrs", "_payload_length_from_fmt", "_require_methods",
    "_stock_length_fmt", "_string_types", "_unbuffer_if_piped",
    "_validate_address", "_validate_arity_compatability",
    "_validate_framing", "_validate_name", "_wallaroo_wrap",
]

ALL = [
    "serialize", "deserialize", "source", "build_application",
    "tcp_parse_input_addrs", "tcp_parse_output_addrs",
    "kafka_parse_source_options", "kafka_parse_sink_options",
    "attach_to_module", "Pipeline",
    "computation", "computation_multi", "state_computation",
    "state_computation_multi", "key_extractor", "decoder", "encoder",
    "BaseWrapped", "Computation", "ComputationMulti", "StateComputation",
    "StateComputationMulti", "KeyExtractor", "Encoder", "Decoder",
    "OctetDecoder", "OctetEncoder", "ConnectorDecoder", "ConnectorEncoder",
    "WallarooParameterError",
    "TCPSourceConfig", "GenSourceConfig", "TCPSinkConfig",
    "CustomKafkaSourceCLIParser", "CustomKafkaSinkCLIParser",
    "DefaultKafkaSourceCLIParser", "DefaultKafkaSinkCLIParser",
]


def _classes_of(module, names):
    return [(n, getattr(module, n)) for n in names
            if isinstance(getattr(module, n), type)]


class ApiSurfaceTest(unittest.TestCase):

    def test_public_names_of_a_fresh_import_are_unchanged(self):
        rc, out, err = run_python(
            "import wallaroo\n"
            "print(' '.join(sorted(n for n in dir(wallaroo)"
            " if not n.startswith('_'))))\n")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split(), sorted(PUBLIC_NAMES))

    def test_private_names_still_resolve(self):
        missing = [n for n in PRIVATE_NAMES if not hasattr(wallaroo, n)]
        self.assertEqual(missing, [])

    def test_all_and_version(self):
        self.assertEqual(wallaroo.__all__, ALL)
        self.assertEqual(wallaroo.__version__, "0.6.0")

    def test_every_class_on_the_module_says_it_is_wallaroo(self):
        # Pickle looks a class up as <__module__>.<__qualname__>; the Go
        # host and error messages print the same.
        for name, cls in _classes_of(wallaroo, PUBLIC_NAMES + PRIVATE_NAMES):
            self.assertEqual(cls.__module__, "wallaroo", name)
            self.assertEqual(cls.__name__, name)
            self.assertIs(getattr(wallaroo, cls.__name__), cls)

    def test_classes_pickle_by_their_wallaroo_name(self):
        for name, cls in _classes_of(wallaroo, ALL):
            for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
                data = pickle.dumps(cls, protocol)
                self.assertIs(pickle.loads(data), cls)
            self.assertIn(("cwallaroo\n" + name + "\n").encode("ascii"),
                          pickle.dumps(cls, 0))

    def test_configs_pickle_as_wallaroo_classes(self):
        @wallaroo.encoder
        def encode(data):
            return data

        config = wallaroo.TCPSinkConfig("127.0.0.1", "7002", encode)
        data = pickle.dumps(config, 0)
        self.assertIn(b"cwallaroo\nTCPSinkConfig\n", data)
        self.assertIn(("cwallaroo\n" + type(encode).__name__ + "\n")
                      .encode("ascii"), data)
        copy = pickle.loads(data)
        self.assertIs(type(copy), wallaroo.TCPSinkConfig)
        self.assertEqual(copy.to_tuple()[:3], ("tcp", "127.0.0.1", "7002"))
        self.assertIs(type(copy.to_tuple()[3]), type(encode))

    def test_generated_classes_are_registered_on_wallaroo(self):
        @wallaroo.computation(name="surface")
        def double(data):
            return data * 2

        cls = type(double)
        self.assertEqual(cls.__module__, "wallaroo")
        self.assertIs(getattr(wallaroo, cls.__name__), cls)
        self.assertIs(type(pickle.loads(pickle.dumps(double))), cls)

    def test_api_errors_are_reported_as_wallaroo_errors(self):
        rc, out, err = run_python(
            "import wallaroo\n"
            "wallaroo.build_application('app', None)\n")
        self.assertNotEqual(rc, 0)
        self.assertIn("wallaroo.WallarooParameterError: API_Error: "
                      "build_application expects a Pipeline", err)

    def test_helpers_the_runner_and_experimental_use(self):
        @wallaroo.decoder(header_length=2, length_fmt=">H")
        def decode(bs):
            return bs

        self.assertEqual(wallaroo._stock_length_fmt(decode), ">H")
        self.assertEqual(wallaroo.deserialize(wallaroo.serialize([1, "a"])),
                         [1, "a"])
        import wallaroo.experimental as ex
        self.assertIs(wallaroo.experimental, ex)

        @ex.stream_message_decoder
        def connector_decode(bs):
            return bs

        self.assertIsInstance(connector_decode, wallaroo.ConnectorDecoder)
        self.assertEqual(wallaroo._stock_length_fmt(connector_decode), "<I")


if __name__ == "__main__":
    unittest.main()
