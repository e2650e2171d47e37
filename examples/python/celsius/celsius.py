"""Celsius to Fahrenheit, written to the Wallaroo 0.6 Python API.

Every message is a temperature in degrees Celsius, a big-endian 32-bit
float. Two stateless computations convert it, "multiply by 1.8" and then
"add 32", and the encoder writes the Fahrenheit value as a line of text
with six decimals ("%.6f\\n") to a TCP sink.
"""

import struct

import wallaroo


def application_setup(args):
    in_host, in_port = wallaroo.tcp_parse_input_addrs(args)[0]
    out_host, out_port = wallaroo.tcp_parse_output_addrs(args)[0]

    temperatures = wallaroo.source(
        "Celsius Conversion",
        wallaroo.TCPSourceConfig(in_host, in_port, decode_celsius))
    pipeline = (temperatures
                .to(multiply)
                .to(add)
                .to_sink(wallaroo.TCPSinkConfig(out_host, out_port,
                                                encode_fahrenheit)))
    return wallaroo.build_application("Celsius to Fahrenheit", pipeline)


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode_celsius(bs):
    return struct.unpack(">f", bs)[0]


@wallaroo.computation(name="multiply by 1.8")
def multiply(celsius):
    return celsius * 1.8


@wallaroo.computation(name="add 32")
def add(value):
    return value + 32


@wallaroo.encoder
def encode_fahrenheit(fahrenheit):
    return ("%.6f\n" % fahrenheit).encode("ascii")
