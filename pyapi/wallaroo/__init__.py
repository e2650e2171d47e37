# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""The Wallaroo 0.6 Python API.

An application module imports this package, builds a pipeline and returns
the result of :func:`build_application` from its ``application_setup(args)``::

    import wallaroo

    def application_setup(args):
        in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
        out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]
        p = (wallaroo.source("Reverse",
                             wallaroo.TCPSourceConfig(in_host, in_port,
                                                      decode))
             .to(reverse)
             .to_sink(wallaroo.TCPSinkConfig(out_host, out_port, encode)))
        return wallaroo.build_application("Reverse Word", p)

    @wallaroo.decoder(header_length=4, length_fmt=">I")
    def decode(bs):
        return bs.decode("utf-8")

    @wallaroo.computation(name="reverse")
    def reverse(data):
        return data[::-1]

    @wallaroo.encoder
    def encode(data):
        return (data + "\\n").encode("utf-8")

The public names, the generated class names (which pickle relies on) and the
application tuple are those of Wallaroo 0.6.0. Where this package
deliberately differs from 0.6.0 a comment starting with "Improvement over
0.6:" says so; in short: every API error is a WallarooParameterError whose
message says what was expected and what was given (0.6 printed the message
and raised an empty exception, or an AttributeError on Python 3), arity
checks work on every Python from 2.7 to 3.13, and more mistakes are caught
when the application is built rather than when the first message arrives.

The code lives in private modules; this file only gathers their names, so
that everything is ``wallaroo.<name>`` as in 0.6's single file::

    _decorators     the decorators and the classes they generate
    _bases          the marker classes (Computation, OctetDecoder, ...) and
                    the stock framing (_stock_length_fmt)
    _arity          naming user callables, arity checks
    _pipeline       Pipeline, source, build_application
    _configs        TCP, generator and Kafka source/sink configurations
    _cli            tcp_parse_*_addrs, kafka_parse_*_options
    _connector      the connector frame codec (for wallaroo.experimental)
    _serialization  serialize, deserialize (pickle)
    _errors         WallarooParameterError and the shared checks
    _stdio          unbuffered stdout/stderr under pipes
    _compat         the Python 2/3 differences

Every module serves Python 2.7 and 3.x unchanged: no annotations, f-strings,
``nonlocal`` or keyword-only syntax.
"""

from __future__ import absolute_import, division, print_function

# 0.6's single file imported these, so they were reachable as
# wallaroo.<module>; they still are.
import argparse  # noqa: F401
import calendar  # noqa: F401
import collections  # noqa: F401
import datetime  # noqa: F401
import inspect  # noqa: F401
import struct  # noqa: F401
import sys  # noqa: F401
import time  # noqa: F401

# The public API.
from wallaroo._serialization import deserialize, serialize
from wallaroo._errors import WallarooParameterError
from wallaroo._bases import (BaseWrapped, Computation, ComputationMulti,
                             ConnectorDecoder, ConnectorEncoder, Decoder,
                             Encoder, KeyExtractor, OctetDecoder,
                             OctetEncoder, StateComputation,
                             StateComputationMulti)
from wallaroo._decorators import (attach_to_module, computation,
                                  computation_multi, decoder, encoder,
                                  key_extractor, state_computation,
                                  state_computation_multi)
from wallaroo._pipeline import Pipeline, build_application, source
from wallaroo._cli import (kafka_parse_sink_options,
                           kafka_parse_source_options, tcp_parse_input_addrs,
                           tcp_parse_output_addrs)
from wallaroo._configs import (CustomKafkaSinkCLIParser,
                               CustomKafkaSourceCLIParser,
                               DefaultKafkaSinkCLIParser,
                               DefaultKafkaSourceCLIParser, GenSourceConfig,
                               TCPSinkConfig, TCPSourceConfig)

# Private helpers, reachable as wallaroo._<name> as they were in the single
# file: wallaroo._runner uses _stock_length_fmt, wallaroo.experimental the
# wrapping, arity and connector helpers, the tests _C and _Unbuffered. The
# rest are kept so that nothing written against that file breaks.
from wallaroo._serialization import pickle  # noqa: F401
from wallaroo._compat import (  # noqa: F401
    _PY2, _integer_types, _string_types)
from wallaroo._stdio import _Unbuffered, _unbuffer_if_piped  # noqa: F401
from wallaroo._errors import _api_error, _validate_name  # noqa: F401
from wallaroo._arity import (  # noqa: F401
    _Params, _f_repr, _func_name, _params, _params_py2, _params_py3,
    _validate_arity_compatability)
from wallaroo._bases import (  # noqa: F401
    _payload_length_from_fmt, _stock_length_fmt)
from wallaroo._decorators import (  # noqa: F401
    _C, _compute, _compute_multi, _compute_multi_state, _compute_state,
    _decode, _encode, _extract_key, _get_header_length, _initial_state,
    _name, _validate_framing, _wallaroo_wrap)
from wallaroo._pipeline import (  # noqa: F401
    _SINK_COMMANDS, _PipelineTree, _check_config)
from wallaroo._cli import (  # noqa: F401
    _KAFKA_LOG_LEVELS, _kafka_parse_broker, _parse_addrs)
from wallaroo._configs import _require_methods, _validate_address  # noqa: F401
from wallaroo._connector import (  # noqa: F401
    _connector_decode, _connector_decoder, _connector_encode, _event_time_ms)

__version__ = "0.6.0"

__all__ = [
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


def _claim_classes(namespace):
    """Make every class of the private modules found in ``namespace`` a
    ``wallaroo.<name>`` class.

    Pickle writes a class as ``<__module__>.<__qualname__>``: instances of
    the configs (and the marker classes themselves) must pickle as
    ``wallaroo.TCPSinkConfig`` etc., as they did in 0.6, and reprs and
    tracebacks say ``wallaroo.WallarooParameterError``. Generated classes
    are named ``wallaroo.<...>`` when they are created (see
    ``wallaroo._decorators``).
    """
    private = __name__ + "._"
    for name, obj in list(namespace.items()):
        if isinstance(obj, type) and obj.__module__.startswith(private):
            obj.__module__ = __name__


_claim_classes(globals())
del _claim_classes


# Import-time side effect, as in 0.6: user print output reaches a pipe (the
# host, a test harness) at once.
_unbuffer_if_piped("stdout")
_unbuffer_if_piped("stderr")


import wallaroo.experimental  # noqa: E402  (needs the names above)
