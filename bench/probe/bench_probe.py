"""Loaded by machida3 (--application-module bench_probe) to report which
Python it embeds; exits at import, before anything listens or connects.

sys.executable is not reliable in an embedded interpreter (it names
whatever python3 is on PATH); sys.version and sys.prefix are.
"""

import json
import os
import sys

sys.stdout.write("BENCH_PROBE " + json.dumps({
    "version": sys.version,
    "major": sys.version_info[0],
    "minor": sys.version_info[1],
    "prefix": sys.prefix,
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "executable": sys.executable,
}) + "\n")
sys.stdout.flush()
os._exit(0)
