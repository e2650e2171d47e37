"""The user functions of a Wallaroo 0.6 application as plain Python loops.

Shared by ceiling.py (the loop alone, no I/O) and asyncio_app.py (the loop
behind an asyncio TCP server). Both import the application module, call its
``application_setup(args)`` exactly as machida3 does, and take the objects
out of the returned pipeline tuple: the decoder of every source, the
computations, the key extractor, the state computation and the encoder.
Nothing is re-implemented: every message goes through the same bound
methods (``decode``, ``compute``/``compute_multi``, ``extract_key``,
``initial_state``, ``encode``) that the engine calls.

Supported pipeline shapes (what a plain loop needs to be written by hand;
both benchmarked examples fit):

    source -> [to(computation or computation_multi)] -> key_by ->
        to(state_computation) -> to_sink            (one or more sources,
                                                      merged before key_by)

Everything after the decoder runs in one tight loop per batch of frames,
with the per-key state objects in one dict per state computation (created
with the state computation's ``initial_state()``, i.e. its state class).
"""

import importlib
import struct


class Source(object):
    """One source: its decoder, its framing and its processing loop."""

    def __init__(self, name, decoder, run):
        self.name = name
        self.decoder = decoder
        self.header_length = decoder.header_length()
        # The stock OctetDecoder framing: the header is one integer in
        # ``length_fmt``; a hand-written server would unpack it directly.
        self.length = struct.Struct(decoder.length_fmt)
        # run(frames, out): processes a list of payloads (bytes), appends
        # the encoded outputs (bytes) to the list out.
        self.run = run


def _chains(module_name, n_inputs):
    """Yield (index of its --in address, name, decoder, stages after the
    source) for every TCP source of the application, the stages of the
    merge nodes above it included, each with its "node.index" step id."""
    mod = importlib.import_module(module_name)
    # Distinct placeholder ports let each source be matched to its --in
    # position; nothing listens or connects here.
    ins = ",".join("127.0.0.1:%d" % (40001 + i) for i in range(n_inputs))
    args = [module_name, "--in", ins, "--out", "127.0.0.1:40000"]
    _name, _root, vs, es = mod.application_setup(args)
    parent = {}
    for node, children in enumerate(es):
        for child in children:
            parent[child] = node
    found = set()
    for node, stages in enumerate(vs):
        if not stages or stages[0][0] != "source":
            continue
        chain = [(stage, "%d.%d" % (node, i))
                 for i, stage in enumerate(stages) if i > 0]
        up = node
        while up in parent:
            up = parent[up]
            chain.extend((stage, "%d.%d" % (up, i))
                         for i, stage in enumerate(vs[up]))
        _src, name, config = stages[0]
        if config[0] != "tcp":
            raise ValueError("source %r is not a TCP source" % (name,))
        index = int(config[2]) - 40001
        found.add(index)
        yield index, name, config[3], chain
    if len(found) != n_inputs:
        raise ValueError("the application does not have %d TCP sources"
                         % n_inputs)


def load(module_name, n_inputs):
    """Import module_name, call application_setup and return its sources,
    in the order of their --in addresses."""
    states = {}  # one dict key -> state per state computation object
    sources = [None] * n_inputs
    for index, name, decoder, chain in _chains(module_name, n_inputs):
        stages = [stage for stage, _step in chain]
        sources[index] = Source(name, decoder,
                                _make_loop(name, decoder, stages, states))
    return sources


def load_via_runner(module_name, n_inputs):
    """A diagnostic, not a baseline: the same sources, but each run() goes
    through machida3's own Python layer (the private wallaroo._runner, as
    the host sets it up for one worker with 256 partitions, all of them
    local), so that its cost can be told from that of the Go side. run(frames, out) appends
    one bytes object (the joined output of the batch) to out."""
    from wallaroo import _runner
    partitions = 256
    runner = _runner.Runner(partitions)  # every partition local (the default)
    sources = [None] * n_inputs
    for index, name, decoder, chain in _chains(module_name, n_inputs):
        stages = []
        encoders = []
        keyed = 0
        for stage, step in chain:
            kind, comp = stage[0], stage[1]
            if kind == "key_by":
                keyed = 1
                stages.append((_runner.KEY_BY, comp, "key_by", step, 0, 0))
            elif kind in ("to", "to_state"):
                multi = 1 if hasattr(comp, "compute_multi") else 0
                stages.append((_runner.STATE if kind == "to_state"
                               else _runner.COMPUTATION, comp, comp.name(),
                               step, multi, keyed if kind == "to_state"
                               else 0))
            elif kind == "to_sink":
                encoders.append(comp[3])
            else:
                raise ValueError("stage %r is not supported here" % (kind,))
        path = runner.path(name, decoder,
                           [_runner.Stage(*st) for st in stages], encoders)

        def run(frames, out, process=path.process):
            out.append(process(frames)[0])
        sources[index] = Source(name, decoder, run)
    return sources


def _make_loop(name, decoder, chain, states):
    kinds = [stage[0] for stage in chain]
    pre = None
    if kinds and kinds[0] == "to":
        pre = chain[0][1]
        chain = chain[1:]
        kinds = kinds[1:]
    if kinds != ["key_by", "to_state", "to_sink"]:
        raise ValueError(
            "source %r: pipeline %r is not one the benchmark loop supports "
            "([to] key_by to_state to_sink)" % (name, kinds))
    key_extractor = chain[0][1]
    state_comp = chain[1][1]
    sink = chain[2][1]
    if hasattr(state_comp, "compute_multi"):
        raise ValueError("source %r: state_computation_multi is not "
                         "supported by the benchmark loop" % (name,))
    decode = decoder.decode
    extract_key = key_extractor.extract_key
    compute = state_comp.compute
    make_state = state_comp.initial_state
    encode = sink[3].encode
    table = states.setdefault(id(state_comp), {})

    if pre is None:
        def run(frames, out):
            append = out.append
            get = table.get
            for frame in frames:
                x = decode(frame)
                if x is None:
                    continue
                k = extract_key(x)
                st = get(k)
                if st is None:
                    st = table[k] = make_state()
                r = compute(x, st)
                if r is not None:
                    b = encode(r)
                    if b is not None:
                        append(b)
        return run

    if hasattr(pre, "compute_multi"):
        pre_multi = pre.compute_multi

        def run(frames, out):
            append = out.append
            get = table.get
            for frame in frames:
                x = decode(frame)
                if x is None:
                    continue
                ys = pre_multi(x)
                if ys is None:
                    continue
                for y in ys:
                    if y is None:
                        continue
                    k = extract_key(y)
                    st = get(k)
                    if st is None:
                        st = table[k] = make_state()
                    r = compute(y, st)
                    if r is not None:
                        b = encode(r)
                        if b is not None:
                            append(b)
        return run

    pre_one = pre.compute

    def run(frames, out):
        append = out.append
        get = table.get
        for frame in frames:
            x = decode(frame)
            if x is None:
                continue
            y = pre_one(x)
            if y is None:
                continue
            k = extract_key(y)
            st = get(k)
            if st is None:
                st = table[k] = make_state()
            r = compute(y, st)
            if r is not None:
                b = encode(r)
                if b is not None:
                    append(b)
    return run


def read_frames(path, header_length=4, fmt=">I"):
    """The payloads of a file of length-framed messages, as bytes."""
    with open(path, "rb") as f:
        data = f.read()
    unpack = struct.Struct(fmt).unpack_from
    frames = []
    pos = 0
    n = len(data)
    while pos < n:
        length = unpack(data, pos)[0]
        start = pos + header_length
        frames.append(data[start:start + length])
        pos = start + length
    if pos != n:
        raise ValueError("%s: the last frame is cut short" % path)
    return frames
