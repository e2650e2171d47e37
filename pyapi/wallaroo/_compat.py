# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: the few names that differ between Python 2.7 and 3.x.

Every module of the package is one source file for both; these tuples are
what their isinstance checks use.
"""

from __future__ import absolute_import, division, print_function

import sys


_PY2 = sys.version_info[0] == 2

if _PY2:
    _string_types = (str, unicode)  # noqa: F821 (Python 2 only)
    _integer_types = (int, long)  # noqa: F821 (Python 2 only)
else:
    _string_types = (str, bytes)
    _integer_types = (int,)
