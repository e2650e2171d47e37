"""The parts of topo_gen.py's pipelines: a message class, a state class,
and the computations topo_gen makes at start-up and files here under
their names (so they are attributes of an importable module, as
anything pickled by reference must be)."""


class Message(object):
    """A keyed value and the names of the steps it went through."""

    def __init__(self, key, value):
        self.key = key
        self.value = value
        self.tags = []


class Seen(object):
    """A step's state per key: how many messages of the key it saw."""

    def __init__(self):
        self.count = 0


def register(name, fn):
    """File fn here as name (pickle finds it by module and name)."""
    fn.__name__ = name
    fn.__qualname__ = name
    fn.__module__ = __name__
    globals()[name] = fn
    return fn
