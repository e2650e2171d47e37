"""multi_partition_detector (see multi_partition_detector.py, whose input,
output and options this shares) with its TraceID step made a state
computation: each key crosses two keyed boundaries in a row (key_by,
state, key_by, state), where a grow or shrink must keep the key's order
through both (the rescale tests' TestRescaleTwoKeyedStatesInARow). The
first state only counts the key's messages."""

import multi_partition_detector as mpd
import wallaroo


def application_setup(args):
    return mpd.build(args, trace_id_state)


class Seen(object):
    def __init__(self):
        self.n = 0


@wallaroo.state_computation(name="TraceIDState", state=Seen)
def trace_id_state(msg, state):
    state.n += 1
    return mpd.Message(msg.tag + ".TraceID", msg.value)
