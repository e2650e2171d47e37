"""Decorated objects: the behaviour 0.6's machida/test/wallaroo_test.py checks,
plus generated names, pickling and the key extractor's chr()."""

from __future__ import absolute_import, print_function

import pickle
import re
import struct
import textwrap
import unittest

import wallaroo
from wallaroo.tests._helpers import next_name, run_python

# Decorated at import time, like an application module. The expected names
# are computed before each decoration because the counters are global.
EXPECTED = {}

EXPECTED["my_computation"] = next_name(wallaroo.Computation, "my_computation")


@wallaroo.computation("My Computation")
def my_computation(data):
    """Add one."""
    return data + 1


EXPECTED["my_computation2"] = next_name(wallaroo.Computation,
                                        "my_computation2")


@wallaroo.computation(name="My Computation 2")
def my_computation2(data):
    return data * 2


EXPECTED["my_multi"] = next_name(wallaroo.ComputationMulti, "my_multi")


@wallaroo.computation_multi("My Multi")
def my_multi(data):
    return data.split(" ")


EXPECTED["my_state_comp"] = next_name(wallaroo.StateComputation,
                                      "my_state_comp")


@wallaroo.state_computation("My State Computation", state="world")
def my_state_comp(data, state):
    return (data, state)


class Counter(object):
    def __init__(self):
        self.total = 0


EXPECTED["my_state_multi"] = next_name(wallaroo.StateComputationMulti,
                                       "my_state_multi")


@wallaroo.state_computation_multi("My State Multi", Counter)
def my_state_multi(data, state):
    state.total += data
    return [data, state.total]


EXPECTED["first_letter"] = next_name(wallaroo.KeyExtractor, "first_letter")


@wallaroo.key_extractor
def first_letter(data):
    return data[0]


@wallaroo.key_extractor
def as_number(data):
    return data


EXPECTED["decode_it"] = next_name(wallaroo.OctetDecoder, "decode_it")


@wallaroo.decoder(header_length=4, length_fmt=">I")
def decode_it(bs):
    return bs + b"!"


@wallaroo.decoder(2, "<H")
def decode_short(bs):
    return bs


EXPECTED["encode_it"] = next_name(wallaroo.OctetEncoder, "encode_it")


@wallaroo.encoder
def encode_it(data):
    return data + b"\n"


def roundtrip(obj):
    return pickle.loads(pickle.dumps(obj))


class GeneratedNamesTest(unittest.TestCase):

    def test_names_follow_base_counter_funcname(self):
        objs = {"my_computation": my_computation,
                "my_computation2": my_computation2,
                "my_multi": my_multi, "my_state_comp": my_state_comp,
                "my_state_multi": my_state_multi,
                "first_letter": first_letter, "decode_it": decode_it,
                "encode_it": encode_it}
        for func_name, obj in objs.items():
            name = EXPECTED[func_name]
            self.assertEqual(type(obj).__name__, name)
            self.assertIs(getattr(wallaroo, name), type(obj))
            self.assertEqual(type(obj).__module__, "wallaroo")
            if hasattr(type(obj), "__qualname__"):
                self.assertEqual(type(obj).__qualname__, name)
            self.assertTrue(re.match(r"^[A-Za-z]+_[1-9][0-9]*__" + func_name
                                     + "$", name), name)

    def test_exact_06_names_in_a_fresh_interpreter(self):
        rc, out, err = run_python(textwrap.dedent("""
            import wallaroo
            from wallaroo.experimental import (stream_message_decoder,
                                               stream_message_encoder)

            @wallaroo.computation("a")
            def my_computation(d): return d

            @wallaroo.computation("b")
            def my_computation2(d): return d

            @wallaroo.computation_multi("c")
            def split(d): return [d]

            @wallaroo.state_computation("d", dict)
            def count(d, s): return d

            @wallaroo.state_computation_multi("e", dict)
            def count_multi(d, s): return [d]

            @wallaroo.key_extractor
            def key(d): return d

            @wallaroo.decoder(4, ">I")
            def dec(b): return b

            @wallaroo.encoder
            def enc(d): return d

            @stream_message_decoder
            def sdec(b): return b

            @stream_message_encoder
            def senc(d): return d

            for o in (my_computation, my_computation2, split, count,
                      count_multi, key, dec, enc, sdec, senc):
                print(type(o).__name__)
            """))
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split(), [
            "Computation_1__my_computation", "Computation_2__my_computation2",
            "ComputationMulti_1__split", "StateComputation_1__count",
            "StateComputationMulti_1__count_multi", "KeyExtractor_1__key",
            "OctetDecoder_1__dec", "OctetEncoder_1__enc",
            "ConnectorDecoder_1__sdec", "ConnectorEncoder_1__senc"])

    def test_pickle_across_processes_with_same_module(self):
        # Every worker imports the same module, so the generated names match.
        app = textwrap.dedent("""
            import wallaroo

            @wallaroo.computation("first")
            def first(d): return d

            @wallaroo.computation("second")
            def second(d): return d + 1
            """)
        rc, out, err = run_python(app + textwrap.dedent("""
            import binascii, pickle
            print(binascii.hexlify(pickle.dumps(second, 2)).decode("ascii"))
            """))
        self.assertEqual(rc, 0, err)
        rc, out, err = run_python(app + textwrap.dedent("""
            import binascii, pickle
            o = pickle.loads(binascii.unhexlify("%s"))
            print(o.name(), o.compute(1), o is not second)
            """ % out.strip()))
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split(), ["second", "2", "True"])

    def test_attach_to_module_without_index(self):
        class Thing(object):
            pass

        def helper():
            pass
        wallaroo.attach_to_module(Thing, "Custom", helper)
        self.assertEqual(Thing.__name__, "Custom__helper")
        self.assertIs(wallaroo.Custom__helper, Thing)


class ComputationTest(unittest.TestCase):

    def test_computation(self):
        self.assertEqual(my_computation.name(), "My Computation")
        self.assertEqual(my_computation.compute(1), 2)
        self.assertEqual(my_computation2.name(), "My Computation 2")
        self.assertEqual(my_computation2.compute(3), 6)
        self.assertIsInstance(my_computation, wallaroo.Computation)
        self.assertIsInstance(my_computation, wallaroo.BaseWrapped)
        self.assertNotIsInstance(my_computation, wallaroo.StateComputation)
        self.assertNotIsInstance(my_computation, wallaroo.ComputationMulti)
        self.assertFalse(hasattr(my_computation, "compute_multi"))
        self.assertFalse(my_computation.is_stateful)
        self.assertIsNone(my_computation.initial_state)
        self.assertEqual(type(my_computation).__doc__, "Add one.")

    def test_calling_returns_the_object(self):
        self.assertIs(my_computation(1), my_computation)
        self.assertIs(my_computation(), my_computation)
        self.assertIs(encode_it("x", y=2), encode_it)
        self.assertIs(first_letter(), first_letter)

    def test_computation_pickles(self):
        other = roundtrip(my_computation)
        self.assertIsInstance(other, type(my_computation))
        self.assertEqual(other.name(), "My Computation")
        self.assertEqual(other.compute(41), 42)
        self.assertEqual(pickle.loads(pickle.dumps(my_computation, 0)).compute(
            1), 2)
        self.assertEqual(wallaroo.deserialize(wallaroo.serialize(
            my_computation2)).compute(2), 4)

    def test_computation_multi(self):
        self.assertEqual(my_multi.compute_multi("hello world dear friend"),
                         ["hello", "world", "dear", "friend"])
        self.assertIsInstance(my_multi, wallaroo.ComputationMulti)
        self.assertIsInstance(my_multi, wallaroo.Computation)
        self.assertTrue(my_multi._is_multi)
        self.assertFalse(hasattr(my_multi, "compute"))
        self.assertEqual(roundtrip(my_multi).compute_multi("a b"), ["a", "b"])

    def test_state_computation_accepts_any_state(self):
        self.assertEqual(my_state_comp.name(), "My State Computation")
        self.assertEqual(my_state_comp.compute("hello", "world"),
                         ("hello", "world"))
        self.assertIsInstance(my_state_comp, wallaroo.StateComputation)
        self.assertTrue(my_state_comp.is_stateful)
        self.assertFalse(hasattr(my_state_comp, "compute_multi"))
        self.assertEqual(roundtrip(my_state_comp).compute(1, 2), (1, 2))

    def test_state_computation_multi(self):
        state = my_state_multi.initial_state()
        self.assertIsInstance(state, Counter)
        self.assertIsNot(state, my_state_multi.initial_state())
        self.assertEqual(my_state_multi.compute_multi(5, state), [5, 5])
        self.assertEqual(my_state_multi.compute_multi(2, state), [2, 7])
        self.assertIsInstance(my_state_multi, wallaroo.StateComputationMulti)
        self.assertIsInstance(my_state_multi, wallaroo.StateComputation)
        self.assertIsInstance(my_state_multi, wallaroo.ComputationMulti)
        other = roundtrip(my_state_multi)
        self.assertEqual(other.compute_multi(1, Counter()), [1, 1])
        self.assertIsInstance(other.initial_state(), Counter)

    def test_state_objects_pickle_independently(self):
        state = Counter()
        state.total = 12
        copy = roundtrip(state)
        self.assertEqual(copy.total, 12)
        copy.total += 1
        self.assertEqual(state.total, 12)


class KeyDecoderEncoderTest(unittest.TestCase):

    def test_key_extractor(self):
        self.assertEqual(first_letter.extract_key("abcde"), "a")
        self.assertIsInstance(first_letter, wallaroo.KeyExtractor)
        self.assertEqual(roundtrip(first_letter).extract_key("xyz"), "x")

    def test_int_key_becomes_chr(self):
        self.assertEqual(as_number.extract_key(65), "A")
        self.assertEqual(as_number.extract_key(0), "\x00")
        self.assertEqual(as_number.extract_key(255), chr(255))
        self.assertEqual(as_number.extract_key(True), "\x01")
        self.assertEqual(as_number.extract_key("k"), "k")

    def test_decoder(self):
        self.assertEqual(decode_it.header_length(), 4)
        self.assertEqual(decode_it.length_fmt, ">I")
        self.assertEqual(decode_it.payload_length(struct.pack(">I", 10)), 10)
        self.assertEqual(decode_it.decode(b"hello"), b"hello!")
        self.assertIsInstance(decode_it, wallaroo.OctetDecoder)
        self.assertIsInstance(decode_it, wallaroo.Decoder)
        other = roundtrip(decode_it)
        self.assertEqual(other.header_length(), 4)
        self.assertEqual(other.payload_length(b"\x00\x00\x01\x00"), 256)
        self.assertEqual(decode_short.header_length(), 2)
        self.assertEqual(decode_short.payload_length(b"\x01\x02"), 0x0201)

    def test_stock_payload_length_is_detectable(self):
        # The host frames in Go only when payload_length is the stock one.
        self.assertEqual(wallaroo._stock_length_fmt(decode_it), ">I")
        self.assertNotIn("payload_length", type(decode_it).__dict__)

        class OwnLength(wallaroo.OctetDecoder):
            length_fmt = ">I"

            def payload_length(self, bs):
                return 3
        self.assertIsNone(wallaroo._stock_length_fmt(OwnLength()))
        patched = roundtrip(decode_it)
        patched.payload_length = lambda bs: 3
        self.assertIsNone(wallaroo._stock_length_fmt(patched))
        self.assertIsNone(wallaroo._stock_length_fmt(encode_it))

    def test_encoder(self):
        self.assertEqual(encode_it.encode(b"hello"), b"hello\n")
        self.assertIsInstance(encode_it, wallaroo.OctetEncoder)
        self.assertIsInstance(encode_it, wallaroo.Encoder)
        self.assertEqual(roundtrip(encode_it).encode(b"x"), b"x\n")

    def test_repr_names_the_user_function(self):
        self.assertIn("my_computation", repr(my_computation))
        self.assertIn(type(my_computation).__name__, repr(my_computation))


if __name__ == "__main__":
    unittest.main()
