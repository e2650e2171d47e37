# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: the API's exception and the checks every module shares."""

from __future__ import absolute_import, division, print_function

from wallaroo._compat import _string_types


class WallarooParameterError(Exception):
    """Raised when the application is built with invalid arguments.

    The message starts with ``API_Error:`` (the 0.6 wording, kept for anyone
    who searches logs for it) and says what was expected and what was given.
    """


def _api_error(message, *args):
    return WallarooParameterError("API_Error: " + message.format(*args))


def _validate_name(what, name):
    # Improvement over 0.6: the host needs a string name; 0.6 accepted
    # anything here and crashed later. For decorators the usual cause is a
    # missing pair of parentheses (`@computation` for `@computation("name")`).
    if not isinstance(name, _string_types):
        hint = ""
        if callable(name):
            hint = (" Write @wallaroo.{0}(\"my name\") above the "
                    "function.".format(what))
        raise _api_error("{0} expects a name string, got {1!r}.{2}",
                         what, name, hint)
