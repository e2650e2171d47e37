"""Shared helpers for the wallaroo tests."""

from __future__ import absolute_import, print_function

import contextlib
import os
import subprocess
import sys

import wallaroo

# The directory holding the wallaroo package (pyapi/): what a child
# interpreter needs on its path.
PYAPI_DIR = os.path.dirname(os.path.dirname(os.path.abspath(wallaroo.__file__)))


def next_name(base, func_name):
    """The name the next decoration of kind ``base`` will get."""
    return "{0}_{1}__{2}".format(base.__name__, wallaroo._C[base] + 1,
                                 func_name)


@contextlib.contextmanager
def quiet_stderr():
    """Silence argparse's usage output while a SystemExit is expected."""
    saved = sys.stderr
    sys.stderr = open(os.devnull, "w")
    try:
        yield
    finally:
        sys.stderr.close()
        sys.stderr = saved


def child_env():
    """Environment for a child Python that imports this checkout's wallaroo."""
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [PYAPI_DIR] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_python(source, cwd=None):
    """Run ``source`` in a fresh interpreter; return (rc, stdout, stderr) as text."""
    source = "from __future__ import print_function\n" + source
    proc = subprocess.Popen([sys.executable, "-c", source], cwd=cwd,
                            env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.communicate()
    return proc.returncode, out.decode("utf-8"), err.decode("utf-8")
