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

SINGLE_PARTITION_KEY = str("single-partition-key")

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
    """Normalise a key to the native str: text on Python 3 (bytes decoded
    as UTF-8, undecodable bytes kept by surrogateescape, so no two keys
    merge), bytes on Python 2 (unicode encoded as UTF-8). So "a" and b"a"
    are one key, and the common case, a str key, costs nothing: its hash
    is cached."""
    if isinstance(key, str):
        return key
    if _PY2 and isinstance(key, _text_type):
        return key.encode("utf-8")
    if not _PY2 and isinstance(key, bytes):
        return key.decode("utf-8", "surrogateescape")
    raise TypeError(
        "key extractor %s returned %s %s; a key must be str or bytes"
        % (stage, type(key).__name__, _describe(key)))


def _key_bytes(key):
    """The bytes of a normalised key (what the engine hashes and shows)."""
    if _PY2:
        return key
    return key.encode("utf-8", "surrogateescape")


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
        self.local = [bool(x) for x in local]
        # With every partition local (one worker), the generated loops skip
        # the partition check altogether.
        self.all_local = all(self.local)
        # (serialize, deserialize) for values that leave this interpreter;
        # a single worker never needs them (as in 0.6).
        self.serialize, self.deserialize = hooks or serialization_hooks(None)
        # step id -> dict key (bytes) -> state object
        self.states = {}

    def state_table(self, step_id):
        table = self.states.get(step_id)
        if table is None:
            table = {}
            self.states[step_id] = table
        return table

    def partition_of(self, key):
        """The partition of a key (a native str, see _as_key), as the
        engine's routing package computes it from the key's bytes."""
        return (zlib.crc32(_key_bytes(key)) & 0xffffffff) % self.partitions

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
        """{step id: sorted list of keys (bytes)} of every state object
        here."""
        return dict((step_id, sorted(_key_bytes(k) for k in table))
                    for step_id, table in self.states.items())


# stage kinds, as the host passes them
COMPUTATION = "computation"
STATE = "state"
KEY_BY = "key_by"


def _not_local(runner, key):
    raise RuntimeError(
        "partition %d of key %r is not owned by this worker"
        % (runner.partition_of(key), key))


def _not_a_list(what, name, value):
    raise TypeError("%s %r must return a list or None, got %s"
                    % (what, name, type(value).__name__))


class Path(object):
    """The stages of one source, from its decoder to its encoders.

    ``stages`` is a list of ``(kind, component, name, step_id, multi,
    keyed)`` tuples; ``encoders`` one encoder per sink.

    The stages are compiled into one Python function (see ``_compile``)
    that takes each message of a batch through every stage before the next
    message: the same loop a user would write by hand, with no per-stage
    lists and no dispatch on stage kinds. Keys are normalised to the
    native str (see _as_key), so "a" and b"a" are one key.
    """

    def __init__(self, runner, source_name, decoder, stages, encoders):
        self.runner = runner
        self.source_name = source_name
        self.decoder = decoder
        self.generator = None
        self.gen_value = None
        self.failed = None  # (stage description, message repr) after an error
        self.salvage = None  # per-sink output made before the error
        self.stage_names = []
        self._run = self._compile(stages, encoders)

    def _compile(self, stages, encoders):
        env = {
            "_MISSING": _MISSING, "_SPK": SINGLE_PARTITION_KEY,
            "_as_key": _as_key, "_as_output": _as_output, "bytes": bytes,
            "list": list, "type": type, "str": str, "_not_a_list": _not_a_list,
            "_not_local": _not_local, "_runner": self.runner,
            "_text": _text_type,
        }
        names = ["decoder of source %r" % (self.source_name,)]
        if self.decoder is None:
            names[0] = "generator of source %r (apply)" % (self.source_name,)
        else:
            env["_decode"] = self.decoder.decode
        check_local = not self.runner.all_local
        lines = []
        emit = lines.append

        def code(depth, text):
            emit("    " * depth + text)

        # Per message: v is the value, k its key (None before a key_by).
        depth = 4
        if self.decoder is not None:
            code(depth, "_st = 0")
            code(depth, "v = _decode(_x)")
            code(depth, "if v is None: continue")
        else:
            code(depth, "v = _x")
        code(depth, "k = None")
        for i, (kind, comp, name, step_id, multi, keyed) in enumerate(stages):
            n = i + 1
            names.append("%s %r" % (kind, name))
            code(depth, "_st = %d; _x = v" % n)
            if kind == KEY_BY:
                env["_f%d" % n] = comp.extract_key
                env["_n%d" % n] = name
                code(depth, "k = _f%d(v)" % n)
                code(depth, "if type(k) is not str: k = _as_key(k, _n%d)" % n)
                continue
            if kind == COMPUTATION:
                env["_f%d" % n] = comp.compute_multi if multi else comp.compute
                call = "_f%d(v)" % n
                what = "computation_multi"
            elif kind == STATE:
                env["_f%d" % n] = comp.compute_multi if multi else comp.compute
                env["_t%d" % n] = self.runner.state_table(step_id)
                env["_i%d" % n] = comp.initial_state
                key = "k" if keyed else "_SPK"
                if not keyed:
                    code(depth, "k = _SPK")
                if check_local:
                    env["_local"] = self.runner.local
                    code(depth, "if not _local[_runner.partition_of(k)]: _not_local(_runner, k)")
                code(depth, "s = _t%d.get(%s, _MISSING)" % (n, key))
                code(depth, "if s is _MISSING: s = _t%d[%s] = _i%d()" % (n, key, n))
                call = "_f%d(v, s)" % n
                what = "state_computation_multi"
            else:
                raise ValueError("unknown stage kind %r" % (kind,))
            env["_n%d" % n] = name
            if not multi:
                code(depth, "v = " + call)
                code(depth, "if v is None: continue")
            else:
                code(depth, "vs = " + call)
                code(depth, "if vs is None: continue")
                code(depth, "if type(vs) is not list: _not_a_list(%r, _n%d, vs)" % (what, n))
                code(depth, "for v in vs:")
                depth += 1
                code(depth, "if v is None: continue")
        # Encoders: every encoding of a message is made before any is kept,
        # so an encoder failing leaves no half-written message behind.
        first_enc = len(stages) + 1
        for j, enc in enumerate(encoders):
            n = first_enc + j
            names.append("encoder %s" % (getattr(type(enc), "__name__", "encoder"),))
            env["_e%d" % j] = enc.encode
            env["_en%d" % j] = names[-1]
            code(depth, "_st = %d; _x = v" % n)
            code(depth, "e%d = _e%d(v)" % (j, j))
            code(depth, "if e%d is not None and type(e%d) is not bytes: e%d = _as_output(e%d, _en%d)" % (j, j, j, j, j))
        for j in range(len(encoders)):
            code(depth, "if e%d is not None: _a%d(e%d)" % (j, j, j))
        self.stage_names = names

        outs = ", ".join("_o%d" % j for j in range(len(encoders)))
        src = ["def _make():", "    def _run(_frames, _salvage):"]
        for j in range(len(encoders)):
            src.append("        _o%d = []; _a%d = _o%d.append" % (j, j, j))
        src.append("        _st = 0; _x = None")
        src.append("        try:")
        src.append("            for _x in _frames:")
        src.extend(lines)
        src.append("        except Exception:")
        src.append("            _salvage(_st, _x, (%s%s))" % (outs, "," if len(encoders) == 1 else ""))
        src.append("            raise")
        src.append("        return (%s%s)" % (", ".join('b"".join(_o%d)' % j for j in range(len(encoders))),
                                          "," if len(encoders) == 1 else ""))
        src.append("    return _run")
        text = "\n".join(src) + "\n"
        codeobj = compile(text, "<wallaroo runner: %s>" % (self.source_name,), "exec")
        exec(codeobj, env)
        self.source_text = text
        return env["_make"]()

    def _note_failure(self, stage, x, outs):
        self.failed = (self.stage_names[stage],
                       None if x is None else _describe(x))
        self.salvage = tuple(b"".join(o) for o in outs)

    def process(self, frames):
        """Run one batch; return a tuple with one bytes per sink.

        If user code raises, the exception propagates; before that,
        ``failed`` is set to (stage description, repr of the message) and
        ``salvage`` to the per-sink output of the messages before the
        failing one (so output produced before a failure is not lost).
        """
        self.failed = None
        self.salvage = None
        return self._run(frames, self._note_failure)

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
            self.failed = (self.stage_names[0], _describe(v))
            try:
                self.salvage = self._run(items, lambda *a: None)
            except Exception:
                self.salvage = None
            raise
        self.gen_value = v
        return self._run(items, self._note_failure), v is None
