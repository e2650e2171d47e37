"""Tests of the private per-batch runner the host drives (wallaroo._runner)."""

import struct
import unittest

import wallaroo
from wallaroo import _runner


@wallaroo.decoder(header_length=4, length_fmt=">I")
def _decode(bs):
    if bs == b"skip":
        return None
    return bs.decode("utf-8")


@wallaroo.computation_multi(name="split")
def _split(s):
    return s.split(" ") + [None]


@wallaroo.computation(name="drop x")
def _drop_x(w):
    if w.startswith("x"):
        return None
    return w


@wallaroo.key_extractor
def _first(w):
    return w[0]


class _Total(object):
    def __init__(self):
        self.n = 0


@wallaroo.state_computation(name="count", state=_Total)
def _count(w, total):
    total.n += 1
    if w == "boom":
        raise KeyError(w)
    return "%s:%d" % (w, total.n)


@wallaroo.state_computation_multi(name="twice", state=_Total)
def _twice(w, total):
    total.n += 1
    return [w, None, w.upper()]


@wallaroo.encoder
def _encode(s):
    return (s + "\n").encode("utf-8")


@wallaroo.encoder
def _encode_text(s):
    return "%s|" % (s,)


@wallaroo.encoder
def _encode_list(s):
    return [s]


@wallaroo.decoder(header_length=2, length_fmt="<H")
def _short(bs):
    return bs


class _CustomLength(wallaroo.OctetDecoder):
    def header_length(self):
        return 4

    def payload_length(self, bs):
        return 3

    def decode(self, bs):
        return bs


def _path(stages, encoders, runner=None):
    runner = runner or _runner.Runner(8, [True] * 8)
    return runner, runner.path("src", _decode, stages, encoders)


class RunnerTest(unittest.TestCase):
    def test_keyed_state_filters_and_fan_out(self):
        stages = [
            ("computation", _split, "split", "0.0", True, False),
            ("computation", _drop_x, "drop x", "0.1", False, False),
            ("key_by", _first, "first", "0.2", False, False),
            ("state", _count, "count", "0.3", False, True),
        ]
        runner, path = _path(stages, [_encode, _encode_text])
        out = path.process([b"apple xenon avocado", b"skip", b"banana"])
        self.assertEqual(out, (b"apple:1\navocado:2\nbanana:1\n",
                               b"apple:1|avocado:2|banana:1|"))
        ents = runner.state_entities()
        self.assertEqual(ents, {"0.3": [b"a", b"b"]})
        # Same keys across batches keep their state.
        self.assertEqual(path.process([b"apricot"])[0], b"apricot:3\n")

    def test_unkeyed_state_uses_single_partition_key(self):
        stages = [("state", _count, "count", "1.0", False, False)]
        runner, path = _path(stages, [_encode])
        path.process([b"a", b"b"])
        self.assertEqual(runner.state_entities(),
                         {"1.0": [b"single-partition-key"]})

    def test_state_multi_skips_none(self):
        stages = [("key_by", _first, "k", "0.0", False, False),
                  ("state", _twice, "twice", "0.1", True, True)]
        _, path = _path(stages, [_encode])
        self.assertEqual(path.process([b"ab"]), (b"ab\nAB\n",))

    def test_str_and_bytes_keys_are_one_key(self):
        runner = _runner.Runner(4, [True] * 4)
        stages = [("key_by", _first, "k", "0.0", False, False),
                  ("state", _count, "count", "0.1", False, True)]
        path = runner.path("src", _decode, stages, [_encode])
        path.process([b"q1"])
        path.process([b"q2"])
        self.assertEqual(runner.state_entities(), {"0.1": [b"q"]})

    def test_error_records_stage_input_and_salvage(self):
        stages = [("key_by", _first, "k", "0.0", False, False),
                  ("state", _count, "count", "0.1", False, True)]
        _, path = _path(stages, [_encode])
        with self.assertRaises(KeyError):
            path.process([b"cat", b"dog", b"boom", b"ant"])
        self.assertEqual(path.failed, ("state 'count'", repr(u"boom")))
        self.assertEqual(path.salvage, (b"cat:1\ndog:1\n",))

    def test_encoder_contract(self):
        _, path = _path([], [_encode_list])
        with self.assertRaises(TypeError) as ctx:
            path.process([b"a"])
        self.assertIn("must return bytes", str(ctx.exception))
        self.assertTrue(path.failed[0].startswith("encoder"))

    def test_multi_must_return_list(self):
        @wallaroo.computation_multi(name="tuple maker")
        def tuple_maker(x):
            return (x, x)
        _, path = _path([("computation", tuple_maker, "tuple maker", "0.0",
                          True, False)], [_encode])
        with self.assertRaises(TypeError) as ctx:
            path.process([b"a"])
        self.assertIn("must return a list", str(ctx.exception))

    def test_remote_partition_is_refused(self):
        runner = _runner.Runner(2, [False, False])
        stages = [("state", _count, "count", "0.0", False, False)]
        path = runner.path("src", _decode, stages, [_encode])
        with self.assertRaises(RuntimeError):
            path.process([b"a"])

    def test_generator_path(self):
        class Countdown(object):
            def initial_value(self):
                return 3

            def apply(self, v):
                return v - 1 if v > 1 else None

        @wallaroo.computation(name="show")
        def show(v):
            return str(v)

        runner = _runner.Runner(4, [True] * 4)
        path = runner.gen_path("gen", Countdown(),
                               [("computation", show, "show", "0.0", False, False)],
                               [_encode])
        self.assertEqual(path.generate(2), ((b"3\n2\n",), False))
        self.assertEqual(path.generate(5), ((b"1\n",), True))

    def test_generator_error(self):
        class Broken(object):
            def initial_value(self):
                return 1

            def apply(self, v):
                if v == 2:
                    raise ValueError("no more")
                return v + 1

        runner = _runner.Runner(4, [True] * 4)
        path = runner.gen_path("gen", Broken(), [], [_encode_text])
        with self.assertRaises(ValueError):
            path.generate(10)
        self.assertEqual(path.failed, ("generator of source 'gen' (apply)", "2"))
        self.assertEqual(path.salvage, (b"1|",))

    def test_serialization_hooks(self):
        import pickle
        import types
        plain = types.ModuleType("plain")
        self.assertEqual(_runner.serialization_hooks(plain),
                         (wallaroo.serialize, wallaroo.deserialize))
        self.assertEqual(wallaroo.deserialize(wallaroo.serialize([1, "a"])), [1, "a"])
        one = types.ModuleType("one")
        one.serialize = pickle.dumps  # only one of the two: pickle is used
        self.assertEqual(_runner.serialization_hooks(one)[0], wallaroo.serialize)
        both = types.ModuleType("both")
        both.serialize = lambda o: b"x"
        both.deserialize = lambda b: "y"
        ser, de = _runner.serialization_hooks(both)
        self.assertEqual((ser(1), de(b"")), (b"x", "y"))
        runner = _runner.Runner(2, [True, True], (ser, de))
        self.assertIs(runner.serialize, ser)
        broken = types.ModuleType("broken")
        broken.serialize = 5
        broken.deserialize = pickle.loads
        with self.assertRaises(TypeError) as ctx:
            _runner.serialization_hooks(broken)
        self.assertIn("not callable", str(ctx.exception))

    def test_stock_length_fmt(self):
        self.assertEqual(_runner.stock_length_fmt(_decode), ">I")
        self.assertEqual(_runner.stock_length_fmt(_short), "<H")
        self.assertIsNone(_runner.stock_length_fmt(_CustomLength()))
        self.assertEqual(struct.calcsize(_runner.stock_length_fmt(_short)), 2)


if __name__ == "__main__":
    unittest.main()
