"""Arity and callability checks done when a decorator is applied."""

from __future__ import absolute_import, print_function

import functools
import sys
import unittest

import wallaroo

PY3 = sys.version_info[0] >= 3
ArityError = wallaroo.WallarooParameterError


class Handler(object):
    def method(self, data):
        return ("method", data)

    def method_with_state(self, data, state):
        return ("state", data, state)

    @classmethod
    def class_method(cls, data):
        return ("classmethod", data)

    @staticmethod
    def static_method(data):
        return ("staticmethod", data)


class CallableInstance(object):
    def __call__(self, data):
        return ("called", data)


class TwoArgCallable(object):
    def __call__(self, data, state):
        return ("called", data, state)


class ArityTest(unittest.TestCase):

    def assertArityError(self, decorate, func, fragments):
        with self.assertRaises(ArityError) as ctx:
            decorate(func)
        message = str(ctx.exception)
        self.assertTrue(message.startswith("API_Error: "), message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message

    def test_two_arg_function_with_computation(self):
        def f(data, state):
            return data
        message = self.assertArityError(
            wallaroo.computation("two args"), f,
            ["Incompatible function arity, your function two args must have "
             "1 parameter(s).", "takes 2 positional parameter(s)", "'"])
        self.assertIn(".f' line", message)

    def test_one_arg_function_with_state_computation(self):
        def f(data):
            return data
        self.assertArityError(wallaroo.state_computation("s", dict), f,
                              ["must have 2 parameter(s)",
                               "takes 1 positional parameter(s)"])
        self.assertArityError(wallaroo.state_computation_multi("s", dict), f,
                              ["must have 2 parameter(s)"])

    def test_other_decorators_name_the_function(self):
        def no_args():
            return 1
        for decorate in (wallaroo.key_extractor, wallaroo.encoder,
                         wallaroo.decoder(4, ">I"),
                         wallaroo.computation_multi("m")):
            self.assertArityError(decorate, no_args,
                                  ["must have 1 parameter(s)",
                                   "takes 0 positional parameter(s)"])
        self.assertArityError(wallaroo.encoder, no_args,
                              ["your function no_args must"])

    def test_defaults_widen_the_accepted_range(self):
        def f(data, state=None):
            return (data, state)
        self.assertEqual(wallaroo.computation("c")(f).compute(1), (1, None))
        self.assertEqual(wallaroo.state_computation("s", dict)(f).compute(
            1, 2), (1, 2))

        def g(data, a=1, b=2):
            return data
        self.assertArityError(wallaroo.state_computation("s", dict),
                              lambda: None, ["takes 0 positional"])
        wallaroo.computation("c")(g)

        def h(data, state, extra, more=1):
            return data
        self.assertArityError(wallaroo.computation("c"), h,
                              ["takes 3 to 4 positional parameters"])

    def test_varargs_accept_any_count(self):
        # Improvement over 0.6, which ignored *args and rejected f(*args).
        def f(*args):
            return args
        self.assertEqual(wallaroo.computation("c")(f).compute(1), (1,))
        self.assertEqual(wallaroo.state_computation("s", dict)(f).compute(
            1, 2), (1, 2))

        def g(a, b, c, *rest):
            return a
        self.assertArityError(wallaroo.computation("c"), g,
                              ["takes at least 3 positional parameter(s)"])

    def test_keyword_arguments_are_ignored(self):
        def f(data, **options):
            return data
        self.assertEqual(wallaroo.computation("c")(f).compute(3), 3)

    def test_bound_methods_do_not_count_self(self):
        handler = Handler()
        comp = wallaroo.computation("m")(handler.method)
        self.assertEqual(comp.compute(1), ("method", 1))
        state = wallaroo.state_computation("s", dict)(handler.method_with_state)
        self.assertEqual(state.compute(1, 2), ("state", 1, 2))
        self.assertArityError(wallaroo.computation("m"),
                              handler.method_with_state,
                              ["takes 2 positional parameter(s)"])

    def test_class_and_static_methods(self):
        self.assertEqual(wallaroo.computation("c")(
            Handler.class_method).compute(1), ("classmethod", 1))
        self.assertEqual(wallaroo.computation("c")(
            Handler.static_method).compute(1), ("staticmethod", 1))

    def test_callable_instances(self):
        comp = wallaroo.computation("c")(CallableInstance())
        self.assertEqual(comp.compute(1), ("called", 1))
        self.assertEqual(type(comp).__name__.split("__")[-1],
                         "CallableInstance")
        self.assertArityError(wallaroo.computation("c"), TwoArgCallable(),
                              ["must have 1 parameter(s)",
                               "takes 2 positional parameter(s)"])
        wallaroo.state_computation("s", dict)(TwoArgCallable())

    def test_builtins_and_partials(self):
        self.assertEqual(wallaroo.computation("len")(len).compute("abc"), 3)

        def add(a, b):
            return a + b
        partial = functools.partial(add, 10)
        self.assertEqual(wallaroo.computation("p")(partial).compute(5), 15)
        if PY3:  # Python 2 cannot inspect partials; they are accepted there.
            self.assertArityError(wallaroo.computation("p"),
                                  functools.partial(add),
                                  ["takes 2 positional parameter(s)"])

    def test_lambda(self):
        comp = wallaroo.computation("l")(lambda d: d * 3)
        self.assertEqual(comp.compute(2), 6)

    @unittest.skipUnless(PY3, "keyword-only parameters are Python 3 syntax")
    def test_keyword_only_parameters(self):
        namespace = {}
        # exec: this file must still parse under Python 2.
        exec("def kw_default(data, *, scale=2): return data * scale\n"
             "def kw_required(data, *, scale): return data * scale\n"
             "def annotated(data: int) -> int: return data + 1\n",
             namespace)
        comp = wallaroo.computation("kw")(namespace["kw_default"])
        self.assertEqual(comp.compute(3), 6)
        self.assertArityError(wallaroo.computation("kw"),
                              namespace["kw_required"],
                              ["must have 1 parameter(s)",
                               "keyword-only parameter(s) without a "
                               "default: scale"])
        self.assertEqual(wallaroo.computation("a")(
            namespace["annotated"]).compute(1), 2)

    def test_non_callable(self):
        for decorate in (wallaroo.computation("x"), wallaroo.key_extractor,
                         wallaroo.encoder):
            with self.assertRaises(ArityError) as ctx:
                decorate(42)
            self.assertIn("API_Error: Expected a callable object but got a 42 "
                          "for ", str(ctx.exception))
        with self.assertRaises(ArityError) as ctx:
            wallaroo.computation("my comp")("not a function")
        self.assertIn("for my comp", str(ctx.exception))

    def test_missing_name_parentheses(self):
        def f(data):
            return data
        with self.assertRaises(ArityError) as ctx:
            wallaroo.computation(f)
        self.assertIn("computation expects a name string", str(ctx.exception))
        self.assertIn('@wallaroo.computation("my name")', str(ctx.exception))
        with self.assertRaises(ArityError):
            wallaroo.state_computation(None, dict)


if __name__ == "__main__":
    unittest.main()
