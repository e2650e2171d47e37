# Copyright the wallaroo-go authors. Licensed under the Apache License 2.0.
"""Private: the pipeline builder, :func:`source` and
:func:`build_application`.
"""

from __future__ import absolute_import, division, print_function

from wallaroo._bases import StateComputation
from wallaroo._errors import _api_error, _validate_name


_SINK_COMMANDS = ("to_sink", "to_sinks")


class _PipelineTree(object):
    """The node and edge lists behind a Pipeline (see build_application)."""

    def __init__(self, source_stage):
        self.vs = [[source_stage]]
        self.es = [[]]
        self.root_idx = 0
        self.is_closed = False

    def clone(self):
        other = _PipelineTree.__new__(_PipelineTree)
        other.vs = [list(stages) for stages in self.vs]
        other.es = [list(edges) for edges in self.es]
        other.root_idx = self.root_idx
        other.is_closed = self.is_closed
        return other

    def add_stage(self, stage):
        if self.is_closed:
            raise _api_error(
                "You can't add stages after to_sink/s. Tried to add {0!r}.",
                stage[0])
        self.vs[self.root_idx].append(stage)
        if stage[0] in _SINK_COMMANDS:
            self.is_closed = True

    def merge(self, other):
        # A new, empty node becomes the root; its children are this tree's
        # root (left) and the other tree's root (right). The other tree's
        # nodes are appended with their indices shifted. Closedness comes
        # from the left side only, as in 0.6; the host checks the rest.
        merge_idx = len(self.vs)
        self.vs.append([])
        self.es.append([])
        shift = len(self.vs)
        for stages, edges in zip(other.vs, other.es):
            self.vs.append(list(stages))
            self.es.append([e + shift for e in edges])
        self.es[merge_idx] = [self.root_idx, other.root_idx + shift]
        self.root_idx = merge_idx

    def to_tuple(self, app_name):
        return (app_name, self.root_idx,
                [list(stages) for stages in self.vs],
                [list(edges) for edges in self.es])


def _check_config(what, config):
    if not callable(getattr(config, "to_tuple", None)):
        raise _api_error(
            "{0} expects a source/sink configuration object such as "
            "TCPSourceConfig or TCPSinkConfig, got {1!r}.", what, config)
    return config.to_tuple()


class Pipeline(object):
    """An immutable description of a pipeline.

    Every method returns a new Pipeline and leaves this one unchanged, so a
    pipeline can be branched: ``p.to(a)`` and ``p.to(b)`` are independent.
    Create one with :func:`source`.
    """

    def __init__(self, tree):
        self._pipeline_tree = tree

    @classmethod
    def from_source(cls, name, source_config):
        """A new open pipeline reading from ``source_config``, named ``name``."""
        _validate_name("source", name)
        config = _check_config("source", source_config)
        return cls(_PipelineTree(("source", name, config)))

    def clone(self):
        """A copy whose node and edge lists are independent of this one's."""
        return Pipeline(self._pipeline_tree.clone())

    def _with_stage(self, stage):
        p = self.clone()
        p._pipeline_tree.add_stage(stage)
        return p

    def to(self, computation):
        """Add a computation (stateless or state) made with a decorator."""
        # Improvement over 0.6: 0.6 accepted any object here and failed when
        # the first message arrived.
        if not (hasattr(computation, "compute")
                or hasattr(computation, "compute_multi")):
            raise _api_error(
                "to() expects a computation made with @wallaroo.computation, "
                "@computation_multi, @state_computation or "
                "@state_computation_multi, got {0!r}.", computation)
        if isinstance(computation, StateComputation):
            return self._with_stage(("to_state", computation))
        return self._with_stage(("to", computation))

    def key_by(self, key_extractor):
        """Partition the following steps by ``key_extractor.extract_key(data)``."""
        if not hasattr(key_extractor, "extract_key"):
            raise _api_error(
                "key_by() expects a key extractor made with "
                "@wallaroo.key_extractor, got {0!r}.", key_extractor)
        return self._with_stage(("key_by", key_extractor))

    def to_sink(self, sink_config):
        """End the pipeline with one sink."""
        config = _check_config("to_sink", sink_config)
        return self._with_stage(("to_sink", config))

    def to_sinks(self, sink_configs):
        """End the pipeline with several sinks; each output goes to all of them."""
        try:
            configs = list(sink_configs)
        except TypeError:
            raise _api_error("to_sinks() expects a list of sink "
                             "configurations, got {0!r}.", sink_configs)
        # Improvement over 0.6: the empty list was accepted in Python and the
        # engine aborted later with the same sentence.
        if not configs:
            raise _api_error(
                "You must specify at least one sink when using to_sinks().")
        return self._with_stage(
            ("to_sinks", [_check_config("to_sinks", c) for c in configs]))

    def merge(self, pipeline):
        """Combine this pipeline and ``pipeline``; later stages see both streams."""
        if not isinstance(pipeline, Pipeline):
            raise _api_error("merge() expects a Pipeline, got {0!r}.",
                             pipeline)
        p = self.clone()
        p._pipeline_tree.merge(pipeline._pipeline_tree)
        return p

    def __to_tuple__(self, app_name):
        return self._pipeline_tree.to_tuple(app_name)

    def __is_closed__(self):
        return self._pipeline_tree.is_closed

    def _stages(self, commands):
        return [stage for stages in self._pipeline_tree.vs
                for stage in stages if stage[0] in commands]

    def _sources(self):
        return self._stages(("source",))

    def _sinks(self):
        return self._stages(_SINK_COMMANDS)


def source(name, source_config):
    """Start a pipeline: a source called ``name`` configured by ``source_config``."""
    return Pipeline.from_source(name, source_config)


def build_application(app_name, pipeline):
    """Return the application tuple ``(app_name, root_idx, vs, es)``.

    ``vs[i]`` lists the stages of tree node ``i``: a leaf starts with its
    ``("source", name, config)`` stage, a merge node holds only the stages
    after the merge. ``es[i]`` is ``[]`` for a leaf and ``[left, right]``
    for a merge. ``root_idx`` is the node that ends with the sink.

    :raises WallarooParameterError: if the pipeline does not end with
        ``to_sink``/``to_sinks``.
    """
    _validate_name("build_application", app_name)
    if not isinstance(pipeline, Pipeline):
        raise _api_error("build_application expects a Pipeline, got {0!r}.",
                         pipeline)
    # Improvement over 0.6: the message is carried by the exception instead
    # of being printed before raising an empty one.
    if not pipeline.__is_closed__():
        raise _api_error("An application must end with to_sink/s.")
    return pipeline.__to_tuple__(app_name)
