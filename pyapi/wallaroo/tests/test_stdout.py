"""Import-time side effect: stdout/stderr are unbuffered under pipes."""

from __future__ import absolute_import, print_function

import select
import subprocess
import sys
import textwrap
import time
import unittest

import wallaroo
from wallaroo.tests._helpers import child_env


def read_line_within(stream, seconds):
    """One line from a pipe, or None if none arrives in time."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        ready, _, _ = select.select([stream], [], [], deadline - time.time())
        if ready:
            return stream.readline().decode("utf-8")
    return None


class UnbufferedTest(unittest.TestCase):

    def test_print_reaches_a_pipe_at_once(self):
        # The child prints and then blocks on stdin; without the wrapper the
        # line would stay in its buffer until exit.
        source = textwrap.dedent("""
            from __future__ import print_function
            import sys
            import wallaroo
            print(type(sys.stdout).__name__, type(sys.stderr).__name__)
            sys.stderr.write("to stderr\\n")
            sys.stdout.writelines(["two ", "lines\\n"])
            sys.stdin.readline()
            """)
        # bufsize=0: our own select() must see every byte not yet read.
        proc = subprocess.Popen([sys.executable, "-c", source], bufsize=0,
                                env=child_env(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertEqual(read_line_within(proc.stdout, 10).split(),
                             ["_Unbuffered", "_Unbuffered"])
            self.assertEqual(read_line_within(proc.stderr, 10), "to stderr\n")
            self.assertEqual(read_line_within(proc.stdout, 10), "two lines\n")
        finally:
            proc.stdin.write(b"\n")
            proc.stdin.close()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        self.assertEqual(proc.returncode, 0)

    def test_wrapper_forwards_attributes(self):
        wrapped = wallaroo._Unbuffered(sys.__stdout__)
        self.assertEqual(wrapped.fileno(), sys.__stdout__.fileno())
        # Wrapping twice is avoided.
        saved = sys.stdout
        try:
            sys.stdout = wrapped
            wallaroo._unbuffer_if_piped("stdout")
            self.assertIs(sys.stdout, wrapped)
        finally:
            sys.stdout = saved


if __name__ == "__main__":
    unittest.main()
