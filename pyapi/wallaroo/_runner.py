"""Private: runs an application's stages inside the interpreter.

The Go host compiles the application tuple into one path per source (see
the engine's topology package) and hands each path to a ``Path`` object
here. The host then calls ``Path.process(frames)`` once per batch of
framed payloads read from that source; the whole chain (decoder,
computations, key extraction, keyed state, encoders) runs in this one call,
stage after stage over the batch, so the GIL is taken once per batch and
the per-message loop is plain Python.

Keys are placed into partitions with ``zlib.crc32`` (the same function as
the engine's routing package) and state is kept per state step, per
partition, per key, so the engine can move partitions between workers.

Nothing here is public API. This module runs unchanged on Python 2.7 and
3.x.
"""

import sys
import zlib

_PY2 = sys.version_info[0] == 2
if _PY2:
    _text_type = unicode  # noqa: F821 (Python 2 only)
else:
    _text_type = str

SINGLE_PARTITION_KEY = b"single-partition-key"

_MISSING = object()


def stock_length_fmt(decoder):
    """Return the decoder's struct format if it frames with the stock
    ``OctetDecoder.payload_length`` (so the engine may read the length in
    Go), else None (the engine must call ``payload_length`` itself)."""
    import wallaroo
    fmt = wallaroo._stock_length_fmt(decoder)
    if fmt is None:
        return None
    if isinstance(fmt, bytes) and not _PY2:
        fmt = fmt.decode("ascii")
    return str(fmt)


def serialization_hooks(module):
    """Choose how Python values are serialised when they leave this
    interpreter (to another worker, or into a checkpoint), as Wallaroo 0.6
    did: the module's own top-level ``serialize`` and ``deserialize`` if it
    defines both, else ``wallaroo.serialize``/``wallaroo.deserialize``
    (pickle). Raises TypeError if the module's hooks are not callable."""
    import wallaroo
    ser = getattr(module, "serialize", None)
    de = getattr(module, "deserialize", None)
    if ser is None or de is None:
        return wallaroo.serialize, wallaroo.deserialize
    for name, fn in (("serialize", ser), ("deserialize", de)):
        if not callable(fn):
            raise TypeError(
                "module %s defines %s = %s, which is not callable; define "
                "serialize(obj) -> bytes and deserialize(bytes) -> obj, or "
                "neither (pickle is used then)"
                % (getattr(module, "__name__", "?"), name, _describe(fn)))
    return ser, de


def _describe(obj):
    try:
        r = repr(obj)
    except Exception:
        return "<%s object>" % type(obj).__name__
    if len(r) > 200:
        r = r[:200] + "..."
    return r


def _as_key(key, stage):
    if isinstance(key, bytes):
        return key
    if isinstance(key, _text_type):
        return key.encode("utf-8")
    raise TypeError(
        "key extractor %s returned %s %s; a key must be str or bytes"
        % (stage, type(key).__name__, _describe(key)))


def _as_output(data, stage):
    if isinstance(data, bytes):
        return data
    if isinstance(data, _text_type):
        return data.encode("utf-8")
    if isinstance(data, bytearray):
        return bytes(data)
    raise TypeError(
        "encoder %s returned %s %s; an encoder must return bytes (or str, "
        "written as UTF-8) or None" % (stage, type(data).__name__,
                                         _describe(data)))


class Runner(object):
    """State shared by the paths of one application in this interpreter."""

    def __init__(self, partitions, local, hooks=None):
        self.partitions = partitions
        self.local = list(local)
        # (serialize, deserialize) for values that leave this interpreter;
        # a single worker never needs them (as in 0.6).
        self.serialize, self.deserialize = hooks or serialization_hooks(None)
        # step id -> list (one per partition) of dicts key -> state object
        self.states = {}

    def state_table(self, step_id):
        table = self.states.get(step_id)
        if table is None:
            table = [None] * self.partitions
            self.states[step_id] = table
        return table

    def path(self, source_name, decoder, stages, encoders):
        return Path(self, source_name, decoder, stages, encoders)

    def gen_path(self, source_name, generator, stages, encoders):
        """A path fed by a GenSourceConfig generator instead of frames.
        Calls ``generator.initial_value()`` now, once."""
        path = Path(self, source_name, None, stages, encoders)
        path.generator = generator
        path.gen_value = generator.initial_value()
        return path

    def state_entity_pairs(self):
        """[(step id, sorted keys)] for every state step, sorted by id."""
        return sorted(self.state_entities().items())

    def state_entities(self):
        """{step id: sorted list of keys} of every state object here."""
        out = {}
        for step_id, table in self.states.items():
            keys = []
            for part in table:
                if part:
                    keys.extend(part.keys())
            out[step_id] = sorted(keys)
        return out


# stage kinds, as the host passes them
COMPUTATION = "computation"
STATE = "state"
KEY_BY = "key_by"


class Path(object):
    """The stages of one source, from its decoder to its encoders.

    ``stages`` is a list of ``(kind, component, name, step_id, multi,
    keyed)`` tuples; ``encoders`` one encoder per sink.
    """

    def __init__(self, runner, source_name, decoder, stages, encoders):
        self.runner = runner
        self.source_name = source_name
        self.decoder = decoder
        self.stages = []
        for (kind, comp, name, step_id, multi, keyed) in stages:
            if kind == COMPUTATION:
                fn = comp.compute_multi if multi else comp.compute
                self.stages.append((kind, fn, name, None, multi, False, comp))
            elif kind == STATE:
                fn = comp.compute_multi if multi else comp.compute
                table = runner.state_table(step_id)
                self.stages.append((kind, fn, name, table, multi, keyed, comp))
            elif kind == KEY_BY:
                self.stages.append((kind, comp.extract_key, name, None,
                                    False, False, comp))
            else:
                raise ValueError("unknown stage kind %r" % (kind,))
        self.encoders = [e.encode for e in encoders]
        self.encoder_names = [
            getattr(type(e), "__name__", "encoder") for e in encoders]
        self.failed = None  # (stage description, message repr) after an error
        self.salvage = None
        self.generator = None
        self.gen_value = None

    def process(self, frames):
        """Run one batch; return a tuple with one bytes per sink.

        If user code raises, the exception propagates; before that,
        ``failed`` is set to (stage description, repr of the message) and
        ``salvage`` to the per-sink output of the messages that came before
        the failing one at the failing stage, carried through the rest of
        the path (so output produced before a failure is not lost).
        """
        self.failed = None
        self.salvage = None
        x = _MISSING
        items = []
        try:
            decode = self.decoder.decode
            append = items.append
            for x in frames:
                y = decode(x)
                if y is not None:
                    append(y)
        except Exception:
            self.failed = ("decoder of source %r" % (self.source_name,),
                           None if x is _MISSING else _describe(x))
            self.salvage = self._salvage(items, None, 0)
            raise
        return self._run(items, None, 0, False)

    def generate(self, n):
        """Take up to n values from the generator and run them; return
        (outputs, stopped). As in Wallaroo 0.6, the value after ``v`` is
        computed with ``apply(v)`` before ``v`` is pushed; a None (from
        ``initial_value`` or ``apply``) stops the source."""
        self.failed = None
        self.salvage = None
        apply = self.generator.apply
        items = []
        append = items.append
        v = self.gen_value
        try:
            while v is not None and len(items) < n:
                nxt = apply(v)
                append(v)
                v = nxt
        except Exception:
            self.failed = ("generator of source %r (apply)" % (self.source_name,),
                           _describe(v))
            self.salvage = self._salvage(items, None, 0)
            raise
        self.gen_value = v
        return self._run(items, None, 0, False), v is None

    def _salvage(self, items, keys, first):
        try:
            return self._run(items, keys, first, True)
        except Exception:
            return None

    def _run(self, items, keys, first, salvaging):
        """Run stages[first:] and the encoders over items (with their
        keys, or None when no key_by was seen yet)."""
        partitions = self.runner.partitions
        local = self.runner.local
        stages = self.stages
        si = first
        x = _MISSING
        out = []
        okeys = []
        try:
            while si < len(stages):
                if not items:
                    break
                (kind, fn, name, table, multi, keyed, comp) = stages[si]
                out = []
                append = out.append
                okeys = []
                kappend = okeys.append
                if kind == KEY_BY:
                    for x in items:
                        kappend(_as_key(fn(x), name))
                    keys = okeys
                    si += 1
                    continue
                if kind == COMPUTATION:
                    if not multi:
                        if keys is None:
                            for x in items:
                                y = fn(x)
                                if y is not None:
                                    append(y)
                        else:
                            for i, x in enumerate(items):
                                y = fn(x)
                                if y is not None:
                                    append(y)
                                    kappend(keys[i])
                    else:
                        for i, x in enumerate(items):
                            ys = fn(x)
                            if ys is None:
                                continue
                            if type(ys) is not list:
                                raise TypeError(
                                    "computation_multi %r must return a list "
                                    "or None, got %s" % (name, type(ys).__name__))
                            for y in ys:
                                if y is not None:
                                    append(y)
                                    if keys is not None:
                                        kappend(keys[i])
                else:  # STATE
                    make_state = comp.initial_state
                    for i, x in enumerate(items):
                        k = keys[i] if keyed else SINGLE_PARTITION_KEY
                        p = (zlib.crc32(k) & 0xffffffff) % partitions
                        if not local[p]:
                            raise RuntimeError(
                                "partition %d of key %r is not owned by this "
                                "worker" % (p, k))
                        part = table[p]
                        if part is None:
                            part = table[p] = {}
                        st = part.get(k, _MISSING)
                        if st is _MISSING:
                            st = part[k] = make_state()
                        ys = fn(x, st)
                        if ys is None:
                            continue
                        if not multi:
                            append(ys)
                            kappend(k)
                        else:
                            if type(ys) is not list:
                                raise TypeError(
                                    "state_computation_multi %r must return "
                                    "a list or None, got %s"
                                    % (name, type(ys).__name__))
                            for y in ys:
                                if y is not None:
                                    append(y)
                                    kappend(k)
                    keys = okeys
                items = out
                if keys is not None and keys is not okeys:
                    keys = okeys
                si += 1
            si = len(stages)
            return self._encode(items, salvaging)
        except Exception:
            if not salvaging:
                if si < len(stages):
                    kind, name = stages[si][0], stages[si][2]
                    self.failed = ("%s %r" % (kind, name),
                                   None if x is _MISSING else _describe(x))
                    if kind == KEY_BY:
                        out, keys = items[:len(okeys)], okeys
                    elif keys is not None and len(okeys) != len(out):
                        okeys = None
                    self.salvage = self._salvage(
                        out, okeys if keys is not None else None, si + 1)
            raise

    def _encode(self, items, salvaging):
        encoders = self.encoders
        chunks = [[] for _ in encoders]
        x = _MISSING
        idx = 0
        done = 0
        try:
            if len(encoders) == 1:
                encode = encoders[0]
                cappend = chunks[0].append
                for x in items:
                    y = encode(x)
                    if y is not None:
                        if type(y) is not bytes:
                            y = _as_output(y, self.encoder_names[0])
                        cappend(y)
                    done += 1
            else:
                for x in items:
                    sizes = [len(c) for c in chunks]
                    for idx, encode in enumerate(encoders):
                        y = encode(x)
                        if y is not None:
                            if type(y) is not bytes:
                                y = _as_output(y, self.encoder_names[idx])
                            chunks[idx].append(y)
                    done += 1
        except Exception:
            if not salvaging:
                self.failed = ("encoder %s" % (self.encoder_names[idx],),
                               None if x is _MISSING else _describe(x))
                if len(encoders) > 1:
                    # drop the failing message's partial encodings
                    chunks = [c[:n] for c, n in zip(chunks, sizes)]
                self.salvage = tuple(b"".join(c) for c in chunks)
            raise
        return tuple(b"".join(c) for c in chunks)
