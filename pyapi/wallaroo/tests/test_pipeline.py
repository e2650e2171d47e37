"""Pipelines and the application tuple (spec section 3)."""

from __future__ import absolute_import, print_function

import textwrap
import unittest

import wallaroo


@wallaroo.decoder(4, ">I")
def decode(bs):
    return bs


@wallaroo.encoder
def encode(data):
    return data


@wallaroo.computation("double")
def double(data):
    return data * 2


@wallaroo.computation_multi("split")
def split(data):
    return data.split()


@wallaroo.state_computation("count", dict)
def count(data, state):
    state[data] = state.get(data, 0) + 1
    return state[data]


@wallaroo.key_extractor
def symbol(data):
    return data[0]


def tcp_in(port="7010"):
    return wallaroo.TCPSourceConfig("127.0.0.1", port, decode)


def tcp_out(port="7002"):
    return wallaroo.TCPSinkConfig("127.0.0.1", port, encode)


class SinglePipelineTest(unittest.TestCase):

    def test_tuple_shape(self):
        p = (wallaroo.source("Words", tcp_in())
             .to(split).key_by(symbol).to(count).to(double)
             .to_sink(tcp_out()))
        app = wallaroo.build_application("Word Count", p)
        self.assertIsInstance(app, tuple)
        self.assertEqual(len(app), 4)
        name, root, vs, es = app
        self.assertEqual(name, "Word Count")
        self.assertEqual(root, 0)
        self.assertEqual(es, [[]])
        self.assertEqual(vs, [[
            ("source", "Words", ("tcp", "127.0.0.1", "7010", decode)),
            ("to", split),
            ("key_by", symbol),
            ("to_state", count),
            ("to", double),
            ("to_sink", ("tcp", "127.0.0.1", "7002", encode)),
        ]])

    def test_to_sinks(self):
        p = wallaroo.source("In", tcp_in()).to(double).to_sinks(
            [tcp_out("1"), tcp_out("2")])
        _, _, vs, _ = wallaroo.build_application("App", p)
        self.assertEqual(vs[0][-1], ("to_sinks", [
            ("tcp", "127.0.0.1", "1", encode),
            ("tcp", "127.0.0.1", "2", encode)]))
        self.assertTrue(p.__is_closed__())
        self.assertEqual(p._sinks(), [vs[0][-1]])
        self.assertEqual(p._sources(), [vs[0][0]])

    def test_to_sinks_accepts_any_iterable(self):
        p = wallaroo.source("In", tcp_in()).to_sinks(
            iter([tcp_out("1")]))
        self.assertEqual(len(p.__to_tuple__("a")[2][0][-1][1]), 1)

    def test_to_sinks_empty_is_an_error(self):
        with self.assertRaises(wallaroo.WallarooParameterError) as ctx:
            wallaroo.source("In", tcp_in()).to_sinks([])
        self.assertIn("You must specify at least one sink when using "
                      "to_sinks()", str(ctx.exception))

    def test_generator_source(self):
        class Gen(object):
            def initial_value(self):
                return 0

            def apply(self, v):
                return v + 1
        gen = Gen()
        p = wallaroo.source("Gen", wallaroo.GenSourceConfig(gen)).to_sink(
            tcp_out())
        _, _, vs, _ = wallaroo.build_application("App", p)
        self.assertEqual(vs[0][0], ("source", "Gen", ("gen", gen)))


class MergeTest(unittest.TestCase):

    def test_market_spread_shape(self):
        orders = wallaroo.source("Orders", tcp_in("7010"))
        market = wallaroo.source("Market Data", tcp_in("7011"))
        p = (orders.merge(market).key_by(symbol).to(count)
             .to_sink(tcp_out()))
        name, root, vs, es = wallaroo.build_application("market-spread", p)
        self.assertEqual(root, 1)
        self.assertEqual(es, [[], [0, 2], []])
        self.assertEqual(len(vs), 3)
        self.assertEqual([s[0] for s in vs[0]], ["source"])
        self.assertEqual(vs[0][0][1], "Orders")
        self.assertEqual([s[0] for s in vs[1]],
                         ["key_by", "to_state", "to_sink"])
        self.assertEqual(vs[2], [("source", "Market Data",
                                  ("tcp", "127.0.0.1", "7011", decode))])

    def test_stages_before_merge_stay_in_leaves(self):
        left = wallaroo.source("A", tcp_in("1")).to(double)
        right = wallaroo.source("B", tcp_in("2")).to(split)
        p = left.merge(right).to_sink(tcp_out())
        _, root, vs, es = p.__to_tuple__("x")
        self.assertEqual(root, 1)
        self.assertEqual([s[0] for s in vs[0]], ["source", "to"])
        self.assertEqual([s[0] for s in vs[1]], ["to_sink"])
        self.assertEqual([s[0] for s in vs[2]], ["source", "to"])
        self.assertEqual(es, [[], [0, 2], []])

    def test_merge_with_no_stages_after_is_an_empty_node(self):
        a = wallaroo.source("A", tcp_in("1"))
        b = wallaroo.source("B", tcp_in("2"))
        _, root, vs, es = a.merge(b).__to_tuple__("x")
        self.assertEqual((root, vs[1], es), (1, [], [[], [0, 2], []]))

    def test_nested_merges_shift_indices(self):
        a = wallaroo.source("A", tcp_in("1"))
        b = wallaroo.source("B", tcp_in("2"))
        c = wallaroo.source("C", tcp_in("3"))
        d = wallaroo.source("D", tcp_in("4"))
        ab = a.merge(b).to(double)          # nodes: A, m, B
        cd = c.merge(d)                     # nodes: C, m, D
        p = ab.merge(cd).to_sink(tcp_out())
        _, root, vs, es = wallaroo.build_application("x", p)
        # A=0, m(ab)=1, B=2, m(all)=3, C=4, m(cd)=5, D=6
        self.assertEqual(root, 3)
        self.assertEqual(es, [[], [0, 2], [], [1, 5], [], [4, 6], []])
        self.assertEqual([vs[i][0][1] for i in (0, 2, 4, 6)],
                         ["A", "B", "C", "D"])
        self.assertEqual([s[0] for s in vs[1]], ["to"])
        self.assertEqual([s[0] for s in vs[3]], ["to_sink"])
        self.assertEqual(vs[5], [])
        # Every node is either a leaf (0 children) or a merge (2 children).
        self.assertTrue(all(len(e) in (0, 2) for e in es))

    def test_merge_of_a_pipeline_with_itself(self):
        a = wallaroo.source("A", tcp_in("1"))
        _, root, vs, es = a.merge(a).__to_tuple__("x")
        self.assertEqual((root, es), (1, [[], [0, 2], []]))

    def test_merge_requires_a_pipeline(self):
        with self.assertRaises(wallaroo.WallarooParameterError):
            wallaroo.source("A", tcp_in()).merge(tcp_in())


class ImmutabilityTest(unittest.TestCase):

    def test_branching_leaves_the_original_unchanged(self):
        p = wallaroo.source("In", tcp_in()).to(double)
        before = p.__to_tuple__("x")
        a = p.to(split).to_sink(tcp_out("1"))
        b = p.key_by(symbol).to(count).to_sink(tcp_out("2"))
        self.assertEqual(p.__to_tuple__("x"), before)
        self.assertFalse(p.__is_closed__())
        self.assertEqual([s[0] for s in a.__to_tuple__("a")[2][0]],
                         ["source", "to", "to", "to_sink"])
        self.assertEqual([s[0] for s in b.__to_tuple__("b")[2][0]],
                         ["source", "to", "key_by", "to_state", "to_sink"])

    def test_merge_leaves_both_sides_unchanged(self):
        a = wallaroo.source("A", tcp_in("1"))
        b = wallaroo.source("B", tcp_in("2"))
        a.merge(b).to(double)
        self.assertEqual(a.__to_tuple__("x")[1:], (0, [a._sources()], [[]]))
        self.assertEqual(b.__to_tuple__("x")[1:], (0, [b._sources()], [[]]))

    def test_clone_is_independent(self):
        p = wallaroo.source("In", tcp_in())
        q = p.clone()
        q._pipeline_tree.add_stage(("to", double))
        self.assertEqual(len(p.__to_tuple__("x")[2][0]), 1)

    def test_returned_tuple_is_a_copy(self):
        p = wallaroo.source("In", tcp_in()).to_sink(tcp_out())
        app = wallaroo.build_application("x", p)
        app[2][0].append(("to", double))
        app[3][0].append(7)
        self.assertEqual(wallaroo.build_application("x", p)[2:],
                         ([p._sources() + p._sinks()], [[]]))

    def test_call_style_is_equivalent(self):
        a = wallaroo.source("In", tcp_in()).to(double)
        b = wallaroo.source("In", tcp_in()).to(double())
        self.assertEqual(a.__to_tuple__("x"), b.__to_tuple__("x"))


class ClosedPipelineTest(unittest.TestCase):

    def test_build_requires_a_sink(self):
        p = wallaroo.source("In", tcp_in()).to(double)
        with self.assertRaises(wallaroo.WallarooParameterError) as ctx:
            wallaroo.build_application("x", p)
        self.assertEqual(str(ctx.exception),
                         "API_Error: An application must end with to_sink/s.")

    def test_no_stages_after_sink(self):
        closed = wallaroo.source("In", tcp_in()).to_sink(tcp_out())
        attempts = [lambda: closed.to(double),
                    lambda: closed.key_by(symbol),
                    lambda: closed.to_sink(tcp_out()),
                    lambda: closed.to_sinks([tcp_out()])]
        for attempt in attempts:
            with self.assertRaises(wallaroo.WallarooParameterError) as ctx:
                attempt()
            self.assertIn("API_Error: You can't add stages after to_sink/s.",
                          str(ctx.exception))

    def test_closed_is_inherited_from_the_left_side_of_a_merge(self):
        closed = wallaroo.source("A", tcp_in("1")).to_sink(tcp_out())
        open_ = wallaroo.source("B", tcp_in("2"))
        self.assertTrue(closed.merge(open_).__is_closed__())
        self.assertFalse(open_.merge(closed).__is_closed__())


class StageValidationTest(unittest.TestCase):

    def assertApiError(self, fn, fragment):
        with self.assertRaises(wallaroo.WallarooParameterError) as ctx:
            fn()
        self.assertIn(fragment, str(ctx.exception))
        self.assertTrue(str(ctx.exception).startswith("API_Error: "))

    def test_to_requires_a_computation(self):
        def plain(data):
            return data
        p = wallaroo.source("In", tcp_in())
        self.assertApiError(lambda: p.to(plain), "to() expects a computation")
        self.assertApiError(lambda: p.key_by(plain), "key_by() expects")
        self.assertApiError(lambda: p.to_sink(encode), "to_sink expects")
        self.assertApiError(lambda: p.to_sinks([encode]), "to_sinks expects")
        self.assertApiError(lambda: p.to_sinks(None), "to_sinks() expects")

    def test_source_and_application_names(self):
        self.assertApiError(lambda: wallaroo.source(1, tcp_in()),
                            "source expects a name string")
        self.assertApiError(lambda: wallaroo.source("x", decode),
                            "source expects a source/sink configuration")
        p = wallaroo.source("In", tcp_in()).to_sink(tcp_out())
        self.assertApiError(lambda: wallaroo.build_application(None, p),
                            "build_application expects a name string")
        self.assertApiError(lambda: wallaroo.build_application("x", None),
                            "build_application expects a Pipeline")


class ModuleDocExampleTest(unittest.TestCase):

    def test_example_in_the_module_docstring_runs(self):
        doc = wallaroo.__doc__
        block = doc[doc.index("    import wallaroo"):doc.index("The public names")]
        namespace = {}
        exec(textwrap.dedent(block), namespace)
        app = namespace["application_setup"](
            ["app", "--in", "127.0.0.1:7010", "--out", "127.0.0.1:7002"])
        name, root, vs, es = app
        self.assertEqual((name, root, es), ("Reverse Word", 0, [[]]))
        self.assertEqual([s[0] for s in vs[0]], ["source", "to", "to_sink"])
        decode = vs[0][0][2][3]
        self.assertEqual(decode.decode(b"abc"), u"abc")
        self.assertEqual(vs[0][1][1].compute(u"abc"), u"cba")
        self.assertEqual(vs[0][2][1][3].encode(u"x"), b"x\n")

    def test_public_names(self):
        for name in wallaroo.__all__:
            self.assertTrue(hasattr(wallaroo, name), name)
        self.assertEqual(wallaroo.__version__, "0.6.0")
        import wallaroo.experimental as ex
        for name in ("stream_message_decoder", "stream_message_encoder",
                     "SourceConnectorConfig", "SinkConnectorConfig",
                     "SourceConnector", "SinkConnector",
                     "UnexpectedSocketError", "parse_connector_args"):
            self.assertTrue(hasattr(ex, name), name)


if __name__ == "__main__":
    unittest.main()
