# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: the connector frame codec, the methods of the classes that
``wallaroo.experimental.stream_message_decoder`` and
``stream_message_encoder`` generate.
"""

from __future__ import absolute_import, division, print_function

import calendar
import datetime
import struct
import time

from wallaroo._arity import _f_repr
from wallaroo._compat import _integer_types


def _event_time_ms(event_time):
    """Milliseconds since the epoch for an int or a datetime.

    Aware datetimes are exact. Naive datetimes are local time, as Python 3's
    ``datetime.timestamp()`` treats them. Computed the same way on every
    Python version (0.6 called ``timestamp()``, which Python 2 lacks).
    """
    if isinstance(event_time, datetime.datetime):
        if event_time.utcoffset() is not None:
            delta = event_time.replace(tzinfo=None) - event_time.utcoffset() \
                - datetime.datetime(1970, 1, 1)
            return (delta.days * 86400000 + delta.seconds * 1000
                    + delta.microseconds // 1000)
        seconds = int(time.mktime(event_time.timetuple()))
        return seconds * 1000 + event_time.microsecond // 1000
    if isinstance(event_time, datetime.date):
        return calendar.timegm(event_time.timetuple()) * 1000
    if (isinstance(event_time, _integer_types)
            and not isinstance(event_time, bool)):
        return event_time
    raise TypeError("event_time must be an int (milliseconds since the epoch) "
                    "or a datetime, got {0!r}".format(event_time))


def _connector_decode(self, bs):
    return self._user_func(bs[8:])  # drop the 8-byte event time


def _connector_decoder(self):
    return self._user_func


def _connector_encode(self, data, event_time=0):
    payload = self._user_func(data)
    # Improvement over 0.6: a text payload failed inside struct.pack with an
    # unhelpful message.
    if not isinstance(payload, bytes):
        raise TypeError(
            "stream_message_encoder function {0} must return bytes, got "
            "{1}".format(_f_repr(self._user_func), type(payload).__name__))
    return struct.pack("<Iq", len(payload) + 8,
                       _event_time_ms(event_time)) + payload
