"""Tests of the private per-batch runner the host drives (wallaroo._runner)."""

import gc
import marshal
import pickle
import struct
import unittest

import wallaroo
from wallaroo import _columns, _runner


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


class _Word(str):
    """A value the engine must never compare with its key (its __eq__ is
    the application's code, which may raise)."""
    def __eq__(self, other):
        if str.__eq__(self, other):
            raise AssertionError("the engine compared a value with its key")
        return False

    def __ne__(self, other):
        return not self.__eq__(other)
    __hash__ = str.__hash__


@wallaroo.decoder(header_length=4, length_fmt=">I")
def _words(bs):
    return _Word(bs.decode("utf-8"))


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


C, S, K = _runner.COMPUTATION, _runner.STATE, _runner.KEY_BY


def _unpacked(column):
    """A column of an envelope batch as a list (packed: see _columns)."""
    return _columns.unpack_text(column) if type(column) is bytes else column


def _stages(tuples):
    return [_runner.Stage(*t) for t in tuples]


def _path(stages, encoders, runner=None):
    runner = runner or _runner.Runner(8)
    return runner, runner.path("src", _decode, _stages(stages), encoders)


class _Touchy(object):
    """Pickles, but raises when unpickled (as a broken __setstate__)."""

    def __getstate__(self):
        return {"n": 1}

    def __setstate__(self, state):
        raise KeyError("no n here")


class RunnerTest(unittest.TestCase):
    def test_keyed_state_filters_and_fan_out(self):
        stages = [
            (C, _split, "split", "0.0", True, False),
            (C, _drop_x, "drop x", "0.1", False, False),
            (K, _first, "first", "0.2", False, False),
            (S, _count, "count", "0.3", False, True),
        ]
        runner, path = _path(stages, [_encode, _encode_text])
        out = path.process([b"apple xenon avocado", b"skip", b"banana"])
        # Completed here: 3 outputs, and 4 filtered out (b"skip" by the
        # decoder, the None after each split, "xenon").
        self.assertEqual(out, (b"apple:1\navocado:2\nbanana:1\n",
                               b"apple:1|avocado:2|banana:1|", 7))
        ents = runner.state_entities()
        self.assertEqual(ents, {"0.3": [b"a", b"b"]})
        # Same keys across batches keep their state.
        self.assertEqual(path.process([b"apricot"])[0], b"apricot:3\n")

    def test_filtered_messages_complete_with_the_outputs(self):
        # The count a call returns is of the messages that completed here
        # (start-to-end and node-ingress-egress, spec 5.3): those that
        # reached the sinks and those filtered out on the way.
        @wallaroo.computation_multi(name="fan")
        def fan(s):
            return {"none": None, "empty": [], "two": [s, s]}.get(s, [s, None])

        stages = [(C, fan, "fan", "0.0", True, False),
                  (C, _drop_x, "drop x", "0.1", False, False)]
        _, path = _path(stages, [_encode])
        out = path.process([b"skip", b"none", b"empty", b"two", b"xy", b"ok"])
        # skip: decoder; none, empty: the fan-out; two: 2 outputs;
        # xy: its None and then "xy" by drop x; ok: 1 output and a None.
        self.assertEqual(out, (b"two\ntwo\nok\n", 3 + 1 + 2 + 2 + 1))
        # Nothing filtered: the outputs alone.
        self.assertEqual(path.process([b"two"]), (b"two\ntwo\n", 2))

    def test_unkeyed_state_uses_single_partition_key(self):
        stages = [(S, _count, "count", "1.0", False, False)]
        runner, path = _path(stages, [_encode])
        path.process([b"a", b"b"])
        self.assertEqual(runner.state_entities(),
                         {"1.0": [b"single-partition-key"]})

    def test_state_multi_skips_none(self):
        stages = [(K, _first, "k", "0.0", False, False),
                  (S, _twice, "twice", "0.1", True, True)]
        _, path = _path(stages, [_encode])
        self.assertEqual(path.process([b"ab"]), (b"ab\nAB\n", 3))  # (the None completes too)

    def test_str_and_bytes_keys_are_one_key(self):
        runner = _runner.Runner(4)
        stages = [(K, _first, "k", "0.0", False, False),
                  (S, _count, "count", "0.1", False, True)]
        path = runner.path("src", _decode, _stages(stages), [_encode])
        path.process([b"q1"])
        path.process([b"q2"])
        self.assertEqual(runner.state_entities(), {"0.1": [b"q"]})

    def test_bytes_keys_are_their_text(self):
        class Raw(bytes):
            def __hash__(self):
                raise AssertionError("application code ran")

        @wallaroo.key_extractor
        def raw(w):
            if w.startswith("!"):
                return b"\xff"  # not UTF-8: kept apart by surrogateescape
            if w.startswith("="):
                return Raw(w[1:2].encode("utf-8"))
            if w.startswith("-"):
                return w[1:2]  # text: the same key as its bytes
            if w.startswith("L"):
                return w.encode("utf-8")  # long keys are not kept
            return w[:1].encode("utf-8")
        runner = _runner.Runner(4)
        stages = [(K, raw, "k", "0.0", False, False),
                  (S, _count, "count", "0.1", False, True)]
        path = runner.path("src", _decode, _stages(stages), [_encode])
        long_key = "L" * 100
        out = path.process([b"q1", b"q2", b"!x", b"!y", b"=q", b"-q",
                            long_key.encode("ascii"), long_key.encode("ascii")])
        self.assertEqual(out[0], b"q1:1\nq2:2\n!x:1\n!y:2\n=q:3\n-q:4\n"
                         + long_key.encode("ascii") + b":1\n"
                         + long_key.encode("ascii") + b":2\n")
        self.assertEqual(sorted(runner.state_entities()["0.1"]),
                         sorted([b"q", b"\xff", long_key.encode("ascii")]))
        self.assertEqual(set(type(k) for k in runner.states["0.1"]), set([str]))
        if not _runner._PY2:
            kt = runner.key_texts
            self.assertEqual(kt.texts, {b"q": "q", b"\xff": "\udcff"})
            # A hit gives the cached object itself.
            z = "".join(["z"])
            kt.texts[b"z"] = z
            path.process([b"z1"])
            self.assertIs([k for k in runner.states["0.1"] if k == "z"][0], z)
            # Bounded: past MAX_KEYS it starts again; every key is right.
            kt.MAX_KEYS = 3
            path.process([("%s1" % c).encode("ascii") for c in "abcdefg"])
            self.assertLessEqual(len(kt.texts), 3)
            self.assertEqual(runner.state_entities()["0.1"].count(b"g"), 1)
            path.process([b"g2"])
            self.assertEqual(runner.states["0.1"]["g"].n, 2)
            # Cleared out, then back: kept again, the same state.
            path.process([b"a2"])
            self.assertIn(b"a", kt.texts)
            self.assertEqual(runner.states["0.1"]["a"].n, 2)
            # The edges: b"" is never kept; 64 bytes are, 65 are not.
            kt.MAX_KEYS = 100
            kt.miss(b"")
            kt.miss(b"x" * 64)
            kt.miss(b"y" * 65)
            self.assertNotIn(b"", kt.texts)
            self.assertIn(b"x" * 64, kt.texts)
            self.assertNotIn(b"y" * 65, kt.texts)

    def test_a_key_of_a_str_subclass_is_its_plain_text(self):
        @wallaroo.key_extractor
        def word(w):
            return _Word(w)  # its __eq__ raises if compared with "ant"
        runner = _runner.Runner(4)
        stages = [(K, word, "k", "0.0", False, False),
                  (S, _count, "count", "0.1", False, True)]
        path = runner.path("src", _decode, _stages(stages), [_encode])
        path.process([b"ant", b"ant"])
        self.assertEqual([type(k) for k in runner.states["0.1"]], [str])
        self.assertEqual(runner.state_entities(), {"0.1": [b"ant"]})

    def test_error_records_stage_input_and_salvage(self):
        stages = [(K, _first, "k", "0.0", False, False),
                  (S, _count, "count", "0.1", False, True)]
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
        _, path = _path([(C, tuple_maker, "tuple maker", "0.0",
                          True, False)], [_encode])
        with self.assertRaises(TypeError) as ctx:
            path.process([b"a"])
        self.assertIn("must return a list", str(ctx.exception))

    def test_remote_single_partition_leaves_as_envelope(self):
        runner = _runner.Runner(2)
        stages = [(S, _count, "count", "0.0", False, False)]
        path = runner.path("src", _decode, _stages(stages), [_encode])
        runner.set_ownership([3, 3], 1)
        self.assertEqual(path.process([b"a", b"b"], 7), (b"", 0))
        envs = runner.take_envelopes()
        self.assertEqual([(d, n) for d, n, _ in envs], [(3, 2)])
        self.assertEqual(runner.take_envelopes(), [])
        # Resumed here, they reach the state stage with the single key.
        self.assertEqual(runner.resume(envs[0][2]), [(0, (b"a:1\nb:2\n", 2), 0)])
        self.assertEqual(runner.state_entities(),
                         {"0.0": [b"single-partition-key"]})

    def test_metrics_sampling_times_stages_and_counts_hand_offs(self):
        import struct
        runner = _runner.Runner(2)
        stages = [(C, _split, "split", "0.0", True, False),
                  (S, _count, "count", "0.1", False, False)]
        path = runner.path("src", _decode, _stages(stages), [_encode])
        runner.set_metrics(1)  # every message timed
        self.assertEqual(path.process([b"a b", b"c"], 7), (b"a:1\nb:2\nc:3\n", 5))  # (+ split's Nones)
        data, handed, raw = runner.take_metrics()
        vals = struct.unpack("<%dq" % (len(data) // 8), data) \
            if struct.calcsize("<q") == 8 else ()
        # The call's weight (1: every message timed), then decoder (0)
        # and split (1) per frame, count (2) per word.
        self.assertEqual(vals[:2], (-1, 1))
        codes = sorted(vals[2::2])
        self.assertEqual(codes, [0, 0, 1, 1, 2, 2, 2])
        self.assertTrue(all(v >= 0 for v in vals[3::2]))
        self.assertEqual((handed, raw), ([], []))
        self.assertEqual(runner.take_metrics()[0], b"")
        # Off again: nothing is timed; the outputs are the same shape.
        runner.set_metrics(0)
        self.assertEqual(path.process([b"d"], 7), (b"d:4\n", 2))
        self.assertEqual(runner.take_metrics(), (b"", [], []))
        # Sampling: one frame of each stratum of a call (up to _STRATUM
        # frames) is timed, at random, and stands for the stratum's
        # frames; the others run untimed, in order.
        runner.set_metrics(3)
        for _ in range(40):
            got = path.process([("%d" % i).encode("ascii") for i in range(5)], 7)
            self.assertEqual(got[1], 10)  # 5 outputs, 5 Nones after split
            data, _, _ = runner.take_metrics()
            vals = struct.unpack("<%dq" % (len(data) // 8), data)
            self.assertEqual(vals[:2], (-1, 5))
            self.assertEqual(sorted(vals[2::2]), [0, 1, 2])
        n = 2 * _runner._STRATUM + 10
        outs = path.process([b"y z"] * n, 7)
        self.assertEqual(outs[1], 3 * n)  # 2 words and a None a frame
        data, _, _ = runner.take_metrics()
        vals = struct.unpack("<%dq" % (len(data) // 8), data)
        weights = [vals[i + 1] for i in range(0, len(vals), 2) if vals[i] == -1]
        self.assertEqual(weights, [_runner._STRATUM, _runner._STRATUM, 10])
        # one frame of 2 words a stratum
        self.assertEqual(sorted(c for c in vals[0::2] if c >= 0), [0] * 3 + [1] * 3 + [2] * 6)
        # The timed frame first, last, in the middle: the same outputs,
        # in the same order, as with metrics off.
        frames = [("w%d x%d" % (i, i)).encode("ascii") for i in range(n)]
        for pin in (0.0, 0.5, 0.999999):
            off = _runner.Runner(2)
            off_path = off.path("src", _decode, _stages(stages), [_encode])
            on = _runner.Runner(2)
            on.pick = lambda pin=pin: pin
            on_path = on.path("src", _decode, _stages(stages), [_encode])
            on.set_metrics(3)
            for size in (0, 1, 2, n):
                self.assertEqual(on_path.process(frames[:size], 7),
                                 off_path.process(frames[:size], 7), (pin, size))
        # An empty call records nothing.
        path.process([], 7)
        self.assertEqual(runner.take_metrics()[0], b"")
        # Hand-offs are counted per path while metrics are on.
        runner.set_ownership([5, 5], 2)
        path.process([b"p q"], 9)
        runner.take_envelopes()
        self.assertEqual(runner.take_metrics()[1], [0, 2])  # p and q

    def test_generator_path(self):
        class Countdown(object):
            def initial_value(self):
                return 3

            def apply(self, v):
                return v - 1 if v > 1 else None

        @wallaroo.computation(name="show")
        def show(v):
            return str(v)

        runner = _runner.Runner(4)
        path = runner.gen_path("gen", Countdown(),
                               _stages([(C, show, "show", "0.0", False, False)]),
                               [_encode])
        self.assertEqual(path.generate(2), ((b"3\n2\n", 2), False))
        self.assertEqual(path.generate(5), ((b"1\n", 1), True))

    def test_generator_error(self):
        class Broken(object):
            def initial_value(self):
                return 1

            def apply(self, v):
                if v == 2:
                    raise ValueError("no more")
                return v + 1

        runner = _runner.Runner(4)
        path = runner.gen_path("gen", Broken(), [], [_encode_text])
        with self.assertRaises(ValueError):
            path.generate(10)
        self.assertEqual(path.failed, ("generator of source 'gen' (apply)", "2"))
        self.assertEqual(path.salvage, (b"1|", 1))

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
        runner = _runner.Runner(2, (ser, de))
        self.assertIs(runner.serialize, ser)
        broken = types.ModuleType("broken")
        broken.serialize = 5
        broken.deserialize = pickle.loads
        with self.assertRaises(TypeError) as ctx:
            _runner.serialization_hooks(broken)
        self.assertIn("not callable", str(ctx.exception))

    def _loopback_run(self, owner, spread, batches, hooks=None):
        """Run batches through a split/drop/key/count/upper path, with
        envelopes looped back into the same runner; return the sink
        output as lines."""
        @wallaroo.computation(name="upper")
        def upper(s):
            return s.upper()
        runner = _runner.Runner(16, hooks)
        stages = _stages([(C, _split, "split", "0.0", True, False),
                          (C, _drop_x, "drop x", "0.1", False, False),
                          (K, _first, "first", "0.2", False, False),
                          (S, _count, "count", "0.3", False, True),
                          (C, upper, "upper", "0.4", False, False)])
        segs = [_runner.Segment(_runner.SEG_SOURCE, 0),
                _runner.Segment(_runner.SEG_SPREAD, 0),
                _runner.Segment(_runner.SEG_KEYED, 3)]
        path = runner.path("src", _decode, stages, [_encode], segs)
        runner.set_ownership(owner, 1, spread)
        out = []
        sent = [0]
        for b in batches:
            out.append(path.process(b, 5)[0])
            envs = runner.take_envelopes()
            while envs:
                for dest, n, data in envs:
                    sent[0] += n
                    for pi, outs, _ in runner.resume(data):
                        out.append(outs[0])
                envs = runner.take_envelopes()
        return b"".join(out).decode("utf-8").splitlines(), sent[0], runner

    def test_a_failing_hook_says_which_and_on_what(self):
        owner = [(p % 2) for p in range(16)]
        batches = [[b"apple banana cherry date elder fig grape"]]

        def refuse(o):
            if o.startswith("b"):
                raise ValueError("no %s" % o)
            return wallaroo.serialize(o)
        with self.assertRaises(ValueError):
            self._loopback_run(owner, [0], batches, (refuse, wallaroo.deserialize))

        def not_bytes(o):
            return 7
        try:
            self._loopback_run(owner, [0], batches, (not_bytes, wallaroo.deserialize))
        except TypeError as e:
            self.assertIn("serialize", str(e))
        else:
            self.fail("a serialize returning an int was taken")

        # The note: which hook, on which path, on what.
        runner = _runner.Runner(16, (refuse, wallaroo.deserialize))
        stages = _stages([(K, _first, "first", "0.2", False, False),
                          (S, _count, "count", "0.3", False, True)])
        segs = [_runner.Segment(_runner.SEG_SOURCE, 0),
                _runner.Segment(_runner.SEG_KEYED, 1)]
        path = runner.path("src", _decode, stages, [_encode], segs)
        runner.set_ownership([1] * 16, 1, [0])
        path.process([b"apple", b"banana"], 5)
        self.assertIsNone(runner.failed_hook)
        with self.assertRaises(ValueError):
            runner.take_envelopes()
        self.assertEqual(runner.failed_hook, ("serialize", 0, _runner._describe(u"banana")))
        # deserialize: the value as it arrived.
        good = _runner.Runner(16, (lambda o: wallaroo.serialize(o), wallaroo.deserialize))
        gpath = good.path("src", _decode, stages, [_encode], segs)
        good.set_ownership([1] * 16, 1, [0])
        gpath.process([b"cherry"], 5)
        (_, _, data), = good.take_envelopes()

        def deny(b):
            raise KeyError("no")
        bad = _runner.Runner(16, (wallaroo.serialize, deny))
        bad.path("src", _decode, stages, [_encode], segs)
        with self.assertRaises(KeyError):
            bad.resume(data)
        hook, pi, what = bad.failed_hook
        self.assertEqual((hook, pi), ("deserialize", 0))
        self.assertIn("cherry", what)

    def test_envelopes_loop_back_to_the_same_output(self):
        import random
        rnd = random.Random(7)
        words = ["apple", "avocado", "banana", "cherry", "xray", "date",
                 "elder", "fig", "grape", "kiwi", u"\u00e9clair"]
        batches = [[(" ".join(rnd.choice(words) for _ in range(rnd.randint(1, 6)))
                     ).encode("utf-8") for _ in range(rnd.randint(1, 8))]
                   for _ in range(40)]
        fused, n0, _ = self._loopback_run([0] * 16, [0], batches)
        self.assertEqual(n0, 0)
        owner = [(p % 3) for p in range(16)]  # dests 1 and 2 "elsewhere"
        split, n1, runner = self._loopback_run(owner, [0], batches)
        self.assertGreater(n1, 0)
        self.assertEqual(sorted(fused), sorted(split))

        def per_key(lines):
            d = {}
            for line in lines:
                d.setdefault(line[0], []).append(line)
            return d
        self.assertEqual(per_key(fused), per_key(split))
        # Same with the module's own hooks: one call per value.
        hooks = (lambda o: wallaroo.serialize(o), wallaroo.deserialize)
        hooked, n2, _ = self._loopback_run(owner, [0], batches, hooks)
        self.assertEqual(n1, n2)
        self.assertEqual(per_key(fused), per_key(hooked))
        # A spread chain deals messages to every destination: no order
        # between them (as 0.6's random partitioner), but the same words
        # and the same totals per key.
        spread, n3, sr = self._loopback_run(owner, [0, 1, 2], batches)
        self.assertGreater(n3, n1)

        def words(lines):
            return sorted(line.split(":")[0] for line in lines)
        self.assertEqual(words(fused), words(spread))
        _, _, fr = self._loopback_run([0] * 16, [0], batches)
        self.assertEqual(dict((k, s.n) for k, s in fr.states["0.3"].items()),
                         dict((k, s.n) for k, s in sr.states["0.3"].items()))

    def test_later_segments_leave_first(self):
        # key_by, state, key_by, state: one call of a worker whose table
        # sends the key elsewhere (parked during a rescale) takes both a
        # new message (leaving at the first boundary) and an older one
        # resumed after it (leaving at the second). In the batch the older
        # one's group must come first, so that where the batch is run the
        # key's messages reach the second state in their order.
        stages = [(K, _first, "k1", "0.0", False, False),
                  (S, _count, "one", "0.1", False, True),
                  (K, _first, "k2", "0.2", False, False),
                  (S, _count, "two", "0.3", False, True)]

        def make(owner):
            r = _runner.Runner(4)
            p = r.path("src", _decode, _stages(stages), [_encode])
            r.set_ownership(owner, 1)
            return r, p
        a, pa = make([5] * 4)
        pa.process([b"a1"])
        (_, _, older), = a.take_envelopes()  # a1, bound for "one"
        b, pb = make([5] * 4)
        pb.process([b"a2"])  # a2 leaves at the first boundary
        b.resume(older)      # a1 runs "one", leaves at the second
        (_, n, data), = b.take_envelopes()
        self.assertEqual(n, 2)
        fmt, groups = _runner._load(data, "batch")
        self.assertEqual([g[1] for g in groups], [2, 1])
        c, _ = make([0] * 4)
        outs = b"".join(r[1][0] for r in c.resume(data))
        self.assertEqual(outs, b"a1:1:1\na2:1:2\n")

    def test_envelope_batches_are_bounded(self):
        saved = _runner._MAX_ENVELOPES
        _runner._MAX_ENVELOPES = 3
        try:
            owner = [1] * 16
            batches = [[b"apple avocado banana cherry date elder fig"]]
            _, sent, _ = self._loopback_run(owner, [0], batches)
            runner = _runner.Runner(16)
            stages = _stages([(K, _first, "first", "0.0", False, False),
                              (S, _count, "count", "0.1", False, True)])
            runner.path("src", _decode, stages, [_encode])
            runner.set_ownership([1] * 16, 1)
            runner.paths[0].process([b"a%d" % i for i in range(10)], 1)
            envs = runner.take_envelopes()
            self.assertEqual([n for _, n, _ in envs], [3, 3, 3, 1])
            self.assertEqual(sent, 7)
        finally:
            _runner._MAX_ENVELOPES = saved

    def test_envelope_batches_are_bounded_in_bytes(self):
        # Batches are cut by bytes too (a frame between workers has a
        # limit): halves of the records until each fits, or is one record.
        saved = _runner._MAX_BATCH_BYTES
        _runner._MAX_BATCH_BYTES = 300
        try:
            stages = _stages([(K, _first, "first", "0.0", False, False),
                              (S, _count, "count", "0.1", False, True)])
            msgs = [(b"k%d " % (i % 4)) + b"x" * (i * 7 % 90) for i in range(41)]
            msgs.append(b"big " + b"y" * 1000)  # one record over the bound
            local = _runner.Runner(16)
            local.path("src", _decode, stages, [_encode])
            want = local.paths[0].process(msgs, 1)[0]

            # Metrics off (no ingest times), on with one time for all
            # records, on with a time per record: each is cut right.
            for every, times in [(0, [1]), (4, [7]), (4, [5, 9])]:
                here = _runner.Runner(16)
                here.path("src", _decode, stages, [_encode])
                here.set_ownership([1] * 16, 1)
                here.set_metrics(every)
                half = len(msgs) // len(times)
                for i, ts in enumerate(times):
                    chunk = msgs[i * half:] if i == len(times) - 1 else \
                        msgs[i * half:(i + 1) * half]
                    self.assertEqual(here.paths[0].process(chunk, ts)[0], b"")
                envs = here.take_envelopes()
                self.assertGreater(len(envs), 3)
                self.assertEqual(sum(n for _, n, _ in envs), len(msgs))
                for _, n, data in envs:
                    self.assertTrue(len(data) <= 300 or n == 1,
                                    "a batch of %d records is %d bytes" % (n, len(data)))
                there = _runner.Runner(16)
                there.path("src", _decode, stages, [_encode])
                there.set_metrics(every)
                results = [r for _, data in [(e[0], e[2]) for e in envs]
                           for r in there.resume(data)]
                got = b"".join(outs[0] for _, outs, _ in results)
                self.assertEqual(got, want, "every record once, in order")
                if every:  # the mean ingest time of each group's records
                    means = [m for _, _, m in results]
                    self.assertTrue(all(min(times) <= m <= max(times)
                                        for m in means), means)
        finally:
            _runner._MAX_BATCH_BYTES = saved

    def test_corrupt_envelope_batches_are_refused(self):
        import pickle
        runner = _runner.Runner(16)
        stages = _stages([(K, _first, "first", "0.0", False, False),
                          (S, _count, "count", "0.1", False, True)])
        runner.path("src", _decode, stages, [_encode])
        ts = _runner._pack_ts([1, 2])

        def batch(groups):
            return b"P" + pickle.dumps(groups, 2)
        for groups, what in [
                ([(0, 1, ["a"], ["a", "b"], ts)], "1 keys for 2 values"),
                ([(0, 1, ["a", "b"], ["a", "b"], ts + ts[:8])], "3 ingest times for 2"),
                ([(0, 1, ["a"])], "corrupt"),
                ([(5, 1, ["a", "b"], ["a", "b"], ts)], "pipeline 5"),
                ([(0, 9, ["a", "b"], ["a", "b"], ts)], "segment 9"),
                ({"not": "a list"}, "not a list"),
                # Packed columns (_columns) that do not add up.
                ([(0, 1, None, b"\x02\x01\x01a", ts)], "text column is corrupt"),
                ([(0, 1, b"\x01\x05a", ["a"], ts[:8])], "text column is corrupt"),
                ([(0, 1, None, _columns.pack_text(["a"]), ts)], "2 ingest times for 1"),
                # A good group before a bad one: neither runs.
                ([(0, 1, ["a", "b"], ["a", "b"], ts),
                  (0, 0, ["a", "b"], ["a", "b"], ts)], "segment 0")]:
            with self.assertRaises(ValueError) as ctx:
                runner.resume(batch(groups))
            self.assertIn(what, str(ctx.exception))
            self.assertEqual(runner.bad_batch, str(ctx.exception))
        # Packed columns only where the format packs them (not in the
        # batches of the module's own serialise hooks).
        with self.assertRaises(ValueError) as ctx:
            runner.resume(b"H" + pickle.dumps(
                [(0, 1, None, _columns.pack_text(["a"]), b"")], 2))
        self.assertIn("columns are NoneType and %s, not lists"
                      % bytes.__name__, str(ctx.exception))
        with self.assertRaises(ValueError):
            runner.resume(b"Pnot a pickle")
        self.assertIn("corrupt", runner.bad_batch)
        self.assertEqual(runner.state_entities(), {"0.1": []})
        # A value whose class raises while it is unpickled: the
        # application's code failed, the batch is not damaged.
        with self.assertRaises(_runner.UnpickleError):
            runner.resume(batch([(0, 1, ["a", "b"], [_Touchy(), _Touchy()], ts)]))
        self.assertIsNone(runner.bad_batch)
        self.assertEqual(runner.failed_hook, ("unpickle", -1, None))
        # A good batch clears the notes.
        runner.resume(batch([(0, 1, ["a", "b"], ["a", "b"], ts)]))
        self.assertIsNone(runner.failed_hook)
        self.assertIsNone(runner.bad_batch)
        self.assertEqual(len(runner.state_entities()["0.1"]), 2)

    def _pair(self, key_by, decoder=_decode, hooks=None):
        """Two runners, "here" sending every partition to "there", with a
        key_by stage that is key_by; returns (here's path, here, there)."""
        def build():
            r = _runner.Runner(16, hooks)
            stages = _stages([(K, key_by, "key", "0.0", False, False),
                              (S, _count, "count", "0.1", False, True)])
            segs = [_runner.Segment(_runner.SEG_SOURCE, 0),
                    _runner.Segment(_runner.SEG_KEYED, 1)]
            return r, r.path("src", decoder, stages, [_encode], segs)
        here, path = build()
        there, _ = build()
        here.set_ownership([1] * 16, 1, [0])
        return path, here, there

    def test_keys_that_are_their_values_travel_once(self):
        @wallaroo.key_extractor
        def itself(w):
            return w

        @wallaroo.key_extractor
        def copy(w):
            return "".join(list(w))  # equal, never the same object

        @wallaroo.key_extractor
        def some(w):
            return w if w.startswith("a") else copy.extract_key(w)
        frames = [b"ant", b"bee", b"ant"]
        for key_by, decoder, elided in [(itself, _decode, None),
                                        (some, _decode, [None, "bee", None]),
                                        (copy, _decode, False),
                                        (copy, _words, False)]:
            path, here, there = self._pair(key_by, decoder)
            path.process(frames, 7)
            (dest, n, data), = here.take_envelopes()
            self.assertEqual((dest, n), (1, 3))
            (_, _, keys, values, ts), = pickle.loads(data[1:])
            # Columns of native strings travel packed (_columns).
            keys, values = _unpacked(keys), _unpacked(values)
            # (On Python 2 the decoded text is unicode; its key, the
            # native str, is another object.)
            if elided is False or _runner._PY2:
                elided = ["ant", "bee", "ant"]
            self.assertEqual(keys, elided)
            self.assertEqual([type(v) for v in values],
                             [_Word if decoder is _words else type(u"")] * 3)
            self.assertEqual(ts, b"", "no ingest times while metrics are off")
            (_, outs, _), = there.resume(data)
            self.assertEqual(outs[0], b"ant:1\nbee:1\nant:2\n")
            self.assertEqual(there.state_entities()["0.1"], [b"ant", b"bee"])
        # With the module's own hooks the value the peer deserialises need
        # not be the key: keys travel.
        shout = (lambda o: o.encode("utf-8"), lambda b: b.decode("utf-8").upper())
        path, here, there = self._pair(copy if _runner._PY2 else itself, hooks=shout)
        path.process(frames, 7)
        (_, _, data), = here.take_envelopes()
        self.assertEqual(data[:1], b"H")
        (_, _, keys, _, _), = pickle.loads(data[1:])
        self.assertEqual(keys, ["ant", "bee", "ant"])
        (_, outs, _), = there.resume(data)
        self.assertEqual(outs[0], b"ANT:1\nBEE:1\nANT:2\n")
        self.assertEqual(there.state_entities()["0.1"], [b"ant", b"bee"])

    def test_routed_resume_sends_on_what_is_not_owned_here(self):
        """What a rescale undone after its freeze had parked runs again
        routed: the records of partitions another worker owns leave for
        it, the others run here, each in the order it had."""
        @wallaroo.key_extractor
        def itself(w):
            return w
        words = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen"]
        frames = [w.encode("ascii") for w in words * 2]

        def counted(key_by, ws):
            """The count stage's output for ws run in order from empty."""
            counts = {}
            want = []
            for w in ws:
                k = key_by.extract_key(w)
                counts[k] = counts.get(k, 0) + 1
                want.append("%s:%d\n" % (w, counts[k]))
            return "".join(want).encode("ascii")
        for key_by in (_first, itself):  # keys travel; keys elided
            path, here, there = self._pair(key_by)
            path.process(frames, 7)
            (_, n, data), = here.take_envelopes()
            self.assertEqual(n, 16)
            # "there" owns the even partitions; the odd ones are "here"'s
            # (its destination 1).
            owner = [p % 2 for p in range(16)]
            there.set_ownership(owner, 2, [0])
            mine = [w for w in words * 2
                    if owner[there.partition_of(key_by.extract_key(w))] == 0]
            self.assertTrue(0 < len(mine) < 16, mine)
            (_, outs, _), = there.resume(data, True)
            self.assertEqual(outs[0], counted(key_by, mine))
            (dest, n, back), = there.take_envelopes()
            self.assertEqual((dest, n), (1, 16 - len(mine)))
            # Run where they belong, in their order, with their own state.
            here.set_ownership([1 - p % 2 for p in range(16)], 2, [0])
            (_, outs, _), = here.resume(back)
            rest = [w for w in words * 2 if w not in mine]
            self.assertEqual(outs[0], counted(key_by, rest))
            # Not routed, the batch runs here whatever the table says.
            (_, outs, _), = there.resume(data)
            self.assertEqual(outs[0].count(b"\n"), 16)
            self.assertEqual(there.take_envelopes(), [])

    def test_ingest_times_travel_only_while_metrics_are_on(self):
        path, here, there = self._pair(_first)
        # Records made before metrics came on wait in the outbox as
        # pairs; turning metrics on gives them an unknown (0) time.
        path.process([b"apple", b"avocado"], 0)
        here.set_metrics(4)
        path.process([b"banana"], 9000)
        path.process([b"cherry"], 9000)
        there.set_metrics(4)
        (_, n, data), = here.take_envelopes()
        self.assertEqual(n, 4)
        (_, _, keys, _, ts), = pickle.loads(data[1:])
        self.assertEqual(list(_runner._unpack_ts(ts, 4)), [0, 0, 9000, 9000])
        (_, outs, mean), = there.resume(data)
        self.assertEqual(mean, 9000, "unknown times are not averaged in")
        self.assertEqual(outs[0], b"apple:1\navocado:2\nbanana:1\ncherry:1\n")
        # All the same time: one is sent for all.
        path.process([b"date", b"elder"], 500)
        (_, n, data), = here.take_envelopes()
        (_, _, _, _, ts), = pickle.loads(data[1:])
        self.assertEqual(list(_runner._unpack_ts(ts, 2)), [500])
        (_, outs, mean), = there.resume(data)
        self.assertEqual(mean, 500)
        # A receiver whose metrics are off runs batches with times; one
        # whose metrics are on runs batches without (mean unknown: 0).
        there.set_metrics(0)
        path.process([b"fig"], 600)
        (_, outs, mean), = there.resume(here.take_envelopes()[0][2])
        self.assertEqual((outs[0], mean), (b"fig:1\n", 0))
        here.set_metrics(0)
        there.set_metrics(4)
        path.process([b"grape"], 600)
        (_, outs, mean), = there.resume(here.take_envelopes()[0][2])
        self.assertEqual((outs[0], mean), (b"grape:1\n", 0))
        # Turning metrics off with records waiting drops their times.
        here.set_metrics(4)
        path.process([b"hazel"], 700)
        here.set_metrics(0)
        there.set_metrics(0)
        (_, n, data), = here.take_envelopes()
        (_, _, _, _, ts), = pickle.loads(data[1:])
        self.assertEqual((n, ts), (1, b""))
        (_, outs, _), = there.resume(data)
        self.assertEqual(outs[0], b"hazel:1\n")

    def test_spread_slots_weigh_the_deal(self):
        runner = _runner.Runner(16)
        stages = _stages([(C, _split, "split", "0.0", True, False),
                          (K, _first, "first", "0.1", False, False),
                          (S, _count, "count", "0.2", False, True)])
        segs = [_runner.Segment(_runner.SEG_SOURCE, 0),
                _runner.Segment(_runner.SEG_SPREAD, 0),
                _runner.Segment(_runner.SEG_KEYED, 2)]
        path = runner.path("src", _decode, stages, [_encode], segs)
        runner.set_ownership([0] * 16, 1, [0, 1])
        n = _runner._SPREAD_SLOTS

        def dealt(slots):
            runner.set_spread_slots(slots)
            path.process([b"w"] * 2000, 1)
            sent = sum(c for _, c, _ in runner.take_envelopes())
            return sent
        self.assertEqual(dealt([1] * n), 2000)
        self.assertEqual(dealt([0] * n), 0)
        quarter = dealt([1] * (n // 4) + [0] * (n - n // 4))
        self.assertTrue(350 < quarter < 650, quarter)
        # Recompiling (metrics on and off) keeps one slot list per
        # compiled spread boundary, not one more each time.
        lists = len(runner._spread_lists)
        for every in [4, 0] * 10:
            runner.set_metrics(every)
        self.assertEqual(len(runner._spread_lists), lists)
        # The deal survives a recompile with the same destinations, and
        # is dropped when a destination leaves.
        runner.set_ownership([0] * 16, 2, [0, 1])
        self.assertEqual(runner.spread_slots, [1] * (n // 4) + [0] * (n - n // 4))
        runner.set_ownership([0] * 16, 3, [0, 2])
        self.assertIsNone(runner.spread_slots)
        with self.assertRaises(ValueError):
            runner.set_spread_slots([1] * n)  # 1 is no longer a destination
        with self.assertRaises(ValueError):
            runner.set_spread_slots([0, 2])

    def test_all_local_compiles_no_boundary_code(self):
        _, _, runner = self._loopback_run([0] * 16, [0], [])
        text = "".join(runner.paths[0].source_text)
        self.assertNotIn("_o(", text)
        runner.set_ownership([1] * 16, 2, [0, 1])
        text = "".join(runner.paths[0].source_text)
        self.assertIn("try: _o = _rc2[k]", text)
        self.assertIn("_o(None if k is v else k); _o(v); continue", text)
        runner.set_metrics(4)
        text = "".join(runner.paths[0].source_text)
        self.assertIn("_o(None if k is v else k); _o(v); _o(_ts); continue", text)
        self.assertEqual(runner.epoch, 2)

    def test_partition_export_import_round_trip(self):
        batches = [[b"apple avocado banana", b"cherry apple"]]
        _, _, a = self._loopback_run([0] * 16, [0], batches)
        b = _runner.Runner(16)
        b.state_table("0.3")
        moved = 0
        for p in a.state_partitions("0.3"):
            data = a.export_partition("0.3", p)
            self.assertIsInstance(data, bytes)
            moved += b.import_partition("0.3", p, data)
            a.drop_partition("0.3", p)
        self.assertEqual(moved, 3)
        self.assertEqual(a.state_entities(), {"0.3": []})
        self.assertEqual(b.state_entities(), {"0.3": [b"a", b"b", b"c"]})
        # Plain state arrives pending: made into its object on the key's
        # first use here.
        self.assertNotIn("a", b.states["0.3"])
        self.assertEqual(b.creator("0.3", None)("a").n, 3)
        self.assertEqual(b.states["0.3"]["a"].n, 3)
        self.assertNotIn("a", b.pending["0.3"])
        # A key filed under the wrong partition is refused.
        data = b.export_partition("0.3", b.partition_of("a"))
        wrong = (b.partition_of("a") + 1) % 16
        c = _runner.Runner(16)
        c.state_table("0.3")
        with self.assertRaises(ValueError) as ctx:
            c.import_partition("0.3", wrong, data)
        self.assertIn("belongs to partition", str(ctx.exception))
        with self.assertRaises(ValueError) as ctx:
            b.import_partition("0.3", 0, b"Zjunk")
        self.assertIn("not a known format", str(ctx.exception))
        with self.assertRaises(ValueError) as ctx:
            b.import_partition("0.3", 0, b"Pjunk")
        self.assertIn("corrupt", str(ctx.exception))
        with self.assertRaises(ValueError) as ctx:
            b.import_partition("9.9", 0, data)
        self.assertIn("no state step 9.9", str(ctx.exception))

    def test_a_partition_that_cannot_be_exported_keeps_its_state(self):
        batches = [[b"apple avocado banana", b"cherry apple"]]
        _, _, a = self._loopback_run([0] * 16, [0], batches)
        parts = a.state_partitions("0.3")
        self.assertGreaterEqual(len(parts), 2)
        bad = parts[1]
        real = a.export_partition

        def export(step, p):
            if p == bad:
                raise ValueError("this state cannot be serialized")
            return real(step, p)
        a.export_partition = export
        # Those before it come out (and go); it and those after stay.
        out = a.export_partitions("0.3", parts, 10 ** 12)
        self.assertEqual(len(out), 1)
        self.assertEqual(a.state_partitions("0.3"), parts[1:])
        with self.assertRaises(ValueError):
            a.export_partitions("0.3", parts[1:], 10 ** 12)
        self.assertEqual(a.state_partitions("0.3"), parts[1:])

    def test_typed_stages_and_segments(self):
        with self.assertRaises(ValueError):
            _runner.Stage(9, _count, "x", "0.0", False, False)
        with self.assertRaises(ValueError):
            _runner.Segment(0, 0)
        with self.assertRaises(TypeError):
            _runner.Runner(4).path("src", _decode, [("computation", _split)], [])
        with self.assertRaises(ValueError):
            _runner.Runner(4).set_ownership([0, 0], 1)

    def test_frame_raw_keeps_partial_frames_per_connection(self):
        class Dec(wallaroo.OctetDecoder):
            def header_length(self):
                return 2

            def payload_length(self, bs):
                if bs == b"!!":
                    raise ValueError("bad header")
                if bs == b"??":
                    return "three"
                return int(bs)

            def decode(self, bs):
                return bs.decode("ascii")
        runner = _runner.Runner(4)
        path = runner.path("src", Dec(), [], [_encode])
        self.assertEqual(path.frame_raw(1, b"03abc0", 0, False, 2, 100),
                         ((b"abc\n", 1), None))
        # Another connection's bytes do not mix with connection 1's.
        self.assertEqual(path.frame_raw(2, b"01z", 0, False, 2, 100),
                         ((b"z\n", 1), None))
        self.assertEqual(path.frame_raw(1, b"2hi", 0, False, 2, 100),
                         ((b"hi\n", 1), None))
        outs, reason = path.frame_raw(1, b"01x!!zz", 0, False, 2, 100)
        self.assertEqual(outs, (b"x\n", 1))
        self.assertIn("bad frame header 2121: payload_length() raised ValueError: bad header", reason)
        self.assertIn("not an int",
                      path.frame_raw(3, b"??", 0, False, 2, 100)[1])
        self.assertIn("frame of 99 bytes exceeds the limit of 50 bytes",
                      path.frame_raw(4, b"99", 0, False, 2, 50)[1])
        self.assertIn("5 bytes of an unfinished frame",
                      path.frame_raw(5, b"05abc", 0, True, 2, 100)[1])
        self.assertEqual(path._raw, {})
        # After a rejection, later chunks of that connection are dropped
        # until it is closed.
        self.assertEqual(path.frame_raw(1, b"01y", 0, False, 2, 100),
                         ((b"", 0), None))
        path.frame_raw(1, b"", 0, True, 2, 100)
        self.assertEqual(path.frame_raw(1, b"01y", 0, False, 2, 100),
                         ((b"y\n", 1), None))

    def test_stock_length_fmt(self):
        self.assertEqual(_runner.stock_length_fmt(_decode), ">I")
        self.assertEqual(_runner.stock_length_fmt(_short), "<H")
        self.assertIsNone(_runner.stock_length_fmt(_CustomLength()))
        self.assertEqual(struct.calcsize(_runner.stock_length_fmt(_short)), 2)


class _Counter(object):
    def initial_value(self):
        return 0

    def apply(self, v):
        return v + 1


class CheckpointTest(unittest.TestCase):
    stages = [(C, _split, "split", "0.0", True, False),
              (K, _first, "first", "0.1", False, False),
              (S, _count, "count", "0.2", False, True)]

    def _counts(self, runner):
        return dict((k, st.n) for k, st in runner.states["0.2"].items())

    def test_only_changed_keys_then_all_keys(self):
        runner, path = _path(self.stages, [_encode])
        runner.set_tracking(True)
        path.process([b"apple banana cherry"])
        steps, gens = runner.checkpoint_take(False)
        self.assertEqual(gens, [])
        (step, kb, sb, lb, meta), = steps
        self.assertEqual(step, "0.2")
        self.assertEqual(sorted(kb), sorted(b"abc"))
        # Nothing changed since: an empty delta.
        (step, kb, sb, lb, meta), = runner.checkpoint_take(False)[0]
        self.assertEqual((kb, sb), (b"", b""))
        path.process([b"avocado"])
        (step, kb, sb, lb, meta), = runner.checkpoint_take(False)[0]
        self.assertEqual(kb, b"a")
        # Full: every key.
        (step, kb, sb, lb, meta), = runner.checkpoint_take(True)[0]
        self.assertEqual(sorted(kb), sorted(b"abc"))

    def test_restore_replaces_state_and_generator_position(self):
        runner, path = _path(self.stages, [_encode])
        runner.set_tracking(True)
        gen = runner.gen_path("gen", _Counter(), [], [_encode_text])
        path.process([b"apple banana apricot"])
        gen.generate(3)
        snap = runner.checkpoint_take(True)
        path.process([b"apple cherry"])
        gen.generate(5)
        self.assertEqual(self._counts(runner), {"a": 3, "b": 1, "c": 1})
        n = runner.checkpoint_restore(*snap)
        self.assertEqual(n, 3)  # two keys and one generator
        self.assertEqual(self._counts(runner), {"a": 2, "b": 1})
        self.assertEqual(runner.state_entities(), {"0.2": [b"a", b"b"]})
        self.assertEqual(gen.generate(2), ((b"3|4|", 2), False))
        # The state keeps counting from the checkpoint.
        self.assertEqual(path.process([b"avocado"])[0], b"avocado:3\n")

    def test_restore_reads_t_records_with_the_names_in_the_meta(self):
        runner, path = _path(self.stages, [_encode])
        runner.set_tracking(True)
        path.process([b"apple banana apricot"])
        runner.checkpoint_take(True)  # learns the names (from a fresh state)
        path.process([b"banana"])
        snap = runner.checkpoint_take(True)
        (step, kb, sb, lb, meta), = snap[0]
        cls = pickle.loads(meta)
        if _runner._INLINE_ATTRS:
            cls, names = cls
            self.assertEqual(names, ("n",))
            self.assertTrue(b"T" in sb or b"M" in sb, sb)
        path.process([b"cherry"])
        other, _ = _path(self.stages, [_encode])
        other.checkpoint_restore(*snap)
        self.assertEqual(self._counts(other), {"a": 2, "b": 2})
        self.assertEqual(other.ckpt_names.get("0.2", ()), names if _runner._INLINE_ATTRS else ())

    def test_states_the_application_holds_stay_the_engines(self):
        # An application may keep its own references to its state objects
        # (here: every object the engine hands it); taking checkpoints must
        # not put other objects in their place.
        held = {}

        @wallaroo.state_computation(name="count and hold", state=_Total)
        def count_and_hold(w, total):
            held.setdefault(w[:1], total)
            total.n += 1
            return "%s:%d" % (w, total.n)
        stages = self.stages[:2] + [(S, count_and_hold, "count", "0.2", False, True)]
        runner, path = _path(stages, [_encode])
        runner.set_tracking(True)
        path.process([b"apple banana"])
        for _ in range(3):
            runner.checkpoint_take(False)
            runner.checkpoint_take(True)
            path.process([b"avocado blueberry"])
        for key, st in runner.states["0.2"].items():
            self.assertIs(held[key], st)
        self.assertEqual(dict((k, st.n) for k, st in held.items()), {"a": 4, "b": 4})

    def test_restore_refuses_a_corrupt_or_foreign_checkpoint(self):
        runner, path = _path(self.stages, [_encode])
        path.process([b"apple"])
        (step, kb, sb, lb, meta), = runner.checkpoint_take(True)[0]
        with self.assertRaises(ValueError) as ctx:
            runner.checkpoint_restore([(step, kb, sb + b"x", lb, meta)], [])
        self.assertIn("corrupt", str(ctx.exception))
        with self.assertRaises(ValueError) as ctx:
            runner.checkpoint_restore([("9.9", kb, sb, lb, meta)], [])
        self.assertIn("does not have", str(ctx.exception))

    def test_states_replaced_or_dropped_are_not_used_from_the_hot_table(self):
        runner, path = _path(self.stages, [_encode])
        runner.set_tracking(True)
        path.process([b"apple banana"])
        self.assertEqual(sorted(runner.hot["0.2"]), ["a", "b"])
        # A partition that moved away: its key starts over here.
        pa = runner.partition_of("a")
        exported = runner.export_partition("0.2", pa)
        runner.drop_partition("0.2", pa)
        self.assertEqual(path.process([b"avocado"])[0], b"avocado:1\n")
        # The state that comes back replaces the one made meanwhile,
        # also for the loops.
        path.process([b"apricot"])
        runner.import_partition("0.2", pa, exported)
        self.assertEqual(path.process([b"almond"])[0], b"almond:2\n")
        other = runner.export_partition("0.2", runner.partition_of("b"))
        path.process([b"blueberry"])
        runner.import_partition("0.2", runner.partition_of("b"), other)
        self.assertEqual(path.process([b"berry"])[0], b"berry:2\n")
        # A restore empties it with the tables.
        snap = runner.checkpoint_take(True)
        path.process([b"cherry"])
        runner.checkpoint_restore(*snap)
        self.assertEqual(runner.hot["0.2"], {})
        self.assertEqual(path.process([b"cranberry", b"avocado"])[0], b"cranberry:1\navocado:3\n")

    def test_an_import_that_fails_half_way_leaves_no_stale_hot_state(self):
        runner, path = _path(self.stages, [_encode])
        runner.set_tracking(True)
        path.process([b"apple"])
        pa = runner.partition_of("a")
        other = next(k for k in "bcdefghijklmnopqrstuvwxyz" if runner.partition_of(k) != pa)
        big = _Total()
        big.n = 100
        data = _runner._FMT_PICKLE + pickle.dumps([("a", big), (other, _Total())])
        with self.assertRaises(ValueError):
            runner.import_partition("0.2", pa, data)
        # "a" was replaced before the bad key: the loops use the new one.
        self.assertEqual(path.process([b"avocado"])[0], b"avocado:101\n")

    def test_tracking_off_compiles_no_tracking_code(self):
        runner, path = _path(self.stages, [_encode])
        self.assertNotIn("_h", "".join(path.source_text))
        runner.set_tracking(True)
        self.assertIn("_h", "".join(path.source_text))


class DeadLetterTest(unittest.TestCase):
    def test_skip_writes_the_failing_message_and_goes_on(self):
        import json
        import os
        import tempfile
        stages = [(C, _split, "split", "0.0", True, False),
                  (K, _first, "first", "0.1", False, False),
                  (S, _count, "count", "0.2", False, True)]
        runner, path = _path(stages, [_encode])
        fd, name = tempfile.mkstemp()
        os.close(fd)
        try:
            runner.set_dead_letter(name)
            out = path.process([b"apple boom banana", b"cherry"])
            # (count had counted "boom" under "b" before it raised;
            # completed: 3 outputs, split's 2 Nones and "boom", skipped)
            self.assertEqual(out, (b"apple:1\nbanana:2\ncherry:1\n", 6))
            with open(name) as f:
                recs = [json.loads(line) for line in f]
            self.assertEqual(len(recs), 1)
            self.assertIn("count", recs[0]["stage"])
            self.assertIn(recs[0]["message"], ("'boom'", "u'boom'"))
            self.assertIn("KeyError", recs[0]["traceback"])
            # With metrics on, the timed message and the untimed ones
            # around it skip alike.
            runner.set_metrics(3)
            for _ in range(20):
                out = path.process([b"apple", b"boom", b"cherry"])
                self.assertEqual(out[1], 6)  # 2 outputs, 3 Nones, "boom" skipped
                self.assertNotIn(b"boom", out[0])
            runner.set_metrics(0)
            # Off again: the error stops the batch.
            runner.set_dead_letter(None)
            with self.assertRaises(KeyError):
                path.process([b"boom"])
        finally:
            os.remove(name)


class _Plain(object):
    def __init__(self, a=0, b=0):
        self.a = a
        self.b = b


class _WithDefault(object):
    a = 7

    def __init__(self):
        self.a = 1
        self.b = 2


class _One(object):
    def __init__(self, v):
        self.v = v


def _decode_records(cls, names, recs):
    """The attributes of each record _plain_records made, and its format."""
    out = []
    for rec in recs:
        fmt = rec[:1]
        data = marshal.loads(rec[1:]) if fmt == b"M" else pickle.loads(rec[1:])
        if fmt in (b"T", b"M"):
            data = dict(zip(names, (data,) if len(names) == 1 else data))
        elif fmt == b"P":
            data = vars(data)
        out.append((fmt, data))
    return out


class PlainRecordsTest(unittest.TestCase):
    """T records (attribute values read without asking for __dict__) and
    the cases that must fall back to D or P records."""

    inline = _runner._INLINE_ATTRS

    def _has_dict(self, st):
        # With inline attributes, the garbage collector sees the values;
        # once materialised (3.11, 3.12), the dict.
        r = gc.get_referents(st)
        return len(r) == 2 and type(r[0]) is dict

    def _runner(self, objs, classes=None):
        runner = _runner.Runner.__new__(_runner.Runner)
        runner.ckpt_names = {}
        runner.hot = {}
        runner.initial_states = dict(classes or {"s": _Plain})
        keys = [str(i) for i in range(len(objs))]
        runner.states = {"s": dict(zip(keys, objs))}
        return runner, keys

    def test_exact_attributes_are_t_records_and_stay_inline(self):
        objs = [_Plain(i, -i) for i in range(3)]
        runner, keys = self._runner(objs)
        names = runner._ckpt_names("s", _Plain, objs)
        if not self.inline:
            self.assertEqual(names, ())
            return
        self.assertEqual(sorted(names), ["a", "b"])
        # Learnt from a fresh object: no state in use was read or replaced.
        for i, st in enumerate(objs):
            self.assertIs(runner.states["s"][str(i)], st)
            self.assertFalse(self._has_dict(st))
        recs = _runner._plain_records(_Plain, names, objs)
        got = _decode_records(_Plain, names, recs)
        self.assertEqual(got, [(b"M", {"a": i, "b": -i}) for i in range(3)])
        for st in objs:
            self.assertFalse(self._has_dict(st))
        # One at a time (a single object, or after a batch check failed).
        self.assertEqual(_decode_records(_Plain, names, _runner._plain_records(_Plain, names, objs[1:2])),
                         [(b"T", {"a": 1, "b": -1})])

    def test_other_attributes_fall_back_to_d_records(self):
        names = ("a", "b")
        extra = _Plain(1, 2)
        extra.c = 3
        missing = _Plain(1, 2)
        del missing.b
        swapped = _Plain(1, 2)
        del swapped.b
        swapped.z = 9
        dicted = _Plain(5, 6)
        dicted.__dict__  # noqa: B018 (materialises it on 3.11 and 3.12)
        objs = [extra, missing, swapped, dicted, _Plain(7, 8)]
        got = _decode_records(_Plain, names,
                              _runner._plain_records(_Plain, names, objs))
        self.assertEqual([d for _, d in got],
                         [{"a": 1, "b": 2, "c": 3}, {"a": 1}, {"a": 1, "z": 9},
                          {"a": 5, "b": 6}, {"a": 7, "b": 8}])
        self.assertEqual([f for f, _ in got][:3], [b"D"] * 3)
        # (before 3.11 every object keeps a dict: all D records)
        self.assertEqual(got[4][0], b"T" if self.inline else b"D")

    def test_one_name_holding_a_dict(self):
        names = ("v",)
        held = _One({"x": 1})
        dicted = _One(2)
        dicted.w = 3
        del dicted.w
        dicted.__dict__  # noqa: B018
        extra = _One(4)
        extra.w = 5
        got = _decode_records(_One, names,
                              _runner._plain_records(_One, names, [held, dicted, extra]))
        self.assertEqual([d for _, d in got],
                         [{"v": {"x": 1}}, {"v": 2}, {"v": 4, "w": 5}])
        self.assertEqual(got[0][0], b"T" if self.inline else b"D")
        self.assertEqual(got[2][0], b"D")

    def test_names_are_checked_against_the_class_at_every_take(self):
        # Names that are paths for attrgetter, or that became class
        # attributes since they were learnt: the objects' __dict__ is read.
        self.assertFalse(_runner._names_readable(_Plain, ("a", "x.real")))
        self.assertFalse(_runner._names_readable(_WithDefault, ("a", "b")))
        self.assertEqual(_runner._names_readable(_Plain, ("a", "b")), self.inline)

    def test_class_attributes_and_getattr_hooks_give_no_names(self):
        class Hook(object):
            def __init__(self):
                self.a = 1

            def __getattr__(self, name):
                return 0
        runner, _ = self._runner([_WithDefault()], {"s": _WithDefault, "t": Hook})
        self.assertEqual(runner._ckpt_names("s", _WithDefault, [_WithDefault()]), ())
        self.assertEqual(runner._ckpt_names("t", Hook, [Hook()]), ())

    def test_no_names_where_the_state_class_makes_no_such_object(self):
        def raising():
            raise RuntimeError("not now")
        runner, _ = self._runner([], {"s": raising, "t": dict, "u": lambda: _One(1)})
        self.assertEqual(runner._ckpt_names("s", _Plain, []), ())
        self.assertEqual(runner._ckpt_names("t", _Plain, []), ())
        self.assertEqual(runner._ckpt_names("u", _Plain, []), ())
        self.assertEqual(runner._ckpt_names("v", _Plain, []), ())  # no creator
        # With states in use, from the first of them (left in place).
        live = [_Plain(1, 2), _Plain(3, 4)]
        first = live[0]
        self.assertEqual(sorted(runner._ckpt_names("w", _Plain, live)), ["a", "b"] if self.inline else [])
        self.assertIs(live[0], first)

    def test_attributes_set_after_the_constructor(self):
        class Lazy(object):
            def __init__(self):
                self.n = 0

            def grow(self):
                self.extra = 1
        objs = []
        for i in range(3):
            st = Lazy()
            st.grow()
            objs.append(st)
        held = list(objs)
        runner, keys = self._runner(objs, {"s": Lazy})
        names = runner._ckpt_names("s", Lazy, objs)
        if not self.inline:
            self.assertEqual(names, ())
            return
        # Not the fresh object's ("n" alone): those of a state in use,
        # which stays the one in the table and the application's.
        self.assertEqual(sorted(names), ["extra", "n"])
        for i, st in enumerate(objs):
            self.assertIs(st, held[i])
            self.assertIs(runner.states["s"][str(i)], st)
        got = _decode_records(Lazy, names, _runner._plain_records(Lazy, names, objs))
        self.assertEqual([d for _, d in got], [{"n": 0, "extra": 1}] * 3)
        # (The first keeps a dict on 3.11 and 3.12: a D record there.)
        self.assertIn(got[1][0], (b"T", b"M"))

    def test_all_at_once_marshalled_or_pickled(self):
        names = ("a", "b")
        objs = [_Plain(i, str(i)) for i in range(5)]
        got = _decode_records(_Plain, names, _runner._plain_records(_Plain, names, objs))
        self.assertEqual([d for _, d in got], [{"a": i, "b": str(i)} for i in range(5)])
        if not self.inline:
            return
        self.assertEqual(set(f for f, _ in got), {b"M"})
        for st in objs:
            self.assertFalse(self._has_dict(st))
        # A value marshal does not take: pickled, all of them.
        objs[2].b = _One(7)
        got = _decode_records(_Plain, names, _runner._plain_records(_Plain, names, objs))
        self.assertEqual(set(f for f, _ in got), {b"T"})
        self.assertEqual(got[2][1]["b"].v, 7)
        # Nor one marshal would give back as another type (a bytearray
        # comes back as bytes), nor containers.
        for odd in (bytearray(b"ab"), [1, 2], {"k": 1}):
            objs[2].b = odd
            got = _decode_records(_Plain, names, _runner._plain_records(_Plain, names, objs))
            self.assertEqual(set(f for f, _ in got), {b"T"})
            self.assertIs(type(got[2][1]["b"]), type(odd))

    def test_all_at_once_refuses_what_it_cannot_prove(self):
        if not self.inline:
            return
        names = ("a", "b")
        # One with an extra attribute and one without b: the lengths add
        # up, and one value is the class itself at the place the class
        # would end the first object.
        extra = _Plain(1, 2)
        extra.c = _Plain
        short = _Plain(3, 4)
        del short.b
        self.assertIsNone(_runner._inline_records(_Plain, names, [extra, short]))
        got = _decode_records(_Plain, names, _runner._plain_records(_Plain, names, [extra, short]))
        self.assertEqual([d for _, d in got], [{"a": 1, "b": 2, "c": _Plain}, {"a": 3}])
        # Another class among them.
        self.assertIsNone(_runner._inline_records(_Plain, names, [_Plain(), _One(1)]))
        # One name, one object holding a dict of its own.
        held = _One({"x": 1})
        dicted = _One(2)
        dicted.w = 3
        del dicted.w
        dicted.__dict__  # noqa: B018
        out = _runner._inline_records(_One, ("v",), [held, dicted])
        if out is not None:  # 3.13 keeps the values inline behind the dict
            self.assertEqual([d for _, d in _decode_records(_One, ("v",), out)], [{"v": {"x": 1}}, {"v": 2}])

    def test_restore_all_at_once(self):
        if not self.inline:
            return
        names = ("a", "b")
        objs = [_Plain(i, "x%d" % i) for i in range(4)]
        recs = _runner._plain_records(_Plain, names, objs)
        keys = [u"k\u00e9%d" % i for i in range(4)]
        kbs = [k.encode("utf-8") for k in keys]
        from array import array
        got = _runner._restore_inline(_Plain, names, b"".join(kbs), b"".join(recs),
                                      array("I", map(len, kbs)), array("I", map(len, recs)))
        self.assertIsNotNone(got)
        self.assertEqual(got[0], keys)
        self.assertEqual([vars(o) for o in got[1]], [{"a": i, "b": "x%d" % i} for i in range(4)])
        # Any record that is not M: None (the caller reads them one by one).
        recs[2] = b"D" + pickle.dumps({"a": 2, "b": 3})
        self.assertIsNone(_runner._restore_inline(_Plain, names, b"".join(kbs), b"".join(recs),
                                                  array("I", map(len, kbs)), array("I", map(len, recs))))

    def test_other_classes_are_p_records(self):
        recs = _runner._plain_records(_Plain, ("a", "b"), [_One(3)])
        self.assertEqual(_decode_records(_Plain, ("a", "b"), recs), [(b"P", {"v": 3})])


if __name__ == "__main__":
    unittest.main()
