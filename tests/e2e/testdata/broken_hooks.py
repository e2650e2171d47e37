import wallaroo

serialize = "not a function"


def deserialize(bs):
    return bs


def application_setup(args):
    raise AssertionError("not reached")
