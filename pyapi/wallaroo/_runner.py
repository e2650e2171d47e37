"""Private: runs an application's stages inside the interpreter.

The Go host compiles the application tuple into one path per source (see
the engine's topology package), cut into segments where a message may
change owner (before every state computation, before every stateless
computation directly after key_by, and before the first stateless chain
after a source or after a merge of unkeyed pipelines), and hands each
path to a ``Path`` object here. The host calls
``Path.process(frames, ts)`` once per batch of framed payloads read from
that source; the whole chain (decoder, computations, key extraction,
keyed state, encoders) runs in this one call, message after message, so
the GIL is taken once per batch and the per-message loop is plain Python
with no per-stage lists.

Ownership. The engine owns the table ``owner[partition]``: 0 means this
interpreter, any other number a destination the engine routes to (another
worker, or another interpreter). The runner compiles the table into the
loops: a segment boundary whose partitions are all local compiles to
nothing, so one worker pays nothing for the cuts; when the table changes
(``Runner.set_ownership``) every loop is compiled again. A message whose
partition is not local leaves the loop as an envelope record (key,
value, ingest time), appended to a flat list kept per (destination, path,
segment): three list appends, no tuple, no call of ours. A boundary finds
a key's list (or None when the key is local) in a dict of its own, filled
as keys are first seen. ``Runner.take_envelopes`` serialises the records
per destination in columns: keys and values in one pickle when the module
uses pickle (a column of native strings packed as one bytes, see
``_columns``; one call of its own ``serialize`` per value otherwise), the
ingest times as packed 64-bit integers; ``Runner.resume`` runs such a
batch from the segment each group names.

State. A state step keeps a dict key -> state object (the hot path looks a
key up once) and an index partition -> keys, updated when a key is first
seen, so a partition can be exported to bytes and imported elsewhere
(migration, checkpoints). Keys are placed into partitions with
``zlib.crc32`` of their bytes, the same function as the engine's routing
package.

Nothing here is public API. This module runs unchanged on Python 2.7 and
3.x.
"""

import binascii
import gc
from itertools import chain, repeat
try:
    from itertools import accumulate
except ImportError:  # Python 2: no M records there
    accumulate = None
import marshal
import operator
import os
import pickle
from array import array
from collections import deque
import random
import sys
import time
import zlib

# (The machida binaries put C versions of these two here: see _columns.)
from wallaroo._columns import pack_text as _pack_text
from wallaroo._columns import unpack_text as _unpack_text

_PY2 = sys.version_info[0] == 2
if _PY2:
    _text_type = unicode  # noqa: F821 (Python 2 only)
else:
    _text_type = str

SINGLE_PARTITION_KEY = str("single-partition-key")

# A nanosecond clock for stage timing (metrics). The binaries replace it
# with the bridge's monotonic_ns (Python 2 has no nanosecond clock).
if hasattr(time, "perf_counter_ns"):
    _clock_ns = time.perf_counter_ns
else:
    def _clock_ns(_t=getattr(time, "perf_counter", time.time)):
        return int(_t() * 1e9)

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
        # A subclass's instance as its plain text: a key is its text, and
        # the engine compares keys without running application code.
        return key if type(key) is str else str.__str__(key)
    if _PY2 and isinstance(key, _text_type):
        return _text_type.encode(key, "utf-8")  # (a subclass's own encode not called)
    if not _PY2 and isinstance(key, bytes):
        return bytes.decode(key, "utf-8", "surrogateescape")
    raise TypeError(
        "key extractor %s returned %s %s; a key must be str or bytes"
        % (stage, type(key).__name__, _describe(key)))


class _KeyTexts(object):
    """A bounded cache of the text of bytes keys (Python 3), for the
    compiled loops: a key extractor that returns bytes (a symbol cut out of
    a binary message, say) gives a new bytes object each message, and
    decoding it through _as_key costs a call and a decode; the cache gives
    the same native str for the same bytes, its hash already computed, for
    one dict lookup. Keys of more than MAX_LEN bytes are not kept; past
    MAX_KEYS entries the cache starts again empty (memory stays bounded
    whatever the keys). Owned by its Runner's thread."""

    MAX_LEN = 64
    MAX_KEYS = 8192

    def __init__(self):
        # (get is bound to this one dict, which is emptied in place,
        # never replaced: the compiled loops hold get.)
        self.texts = {}
        self.get = self.texts.get

    def miss(self, key):
        """The text of exact bytes key (as _as_key gives it), kept unless
        empty (the loops read a cached '' as a miss) or long."""
        text = bytes.decode(key, "utf-8", "surrogateescape")
        if 0 < len(key) <= self.MAX_LEN:
            if len(self.texts) >= self.MAX_KEYS:
                self.texts.clear()
            self.texts[key] = text
        return text


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
    if stage.startswith("encoder"):
        rule = "an encoder must return bytes (or str, written as UTF-8) or None"
    else:
        rule = "it must return bytes (or str, written as UTF-8)"
    raise TypeError("%s returned %s %s; %s"
                    % (stage, type(data).__name__, _describe(data), rule))


# Stage kinds, with the values of the engine's topology.StageKind (the host
# checks they agree when it loads this module).
COMPUTATION = 1
STATE = 2
KEY_BY = 3
_STAGE_KINDS = {COMPUTATION: "computation", STATE: "state", KEY_BY: "key_by"}

# Segment kinds, with the values of the engine's topology.SegmentKind.
SEG_SOURCE = 1
SEG_SPREAD = 2
SEG_KEYED = 3
SEG_SINGLE = 4
_SEGMENT_KINDS = {SEG_SOURCE: "source", SEG_SPREAD: "spread",
                  SEG_KEYED: "keyed", SEG_SINGLE: "single-partition"}

# The partition of an envelope bound for a spread segment: any worker may
# run it.
ANY_PARTITION = -1

# The pickle protocol of envelopes and exported state: the newest both ends
# of a link can read (links refuse a peer of another Python major
# version; Python 3.8 and later all read protocol 5).
_PROTO = 2 if _PY2 else min(pickle.HIGHEST_PROTOCOL, 5)

# The array type code of a signed 64-bit integer (ingest times travel
# packed, not pickled one by one): 'q' on Python 3, 'l' on a 64-bit
# Python 2.
_TS_CODE = "q" if "q" in getattr(__import__("array"), "typecodes", "") else "l"
_TS_SIZE = 8
if array(_TS_CODE).itemsize != _TS_SIZE:
    raise ImportError("wallaroo._runner needs a 64-bit array type for "
                      "ingest times (array %r is %d bytes here)"
                      % (_TS_CODE, array(_TS_CODE).itemsize))


def _pack_ts(values):
    """Ingest times packed as 64-bit integers: one when they are all the
    same (the records of one source batch share it), none for none."""
    if values and values.count(values[0]) == len(values):
        values = values[:1]
    a = array(_TS_CODE, values)
    return a.tostring() if _PY2 else a.tobytes()


def _unpack_ts(data, n):
    """The ingest times of n records from _pack_ts: an array of n, or of
    one that all n share, or empty when the sender carried none (its
    metrics were off)."""
    a = array(_TS_CODE)
    if _PY2:
        a.fromstring(data)
    else:
        a.frombytes(data)
    if len(a) != n and not (n and len(a) <= 1):
        raise ValueError("envelope batch is corrupt: %d ingest times for %d "
                         "records" % (len(a), n))
    return a


def _mean_ts(tss):
    """The mean of the ingest times that are known (not 0)."""
    if 0 in tss:
        tss = [t for t in tss if t]
    return sum(tss) // len(tss) if tss else 0


# Envelope batch formats (first byte of what take_envelopes returns).
_FMT_PICKLE = b"P"  # the records, values included, in one pickle
_FMT_HOOKS = b"H"   # one pickle of the records, each value serialised alone
# Partition state whose objects are all of one plain class (see
# _plain_class): one pickle of (class, [(key, the object's __dict__)]),
# which is what pickle itself would store for each object, made and read
# two to three times faster.
_FMT_PLAIN = b"D"

_plain_cache = {}


class _no_gc(object):
    """Holds the cyclic garbage collector off inside the block: moving a
    partition's state makes many containers at once, which would set off
    collections that walk every state object of the worker (more than
    half the time of an import). They run again after."""

    def __enter__(self):
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            gc.enable()
        return False


# Python 3.11 and later keep a plain object's attributes inline, without a
# dict, until something asks for its __dict__ (pickle does); from then on
# every attribute access goes through a dict and costs about twice as
# much. So state rebuilt from its attributes (a restore, a migration) is
# made with setattr, which keeps them inline.
_INLINE_ATTRS = sys.version_info >= (3, 11)


def _rebuild(cls, d):
    """A new object of the plain class cls with the attributes of d (what
    pickle would make, with the attributes kept inline)."""
    st = cls.__new__(cls)
    if _INLINE_ATTRS:
        sa = object.__setattr__
        for k, v in d.items():
            sa(st, k, v)
    else:
        st.__dict__.update(d)
    return st


def _encode_keys(keys):
    """The UTF-8 bytes of each key; surrogates (from keys made of bytes
    that are not UTF-8) as surrogateescape gives them."""
    try:
        return list(map(str.encode, keys))
    except UnicodeEncodeError:
        return [k.encode("utf-8", "surrogateescape") for k in keys]


def _names_readable(cls, names):
    """Whether getattr reads exactly the instance attributes names of an
    object of cls, with its attributes inline: CPython 3.11 or later, no
    __getattr__ or custom __getattribute__ on the class, and every name
    an identifier (attrgetter reads "a.b" as a path) that is not also an
    attribute of the class (getattr would find the class's when the
    object lacks it)."""
    if not _INLINE_ATTRS or cls.__getattribute__ is not object.__getattribute__ \
            or hasattr(cls, "__getattr__"):
        return False
    for k in names:
        if type(k) is not str or not k.isidentifier() or hasattr(cls, k):
            return False
    return True


def _record_state(fmt, data, cls, names, key, step_id):
    """The state object of one checkpoint record of a plain or pickled
    state (format M, T, D or P; see _plain_records); ValueError if the
    record is not one that checkpoint_take makes."""
    try:
        if fmt in (b"M", b"T") and names:
            v = marshal.loads(data) if fmt == b"M" else pickle.loads(data)
            if len(names) == 1:
                v = (v,)
            elif type(v) is not tuple or len(v) != len(names):
                raise ValueError("%d attribute values where %d are named"
                                 % (len(v) if type(v) is tuple else -1, len(names)))
            return _rebuild(cls, dict(zip(names, v)))
        if fmt == b"D" and cls is not None:
            d = pickle.loads(data)
            if type(d) is not dict:
                raise ValueError("holds %s, not the attributes" % type(d).__name__)
            return _rebuild(cls, d)
        if fmt == b"P":
            return pickle.loads(data)
        raise ValueError("format %r" % (fmt,))
    except Exception as e:
        raise ValueError("the checkpoint's state of key %r of step %s is corrupt "
                         "(%s: %s)" % (key, step_id, type(e).__name__, e))


def _consume(it):
    """Run an iterator to its end (at C speed), dropping what it gives."""
    deque(it, maxlen=0)


def _restore_inline(cls, names, kb, sb, klens, slens):
    """The keys, the state objects and the keys' bytes of one step of a
    checkpoint whose records are all M records (the usual case; see
    _plain_records), made without a Python-level loop per key: each attribute is set on every
    object in turn (object.__setattr__, so the objects keep their
    attributes inline as pickle's __dict__ update would not). None if any
    record is not an M record. Python 3 only."""
    m = len(klens)
    if m == 0:
        return [], [], []
    kends = list(accumulate(klens))
    send = list(accumulate(slens))
    sstart = [0] + send[:-1]
    if not all(map(operator.eq, map(sb.__getitem__, sstart), repeat(ord("M"), m))):
        return None
    recs = map(sb.__getitem__, map(slice, map(operator.add, sstart, repeat(1, m)), send))
    vals = list(map(marshal.loads, recs))
    kbs = list(map(kb.__getitem__, map(slice, [0] + kends[:-1], kends)))
    try:
        keys = list(map(bytes.decode, kbs))
    except UnicodeDecodeError:
        keys = [k.decode("utf-8", "surrogateescape") for k in kbs]
    objs = list(map(cls.__new__, repeat(cls, m)))
    setattr_ = object.__setattr__ if _INLINE_ATTRS else setattr
    if len(names) == 1:
        _consume(map(setattr_, objs, repeat(names[0], m), vals))
    else:
        if not all(map(operator.eq, map(len, vals), repeat(len(names), m))):
            raise ValueError("the checkpoint's state of class %s is corrupt "
                             "(records of %s attributes where %d are named)"
                             % (cls.__name__, sorted(set(map(len, vals))), len(names)))
        for i, name in enumerate(names):
            _consume(map(setattr_, objs, repeat(name, m), map(operator.itemgetter(i), vals)))
    return keys, objs, kbs


def _plain_records(cls, names, sts):
    """The checkpoint records of sts, objects of a step's states, where
    cls is the step's plain class and names its T record names (or ()).

    An object of cls whose attributes are exactly names, kept inline
    (CPython 3.11 and later), is recorded by its attributes' values (a
    tuple, or the value alone for one name), read with getattr, which
    leaves them inline; asking for __dict__ would make the object keep a
    dict from then on and its attribute updates 2 to 3 times slower. The
    values are marshalled where marshal can (an M record: plain ints,
    floats, strings, bytes and containers of them; three times faster
    than pickle), else pickled (a T record). An object with other
    attributes, or a dict already, is a D record (its pickled __dict__),
    an object of another class a P record (pickled whole).

    An object's attributes are exactly names when getattr finds every
    name (none is a class attribute, see _ckpt_names) and the garbage
    collector sees as many values: its referents are its inline values
    and then its class (an object with a dict shows the dict and the
    class). When every object passes, which is the usual case, the
    checks and the records are made for all of them at once."""
    if names and len(sts) > 1:
        out = _inline_records(cls, names, sts)
        if out is not None:
            return out
    dumps = pickle.dumps
    out = []
    append = out.append
    if not names:
        for st in sts:
            if type(st) is cls:
                append(b"D" + dumps(st.__dict__, _PROTO))
            else:
                append(b"P" + dumps(st, _PROTO))
        return out
    getter = operator.attrgetter(*names)
    referents = gc.get_referents
    n = len(names) + 1
    for st in sts:
        if type(st) is not cls:
            append(b"P" + dumps(st, _PROTO))
            continue
        r = referents(st)
        if len(r) == n and r[-1] is cls:
            try:
                v = getter(st)
            except AttributeError:
                pass
            else:
                # With one name, [dict, cls] may be a dict kept by the
                # object rather than its value.
                if n != 2 or r[0] is v:
                    append(b"T" + dumps(v, _PROTO))
                    continue
        append(b"D" + dumps(st.__dict__, _PROTO))
    return out


def _inline_records(cls, names, sts):
    """_plain_records for sts all at once, or None if any of them is not
    an object of cls with exactly the attributes names kept inline (the
    caller then looks at each). No Python-level loop per object: the
    referents of all of them come in one list, each object's ending with
    cls; the checks compare every (n+1)-th entry with cls by identity."""
    m = len(sts)
    n = len(names)
    is_ = operator.is_
    if not all(map(is_, map(type, sts), repeat(cls, m))):
        return None
    r = gc.get_referents(*sts)
    if len(r) != m * (n + 1) or not all(map(is_, r[n::n + 1], repeat(cls, m))):
        return None
    # No value is the class itself (else lengths that differ could
    # still put cls at every (n+1)-th place).
    for i in range(n):
        if any(map(is_, r[i::n + 1], repeat(cls, m))):
            return None
    try:
        vals = list(map(operator.attrgetter(*names), sts))
    except AttributeError:
        return None
    # With one name, [dict, cls] may be a dict kept by the object rather
    # than its value.
    if n == 1 and not all(map(is_, vals, r[0::2])):
        return None
    # marshal only where it gives back what it was given: values of the
    # exact scalar types (it writes anything with a buffer, a bytearray
    # or an array, as bytes, and takes containers of anything).
    flat = vals if n == 1 else chain.from_iterable(vals)
    if set(map(type, flat)) <= _MARSHAL_SAFE:
        return list(map(b"M".__add__, map(marshal.dumps, vals)))
    dumps = pickle.dumps
    return [b"T" + dumps(v, _PROTO) for v in vals]


# The types whose values marshal writes and reads back as they were.
_MARSHAL_SAFE = frozenset([int, float, complex, str, bytes, bool, type(None)])


def _plain_class(cls):
    """Whether pickle would store an object of cls as a plain copy of its
    __dict__ and rebuild it with cls.__new__(cls) and __dict__.update:
    no slots, no custom reduce, getstate, setstate or __new__."""
    plain = _plain_cache.get(cls)
    if plain is None:
        getstate = getattr(object, "__getstate__", None)
        plain = (isinstance(cls, type)
                 and getattr(cls, "__slots__", None) is None
                 and cls.__reduce_ex__ is object.__reduce_ex__
                 and cls.__reduce__ is object.__reduce__
                 and getattr(cls, "__getstate__", None) is getstate
                 and not hasattr(cls, "__setstate__")
                 and cls.__new__ is object.__new__)
        _plain_cache[cls] = plain
    return plain


class Stage(object):
    """One stage of a path, as the host describes it."""

    __slots__ = ("kind", "component", "name", "step_id", "multi", "keyed")

    def __init__(self, kind, component, name, step_id, multi, keyed):
        if kind not in _STAGE_KINDS:
            raise ValueError("unknown stage kind %r (expected one of %s)"
                             % (kind, sorted(_STAGE_KINDS)))
        self.kind = kind
        self.component = component
        self.name = name
        self.step_id = step_id
        self.multi = bool(multi)
        self.keyed = bool(keyed)

    def describe(self):
        return "%s %r" % (_STAGE_KINDS[self.kind], self.name)


class Segment(object):
    """A run of a path's stages that runs in one place: from stage index
    ``start`` to the next segment's start."""

    __slots__ = ("kind", "start")

    def __init__(self, kind, start):
        if kind not in _SEGMENT_KINDS:
            raise ValueError("unknown segment kind %r (expected one of %s)"
                             % (kind, sorted(_SEGMENT_KINDS)))
        self.kind = kind
        self.start = int(start)


def _single_segment(stages):
    """The segments of a path whose host gave none: the source segment,
    then a cut before each state stage (tests use this)."""
    segs = [Segment(SEG_SOURCE, 0)]
    for i, st in enumerate(stages):
        if st.kind == STATE:
            segs.append(Segment(SEG_KEYED if st.keyed else SEG_SINGLE, i))
    return segs


class Runner(object):
    """State and ownership shared by the paths of one application in this
    interpreter. Driven by one thread (the host's executor)."""

    def __init__(self, partitions, hooks=None):
        self.partitions = partitions
        # owner[p]: 0 for this interpreter, else the destination number
        # the engine routes envelopes to.
        self.owner = [0] * partitions
        self.epoch = 0
        # Destinations a spread segment's messages are dealt to at random
        # (0 = here); [0] (or empty) keeps them all here.
        self.spread = [0]
        # The deal: _SPREAD_SLOTS destinations, one drawn per message
        # (set_spread_slots weighs them; evenly over spread by default);
        # and the slot lists of the compiled spread boundaries, filled in
        # place when the deal changes.
        self.spread_slots = None
        self._spread_lists = []
        self.all_local = True
        # (serialize, deserialize) for values that leave this interpreter;
        # a single worker never needs them (as in 0.6).
        self.serialize, self.deserialize = hooks or serialization_hooks(None)
        self._pickled = self.serialize is _stock_serialize()
        # step id -> {key: state}, and step id -> {partition: set(keys)}
        self.states = {}
        # step id -> {key: (class, __dict__)}: state that arrived from
        # another worker in the plain format and is made into its object
        # on the key's first message here (creator), so that a migration
        # costs the new owner little while it also runs its traffic. Its
        # keys are in the index, not in the state table.
        self.pending = {}
        self.index = {}
        # Checkpoints (set_tracking): while track is on, every state object
        # the loops hand to a state computation is also in hot[step id]
        # (key -> the same object as in the state table) until the next
        # checkpoint, which exports only those. The loops look a key up
        # there first: the keys of one second are far fewer than all of
        # them, so this costs less than a record of keys beside the table
        # would (one lookup in a small dict instead of two in large
        # ones). Whatever replaces or removes a key in a state table
        # does the same here.
        self.track = False
        self.hot = {}
        self.ckpt_class = {}  # step id -> the class of its D and T records
        self.key_texts = _KeyTexts()  # bytes keys' texts (Python 3)
        self.ckpt_names = {}  # step id -> the attribute names of its T records
        self.initial_states = {}  # step id -> its state class (creator)
        # --on-error skip (set_dead_letter): the loops catch an exception
        # of user code per message, append the message and the traceback
        # to this file, and go on with the next message.
        self.dead_letter = None
        self.dead_count = 0
        self.paths = []
        # (hook, path index, repr of the value) when the module's
        # serialize or deserialize hook failed in the last take_envelopes
        # or resume.
        self.failed_hook = None
        # Why the last resume refused its batch (not a batch of this
        # application: nothing of it ran), or None.
        self.bad_batch = None
        # (destination, path, segment) -> the flat list [key, value, ts,
        # key, value, ts, ...] of the envelope records made since
        # take_envelopes. The lists live as long as the runner: compiled
        # loops hold their append methods, take_envelopes empties them in
        # place.
        self.outbox = {}
        # Metrics (set_metrics): while sample_every > 0 the loops time every
        # computation (and the decoder) for one source message or envelope
        # record of each run of up to _STRATUM in a call (every one with
        # sample_every 1), appending (path << 8 | stage, ns) pairs to
        # timings, each run's after a (-1, weight) pair: each timing
        # stands for weight messages. handed counts records handed to
        # other destinations, per path; raw_frames the frames framed by
        # frame_raw, per path.
        self.sample_every = 0
        # Draws the timed message of each run: a float in [0, 1), as
        # random() (tests may pin it before set_metrics compiles the
        # loops).
        self.pick = random.Random().random
        self.timings = array(_TS_CODE)
        self.handed = {}
        self.raw_frames = {}

    # -- metrics ---------------------------------------------------------

    def set_metrics(self, sample_every):
        """Turn stage timing on (sample_every > 1: one message of each run
        of up to _STRATUM in a call, at random, stands for the run; 1:
        every message) or off (0), compiling every path's loops again."""
        sample_every = int(sample_every)
        if sample_every < 0:
            raise ValueError("sample_every must be >= 0, got %d" % sample_every)
        if sample_every == self.sample_every:
            return
        was = self._width()
        self.sample_every = sample_every
        self._rewidth(was, self._width())
        del self.timings[:]
        self.handed.clear()
        self.raw_frames.clear()
        for path in self.paths:
            path.compile()

    def _width(self):
        """Items per record in the outbox: key, value and, while metrics
        are on (the loops carry ingest times), ingest time."""
        return 3 if self.sample_every else 2

    def _rewidth(self, was, now):
        """Records waiting in the outbox, made with was items each, with
        now items each (an ingest time added as 0, unknown, or dropped)."""
        if was == now:
            return
        for box in self.outbox.values():
            if not box:
                continue
            ks, vs = box[0::was], box[1::was]
            if now == 3:
                box[:] = [x for k, v in zip(ks, vs) for x in (k, v, 0)]
            else:
                box[:] = [x for k, v in zip(ks, vs) for x in (k, v)]

    def set_tracking(self, on):
        """Turn change tracking for incremental checkpoints on or off,
        compiling every path's loops again."""
        on = bool(on)
        if on == self.track:
            return
        self.track = on
        for d in self.hot.values():
            d.clear()
        for path in self.paths:
            path.compile()

    def set_dead_letter(self, path):
        """Skip messages whose user code raises, writing each to the file
        at path (None: stop at the first, as 0.6), compiling every path's
        loops again."""
        self.dead_letter = path or None
        for p in self.paths:
            p.compile()

    def skip_message(self, stage, message):
        """Record one skipped message (inside the except clause of the
        compiled loop): one JSON line with the time, the stage, the
        message's repr and the traceback. Never raises: a record that
        cannot be written is reported on stderr and the loop goes on."""
        self.dead_count += 1
        try:
            import json
            import traceback
            tb = traceback.format_exc()
            desc = _describe(message)
            if _PY2:  # bytes of any encoding: keep them readable, never fail
                tb = tb.decode("utf-8", "replace") if isinstance(tb, str) else tb
                desc = desc.decode("utf-8", "replace") if isinstance(desc, str) else desc
            line = json.dumps({"time": time.time(), "stage": stage,
                               "message": desc, "traceback": tb})
            # (Created 0600, as the checkpoint files: it holds message
            # contents.)
            fd = os.open(self.dead_letter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.fchmod(fd, 0o600)  # (one made by an earlier version too)
            except (AttributeError, OSError):
                pass
            with os.fdopen(fd, "a") as f:
                f.write(line + "\n")
            last = tb.strip().splitlines()[-1] if tb.strip() else "?"
        except Exception as e:
            last = "(not written: %s: %s)" % (type(e).__name__, e)
        try:
            if self.dead_count <= 10 or self.dead_count % 1000 == 0:
                sys.stderr.write("wallaroo: skipped a message that failed in %s (%d so far; "
                                 "see %s): %s\n" % (stage, self.dead_count, self.dead_letter, last))
        except Exception:
            pass

    def hot_table(self, step_id):
        """The states handed to state computations of step_id since the
        last checkpoint (see track)."""
        d = self.hot.get(step_id)
        if d is None:
            d = self.hot[step_id] = {}
        return d

    def checkpoint_take(self, full):
        """This interpreter's part of a checkpoint: for every state step,
        the states of the keys changed since the last checkpoint (every
        key if full), and every generator's next value. Returns
        (steps, gens): steps a list of (step id, keys, states, lengths,
        class), where keys and states are the keys' bytes and the
        states' serialised bytes run together, lengths packs (as
        unsigned 32-bit integers, native order) the length of each key,
        then of each state, and class is the pickled class of the step's
        plain state objects, or of (class, T record names) (b"" if none);
        gens a list of (path index, pickled next value). Each state is
        one format byte and its data: M or T, the marshalled or pickled
        values of the attributes of an object of the step's plain class,
        or D, its pickled __dict__ (all faster than pickling the object;
        see _plain_records); P, a pickle of the object; S, the module's
        serialize. Empties the hot tables (see track)."""
        steps = []
        taken = []
        with _no_gc():
            for step_id in sorted(self.states):
                table = self.states[step_id]
                pend = self.pending.get(step_id)
                hot = self.hot_table(step_id)
                taken.append(hot)
                # (No Python loop per key where it can be helped: the
                # keys are scattered in memory and every pass over them
                # costs its cache misses.)
                if full:
                    keys = list(table)
                    if pend:
                        keys.extend(pend)
                        self._materialize(step_id, keys)
                    sts = list(map(table.get, keys))
                    if not all(map(operator.is_not, sts, repeat(None, len(sts)))):
                        keys = [k for k in keys if k in table]
                        sts = [table[k] for k in keys]
                else:
                    keys = list(hot)
                    sts = list(hot.values())
                meta = b""
                if self._pickled:
                    dumps = pickle.dumps
                    # One class per step for all of its checkpoints (a
                    # restore reads the D and T records of every link
                    # with the newest link's class): the first plain one
                    # seen.
                    cls = self.ckpt_class.get(step_id)
                    if cls is None and sts and _plain_class(type(sts[0])) and hasattr(sts[0], "__dict__"):
                        cls = self.ckpt_class[step_id] = type(sts[0])
                    if cls is not None and sts:
                        names = self._ckpt_names(step_id, cls, sts)
                        meta = dumps((cls, names) if names else cls, _PROTO)
                        # (The names stay in the meta for as long as this
                        # process writes the chain; they are read from
                        # the objects only while the class allows it.)
                        sts = _plain_records(cls, names if _names_readable(cls, names) else (), sts)
                    else:
                        sts = [b"P" + dumps(st, _PROTO) for st in sts]
                else:
                    ser = self.serialize
                    sts = [b"S" + _as_output(ser(st), "the module's serialize hook") for st in sts]
                kbs = keys if _PY2 else _encode_keys(keys)
                lens = array("I", map(len, kbs))
                lens.extend(map(len, sts))
                steps.append((step_id, b"".join(kbs), b"".join(sts),
                              lens.tostring() if _PY2 else lens.tobytes(), meta))
        # Only now, all of it made: a failure above leaves the hot tables
        # whole (and the engine writes every key next time).
        # (clear gives the dict's table back, so the next second's keys
        # go into a small one.)
        for hot in taken:
            hot.clear()
        gens = []
        for p in self.paths:
            if p.generator is not None:
                gens.append((p.index, pickle.dumps(p.gen_value, _PROTO)))
        return steps, gens

    def _ckpt_names(self, step_id, cls, sts):
        """The attribute names of step_id's M and T records (see
        _plain_records), chosen once per process, or () where they do not
        apply: before CPython 3.11, or a class that could answer a
        missing attribute (a class attribute of the same name,
        __getattr__, a custom __getattribute__), which would make getattr
        lie.

        They are read from a fresh object of the step's state class (its
        constructor called once more, as for a new key) rather than from
        a state in use: reading an object's __dict__ makes it keep a dict
        from then on, which makes its attribute updates slower and its
        records D records, and putting a copy in its place would leave a
        reference the application holds to the original behind. Only
        when a fresh object's attributes are not those of the states
        (sts; a class that sets some attributes later than its
        constructor, or one whose constructor fails now) are they read
        from the first state of cls among sts, which is left in place."""
        names = self.ckpt_names.get(step_id)
        if names is not None:
            return names
        names = ()
        if _names_readable(cls, ()):
            make = self.initial_states.get(step_id)
            fresh = None
            if make is not None:
                try:
                    fresh = make()
                except Exception:
                    pass  # it worked for every key so far; no names from it
            if type(fresh) is cls:
                d = fresh.__dict__
                if d and _names_readable(cls, tuple(d)):
                    names = tuple(d)
            first = next((st for st in sts if type(st) is cls), None)
            if first is not None and (not names or _inline_records(cls, names, [first]) is None):
                d = first.__dict__
                names = tuple(d) if d and _names_readable(cls, tuple(d)) else ()
        self.ckpt_names[step_id] = names
        return names

    def checkpoint_restore(self, steps, gens):
        """Return to a checkpoint: every state step's keys are replaced
        by those of steps (the format checkpoint_take makes, with every
        key), and each generator listed in gens goes back to its value.
        Says how many entries (keys and generator positions) it read."""
        n = 0
        with _no_gc():
            for step_id in self.states:
                self.states[step_id].clear()
                self.index[step_id].clear()
                self.pending[step_id].clear()
                self.hot_table(step_id).clear()
            for step_id, kb, sb, lb, meta in steps:
                table = self.states.get(step_id)
                if table is None:
                    raise ValueError("the checkpoint holds state of step %s, which "
                                     "this application does not have (state steps: %s); "
                                     "was it made by another version of the application?"
                                     % (step_id, ", ".join(sorted(self.states)) or "none"))
                index = self.index[step_id]
                lens = array("I")
                if _PY2:
                    lens.fromstring(lb)
                else:
                    lens.frombytes(lb)
                count = len(lens) // 2
                if len(lens) != 2 * count or sum(lens) != len(kb) + len(sb):
                    raise ValueError("the checkpoint's state of step %s is corrupt "
                                     "(lengths do not match the data)" % (step_id,))
                de = self.deserialize
                try:
                    cls = pickle.loads(meta) if meta else None
                    names = None
                    if type(cls) is tuple:
                        cls, names = cls
                        if type(names) is not tuple:
                            raise ValueError("attribute names %r" % (names,))
                except Exception as e:
                    raise ValueError("the checkpoint's class of the state of step %s cannot be "
                                     "read (%s: %s); was it made by another version of the "
                                     "application?" % (step_id, type(e).__name__, e))
                if cls is not None:
                    self.ckpt_class[step_id] = cls
                    # Later links of this process's chains use the same
                    # names (a chain's newest meta is read for all).
                    self.ckpt_names[step_id] = names or ()
                if names and not _PY2:
                    try:
                        got = _restore_inline(cls, names, kb, sb, lens[:count], lens[count:])
                    except Exception as e:
                        raise ValueError("the checkpoint's state of step %s is corrupt (%s: %s)"
                                         % (step_id, type(e).__name__, e))
                    if got is not None:
                        keys, objs, kbs = got
                        table.update(zip(keys, objs))
                        parts = self.partitions
                        for k, p in zip(keys, map(parts.__rmod__, map(zlib.crc32, kbs))):
                            ks = index.get(p)
                            if ks is None:
                                ks = index[p] = set()
                            ks.add(k)
                        n += count
                        continue
                partition_of = self.partition_of
                kpos = spos = 0
                for i in range(count):
                    kl, sl = lens[i], lens[count + i]
                    k = kb[kpos:kpos + kl]
                    kpos += kl
                    if not _PY2:
                        k = k.decode("utf-8", "surrogateescape")
                    fmt = sb[spos:spos + 1]
                    data = sb[spos + 1:spos + sl]
                    spos += sl
                    if fmt == b"S":
                        st = de(data)
                    else:
                        st = _record_state(fmt, data, cls, names, k, step_id)
                    table[k] = st
                    p = partition_of(k)
                    keys = index.get(p)
                    if keys is None:
                        keys = index[p] = set()
                    keys.add(k)
                n += count
        for pi, data in gens:
            path = self.paths[pi]
            if path.generator is None:
                raise ValueError("the checkpoint holds a generator position for "
                                 "source %r, which has no generator" % (path.source_name,))
            path.gen_value = pickle.loads(data)
            n += 1
        return n

    def take_metrics(self):
        """(timings, handed, raw_frames) since the last call: timings as
        packed 64-bit integers, pairs of (path << 8 | stage, nanoseconds)
        (stage 0 is the decoder, n the n-th stage), each run's after a
        (-1, weight) pair (each timing stands for weight messages);
        handed and raw_frames as flat lists [path, count, ...]."""
        t = self.timings
        data = t.tostring() if _PY2 else t.tobytes()
        del t[:]
        handed = []
        for pi, n in self.handed.items():
            handed.extend((pi, n))
        self.handed.clear()
        raw = []
        for pi, n in self.raw_frames.items():
            raw.extend((pi, n))
        self.raw_frames.clear()
        return data, handed, raw

    # -- ownership -----------------------------------------------------

    def set_ownership(self, owner, epoch, spread=None):
        """Install a new ownership table (a list of destination numbers,
        one per partition, 0 = here) and the spread destinations, and
        compile every path's loops for it."""
        owner = [int(o) for o in owner]
        if len(owner) != self.partitions:
            raise ValueError("ownership table has %d entries for %d partitions"
                             % (len(owner), self.partitions))
        spread = [int(d) for d in (spread or [0])]
        self.owner = owner
        self.epoch = int(epoch)
        self.spread = spread
        self.all_local = not any(owner) and not any(spread)
        if self.spread_slots is not None and \
                not set(self.spread_slots) <= set(spread):
            self.spread_slots = None  # a destination left: deal evenly
        self._spread_lists = []
        for path in self.paths:
            path.compile()

    def set_spread_slots(self, slots):
        """Weigh the dealing of spread segments: slots lists
        _SPREAD_SLOTS destinations (repeated in proportion to their
        weights, 0 = here), one of which each message draws at random.
        Destinations that are not spread destinations are refused."""
        slots = [int(d) for d in slots]
        if len(slots) != _SPREAD_SLOTS:
            raise ValueError("spread deal has %d slots, not %d"
                             % (len(slots), _SPREAD_SLOTS))
        unknown = set(slots) - set(self.spread)
        if unknown:
            raise ValueError("spread deal names destinations %s, which are "
                             "not spread destinations (%s)"
                             % (sorted(unknown), self.spread))
        self.spread_slots = slots
        for lst, pi, seg in self._spread_lists:
            lst[:] = self._deal(slots, pi, seg)

    def _deal(self, slots, pi, seg):
        """The slot list of a spread boundary: an outbox append per slot
        (None for here)."""
        return [self.appender(d, pi, seg) if d else None for d in slots]

    def spread_list(self, pi, seg):
        """The slot list a compiled spread boundary draws from; the
        runner refills it when the deal changes."""
        slots = self.spread_slots
        if slots is None:
            n = len(self.spread)
            slots = [self.spread[i * n // _SPREAD_SLOTS]
                     for i in range(_SPREAD_SLOTS)]
        lst = self._deal(slots, pi, seg)
        self._spread_lists.append((lst, pi, seg))
        return lst

    def partition_of(self, key):
        """The partition of a key (a native str, see _as_key), as the
        engine's routing package computes it from the key's bytes."""
        return (zlib.crc32(_key_bytes(key)) & 0xffffffff) % self.partitions

    def appender(self, dest, path_index, seg):
        """The append method of the outbox list of (dest, path, segment)."""
        box = self.outbox.get((dest, path_index, seg))
        if box is None:
            box = self.outbox[(dest, path_index, seg)] = []
        return box.append

    def router(self, path_index, seg):
        """(cache, route) for a keyed boundary: cache maps a key to the
        append method of its destination's outbox list, or None when its
        partition is here; route(key) computes that for a key not in the
        cache yet and files it (the hot path is one dict lookup, instead
        of encoding and hashing the key every time). The cache is emptied
        when it grows past _ROUTE_CACHE_MAX keys, and made anew with the
        loops when the ownership changes."""
        cache = {}
        owner = self.owner
        partition_of = self.partition_of
        appends = {}

        def route(key):
            d = owner[partition_of(key)]
            if d:
                a = appends.get(d)
                if a is None:
                    a = appends[d] = self.appender(d, path_index, seg)
            else:
                a = None
            if len(cache) >= _ROUTE_CACHE_MAX:
                cache.clear()
            cache[key] = a
            return a
        return cache, route

    # -- state -----------------------------------------------------------

    def state_table(self, step_id):
        table = self.states.get(step_id)
        if table is None:
            table = {}
            self.states[step_id] = table
            self.index[step_id] = {}
            self.pending[step_id] = {}
        return table

    def _materialize(self, step_id, keys):
        """Make the pending state of keys (those that have some) into
        objects in the state table."""
        pend = self.pending.get(step_id)
        if not pend:
            return
        table = self.states[step_id]
        for k in keys:
            pd = pend.pop(k, None)
            if pd is not None:
                table[k] = _rebuild(*pd)

    def creator(self, step_id, initial_state):
        """A function key -> new state object that also files the key
        under its partition (called once per key, off the hot path)."""
        table = self.state_table(step_id)
        index = self.index[step_id]
        pend = self.pending[step_id]
        partition_of = self.partition_of
        self.initial_states[step_id] = initial_state

        def create(key):
            if pend:
                pd = pend.pop(key, None)
                if pd is not None:  # arrived from another worker
                    s = table[key] = _rebuild(*pd)
                    return s
            s = initial_state()
            table[key] = s
            p = partition_of(key)
            keys = index.get(p)
            if keys is None:
                keys = index[p] = set()
            keys.add(key)
            return s
        return create

    def export_partition(self, step_id, partition):
        """The state objects of one partition of a state step, as bytes
        (the module's serialize per state object, or one pickle)."""
        table = self.states.get(step_id, {})
        keys = list(self.index.get(step_id, {}).get(partition, ()))
        self._materialize(step_id, keys)
        if self._pickled:
            states = [table[k] for k in keys]
            cls = type(states[0]) if states else None
            if cls is not None and _plain_class(cls) and \
                    all(type(st) is cls and hasattr(st, "__dict__") for st in states):
                return _FMT_PLAIN + pickle.dumps(
                    (cls, [(k, st.__dict__) for k, st in zip(keys, states)]),
                    _PROTO)
            return _FMT_PICKLE + pickle.dumps(list(zip(keys, states)), _PROTO)
        ser = self.serialize
        return _FMT_HOOKS + pickle.dumps(
            [(k, _as_output(ser(table[k]), "the module's serialize hook")) for k in keys], _PROTO)

    def import_partition(self, step_id, partition, data):
        """Add the state objects exported by export_partition; a key
        already here is replaced. Refuses keys of another partition, and
        a step this application does not have here."""
        table = self.states.get(step_id)
        if table is None:
            raise ValueError("no state step %s here (state steps: %s)"
                             % (step_id, ", ".join(sorted(self.states)) or "none"))
        index = self.index[step_id]
        if data[:1] == _FMT_PLAIN:
            return self._import_plain(table, index, step_id, partition, data)
        fmt, records = _load(data, "partition %d of step %s"
                             % (partition, step_id))
        if fmt == _FMT_HOOKS:
            de = self.deserialize
            records = [(k, de(v)) for k, v in records]
        keys = index.setdefault(partition, set())
        hot = self.hot.get(step_id) or {}
        for k, s in records:
            k = _as_key(k, "imported state")
            if self.partition_of(k) != partition:
                raise ValueError("key %r of step %s belongs to partition %d, "
                                 "not %d" % (k, step_id, self.partition_of(k),
                                             partition))
            table[k] = s
            hot.pop(k, None)
            keys.add(k)
        pend = self.pending.get(step_id)
        if pend:
            for k, _ in records:
                pend.pop(_as_key(k, "imported state"), None)
        return len(records)

    def export_partitions(self, step_id, partitions, budget_ns):
        """Export and drop partitions of a state step from the front of the
        list, one after the other, until budget_ns of time has gone (at
        least one): their bytes, in order. The engine calls it again for
        the rest, so the processor's own calls run in between. A
        partition is dropped only once exported: if one cannot be (the
        module's serialize raises), those before it are returned and the
        next call raises on it, with its state still here."""
        out = []
        t0 = _clock_ns()
        with _no_gc():
            for p in partitions:
                try:
                    data = self.export_partition(step_id, p)
                except Exception:
                    if out:
                        break
                    raise
                out.append(data)
                self.drop_partition(step_id, p)
                if _clock_ns() - t0 >= budget_ns:
                    break
        return out

    def import_partitions(self, step_ids, partitions, datas, budget_ns):
        """import_partition for each (step, partition, bytes) in turn, until
        budget_ns of time has gone (at least one): how many were done."""
        t0 = _clock_ns()
        n = 0
        with _no_gc():
            for step_id, p, data in zip(step_ids, partitions, datas):
                self.import_partition(step_id, p, data)
                n += 1
                if _clock_ns() - t0 >= budget_ns:
                    break
        return n

    def _import_plain(self, table, index, step_id, partition, data):
        """import_partition of the _FMT_PLAIN format, in one pass: each
        object rebuilt as pickle would (cls.__new__, then its __dict__)."""
        what = "partition %d of step %s" % (partition, step_id)
        try:
            cls, pairs = pickle.loads(data[1:])
            new = cls.__new__
        except Exception as e:
            raise ValueError("%s is corrupt: %s: %s" % (what, type(e).__name__, e))
        ks = [k if type(k) is str else _as_key(k, "imported state")
              for k, _ in pairs]
        # Every key of the batch belongs to this partition; a batch of
        # another partition (a bug, or corrupt bytes) shows in any key,
        # so a few are checked rather than all of them.
        for k in ks[:4] + ks[-4:]:
            if self.partition_of(k) != partition:
                raise ValueError("key %r of step %s belongs to partition %d, "
                                 "not %d" % (k, step_id, self.partition_of(k),
                                             partition))
        if not callable(new):
            raise ValueError("%s is corrupt: %r is not a class" % (what, cls))
        # Made into objects on each key's first message (creator).
        if table:
            hot = self.hot.get(step_id) or {}
            for k in ks:
                if k in table:
                    del table[k]  # replaced by what arrived
                    hot.pop(k, None)
        self.pending[step_id].update(zip(ks, [(cls, d) for _, d in pairs]))
        index.setdefault(partition, set()).update(ks)
        return len(pairs)

    def drop_partition(self, step_id, partition):
        """Forget the state of one partition (after it moved away)."""
        table = self.states.get(step_id, {})
        pend = self.pending.get(step_id, {})
        hot = self.hot.get(step_id, {})
        for k in self.index.get(step_id, {}).pop(partition, ()):
            table.pop(k, None)
            pend.pop(k, None)
            hot.pop(k, None)

    def state_partitions(self, step_id):
        """Sorted partitions that hold state of the step here."""
        return sorted(p for p, ks in self.index.get(step_id, {}).items() if ks)

    def state_entity_pairs(self):
        """[(step id, sorted keys)] for every state step, sorted by id."""
        return sorted(self.state_entities().items())

    def state_entities(self):
        """{step id: sorted list of keys (bytes)} of every state object
        here."""
        return dict((step_id, sorted(_key_bytes(k) for k in
                                     set(table) | set(self.pending.get(step_id, ()))))
                    for step_id, table in self.states.items())

    # -- paths and envelopes -------------------------------------------

    def path(self, source_name, decoder, stages, encoders, segments=None):
        p = Path(self, len(self.paths), source_name, decoder, stages,
                 encoders, segments)
        self.paths.append(p)
        return p

    def gen_path(self, source_name, generator, stages, encoders,
                 segments=None):
        """A path fed by a GenSourceConfig generator instead of frames.
        Calls ``generator.initial_value()`` now, once."""
        p = Path(self, len(self.paths), source_name, None, stages, encoders,
                 segments)
        p.generator = generator
        p.gen_value = generator.initial_value()
        self.paths.append(p)
        return p

    def take_envelopes(self):
        """[(destination, count, bytes)] of the envelope records made
        since the last call, serialised per destination in batches of at
        most _MAX_ENVELOPES records (a batch is one unit of a link's
        replay queue and of the peer's work). A batch is a list of groups
        (path, segment, keys, values, ingest times), one per (path,
        segment): keys and values as two lists, in one pickle with the
        batch (a list of native strings packed as one bytes, see
        _columns; or values serialised alone first with the module's own
        hooks); a key that is its own value (the same object) travels as
        None, so it is not written twice. Ingest times are packed as
        64-bit integers (see _pack_ts), only while metrics are on: then
        the outbox holds (key, value, ingest time) triples, else pairs
        (_width). If the module's
        serialize hook fails, the exception propagates with failed_hook
        set."""
        self.failed_hook = None
        groups = {}
        width = self._width()
        # Later segments first: a key's records that left at a later
        # boundary in this call are older than its records that left at
        # an earlier one (those came in new; the later ones were resumed
        # from further along, as a rescale's parked work is), and the
        # groups of a batch run in order where it lands. (This holds for
        # a key that is the same at every boundary; records that share a
        # key only from a later key_by on, or that a spread boundary
        # dealt, have no order between them to keep, in 0.6 either.)
        boxes = sorted(self.outbox.items(), key=_later_segment_first)
        for (dest, pi, seg), box in boxes:
            if not box:
                continue
            step = width * _MAX_ENVELOPES
            for i in range(0, len(box), step):
                part = box[i:i + step] if len(box) > step else box
                groups.setdefault(dest, []).append(
                    (pi, seg, part[0::width], part[1::width],
                     _pack_ts(part[2::width]) if width == 3 else b""))
            if self.sample_every:
                self.handed[pi] = self.handed.get(pi, 0) + len(box) // width
            # Emptied in place: the compiled loops hold its append.
            del box[:]
        out = []
        for dest in sorted(groups):
            for gs in _chunks(groups[dest]):
                self._envelope_batches(dest, gs, out)
        return out

    def _envelope_batches(self, dest, gs, out):
        """Append to out the batches of groups gs for dest: one, or, if
        its bytes are over _MAX_BATCH_BYTES, the records cut at once into
        as many parts as its size says (a part still over is cut again;
        one record is one batch however large: the engine refuses what no
        link can carry)."""
        batch = self._envelope_batch(dest, gs)
        if len(batch[2]) <= _MAX_BATCH_BYTES or batch[1] <= 1:
            out.append(batch)
            return
        parts = min(batch[1], len(batch[2]) // _MAX_BATCH_BYTES + 1)
        size = -(-batch[1] // parts)  # records a part, rounded up
        for part in _cut_groups(gs, size):
            self._envelope_batches(dest, part, out)

    def _envelope_batch(self, dest, gs):
        """(dest, count, bytes) of groups of records for one destination.
        A group whose keys are all None travels with None for its keys
        (keys are native str or None: counting them runs no application
        code)."""
        n = sum(len(g[3]) for g in gs)
        if self._pickled:
            # A column of native strings travels packed (see _columns).
            pack = _pack_text
            cols = []
            for (pi, seg, ks, vs, ts) in gs:
                ks = None if ks.count(None) == len(ks) else (pack(ks) or ks)
                cols.append((pi, seg, ks, pack(vs) or vs, ts))
            return (dest, n, _FMT_PICKLE + pickle.dumps(cols, _PROTO))
        ser = self.serialize
        groups = []
        for (pi, seg, ks, vs, ts) in gs:
            if ks.count(None) == len(ks):
                ks = None
            svs = []
            append = svs.append
            for v in vs:
                try:
                    append(_as_output(ser(v), "the module's serialize hook"))
                except Exception:
                    self.failed_hook = ("serialize", pi, _describe(v))
                    raise
            groups.append((pi, seg, ks, svs, ts))
        return (dest, n, _FMT_HOOKS + pickle.dumps(groups, _PROTO))

    def resume(self, data, routed=False):
        """Run a batch of envelope records (bytes from take_envelopes,
        made here or on another worker) from the segment each names.
        With routed, each record is first routed by the ownership table
        installed now, as at the boundary it crossed: those of partitions
        another worker owns go to its outbox (what a rescale that was
        undone had parked).
        Returns [(path index, per-sink outputs, mean ingest time)]: one
        entry per group of records of one path and segment (the outputs as
        Path.process returns them; the mean ingest time only while metrics
        are on, else 0).

        The whole batch is read and checked before any of it runs: bytes
        that are not a batch of this application raise ValueError with
        ``self.bad_batch`` saying why, and nothing has run (but if
        unpickling it ran the application's code, which raised, that is
        UnpickleError with ``self.failed_hook`` ("unpickle", -1, None)). If user code
        raises, the exception propagates with the failing path's
        ``failed`` and ``salvage`` set, and ``self.failed_path`` is that
        path's index; if the module's deserialize hook fails,
        ``self.failed_hook`` says where."""
        self.failed_path = None
        self.failed_hook = None
        self.bad_batch = None
        try:
            fmt, groups = _load(data, "envelope batch")
            runs = self._batch_groups(groups, fmt == _FMT_PICKLE)
        except UnpickleError:
            self.failed_hook = ("unpickle", -1, None)
            raise
        except ValueError as e:
            self.bad_batch = str(e)
            raise
        de = self.deserialize if fmt == _FMT_HOOKS else None
        results = []
        timed = bool(self.sample_every)
        for pi, seg, keys, values, tss in runs:
            if de is not None:
                made = []
                append = made.append
                for v in values:
                    try:
                        append(de(v))
                    except Exception:
                        self.failed_hook = ("deserialize", pi, _describe(v))
                        raise
                values = made
            path = self.paths[pi]
            keyless = keys is None
            if timed:
                # The loops take ingest times: as sent, or 0 (unknown)
                # where the sender's metrics were off.
                mean_ts = _mean_ts(tss)
                if len(tss) != len(values):
                    tss = repeat(tss[0] if tss else 0, len(values))
                items = zip(values, tss) if keyless else zip(keys, values, tss)
            else:
                mean_ts = 0
                items = values if keyless else zip(keys, values)
            try:
                results.append((pi, path.resume(seg, items, keyless, routed),
                                mean_ts))
            except Exception:
                self.failed_path = pi
                raise
        return results

    def _batch_groups(self, groups, packed):
        """The groups of a loaded envelope batch as (path index, segment,
        keys, values, ingest times), each checked against this
        application; ValueError saying what is wrong with the first bad
        one. Packed columns (see _columns) are read where packed says the
        batch's format may hold them."""
        if type(groups) is not list:
            raise ValueError("envelope batch is corrupt: it holds %s, not a "
                             "list of groups" % _describe(groups))
        runs = []
        for g in groups:
            try:
                pi, seg, keys, values, tss = g
                # (A column is a list, or the bytes of a packed one.)
                if type(values) is bytes and packed:
                    values = _unpack_text(values)
                if type(keys) is bytes and packed:
                    keys = _unpack_text(keys)
                if type(values) is not list or \
                        (keys is not None and type(keys) is not list):
                    raise ValueError("its columns are %s and %s, not lists"
                                     % (type(keys).__name__,
                                        type(values).__name__))
                if keys is not None and len(keys) != len(values):
                    raise ValueError("%d keys for %d values"
                                     % (len(keys), len(values)))
                tss = _unpack_ts(tss, len(values))
            except (TypeError, ValueError) as e:
                raise ValueError("envelope batch is corrupt: a group is %s "
                                 "(%s)" % (_describe(g), e))
            if type(pi) is not int or not 0 <= pi < len(self.paths):
                raise ValueError("envelope batch names pipeline %s; this "
                                 "application has %d" % (_describe(pi),
                                                         len(self.paths)))
            last = len(self.paths[pi].segments) - 1
            if type(seg) is not int or not 0 < seg <= last:
                raise ValueError("envelope batch names segment %s of pipeline "
                                 "%r, which has segments 1 to %d"
                                 % (_describe(seg), self.paths[pi].source_name,
                                    last))
            runs.append((pi, seg, keys, values, tss))
        return runs


# The most keys a keyed boundary remembers the destination of.
_ROUTE_CACHE_MAX = 1 << 16

# How many slots a spread boundary deals from (the host's spreadSlots):
# the weights of a spread deal are kept to 1/64.
_SPREAD_SLOTS = 64

# The most envelope records in one batch.
_MAX_ENVELOPES = 4096

# While metrics are on, one message in each run of up to _STRATUM
# messages of a call is timed and stands for them (Path._compile): few
# enough timings that they cost little a message, enough that one slow
# message weighs at most this many in a histogram.
_STRATUM = 256

# The most bytes of one batch of envelope records (unless it is one
# record): well under what one frame between workers carries, and a
# fraction of a link's replay queue.
_MAX_BATCH_BYTES = 4 << 20


def _later_segment_first(item):
    """Sort key of an outbox entry ((dest, path, segment), records) for
    take_envelopes: later segments first (stable otherwise)."""
    return -item[0][2]


def _cut_groups(gs, size):
    """The groups gs as lists of groups of size records each (the last
    fewer), cutting groups where a part ends."""
    part, n = [], 0
    for pi, seg, ks, vs, ts in gs:
        # One packed ingest time per record is cut with them; one shared
        # by all (or none) goes with every part.
        w = _TS_SIZE if vs and len(ts) == _TS_SIZE * len(vs) else 0
        at = 0
        while at < len(vs):
            take = min(size - n, len(vs) - at)
            part.append((pi, seg, ks[at:at + take], vs[at:at + take],
                         ts[w * at:w * (at + take)] if w else ts))
            n += take
            at += take
            if n == size:
                yield part
                part, n = [], 0
    if part:
        yield part


def _chunks(groups):
    """Pack groups (each of at most _MAX_ENVELOPES records) into lists of
    at most _MAX_ENVELOPES records."""
    batch, n = [], 0
    for g in groups:
        if batch and n + len(g[3]) > _MAX_ENVELOPES:
            yield batch
            batch, n = [], 0
        batch.append(g)
        n += len(g[3])
    if batch:
        yield batch


def _hex(bs):
    return binascii.hexlify(bs).decode("ascii")


class UnpickleError(ValueError):
    """Unpickling bytes made here ran Python code (a class's
    ``__setstate__`` or ``__reduce__`` constructor) that raised: the
    application's code failed, the bytes are not known to be damaged."""


def _raised_in_python(tb):
    """Whether a traceback from pickle.loads (tb's first frame is the
    caller's) went through Python code other than pickle's own helpers
    (copyreg): then the application's code raised, not the unpickler on
    damaged bytes (which raises from C)."""
    tb = tb.tb_next if tb is not None else None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename.replace("\\", "/").rsplit("/", 1)[-1]
        if name not in ("copyreg.py", "copy_reg.py", "pickle.py"):
            return True
        tb = tb.tb_next
    return False


def _load(data, what):
    """(format, records) of bytes made by export_partition or
    take_envelopes; ValueError naming what if they are not."""
    fmt, body = data[:1], data[1:]
    if fmt not in (_FMT_PICKLE, _FMT_HOOKS, _FMT_PLAIN):
        raise ValueError("%s starts with %r, not a known format (%r, %r or %r)"
                         % (what, fmt, _FMT_PICKLE, _FMT_HOOKS, _FMT_PLAIN))
    try:
        records = pickle.loads(body)
    except Exception as e:
        if _raised_in_python(sys.exc_info()[2]):
            raise UnpickleError("%s: unpickling it ran code of the application's "
                                "classes, which raised %s: %s"
                                % (what, type(e).__name__, e))
        raise ValueError("%s is corrupt: %s: %s" % (what, type(e).__name__, e))
    if fmt == _FMT_PLAIN:
        try:
            cls, pairs = records
            new = cls.__new__
            records = []
            for k, d in pairs:
                st = new(cls)
                st.__dict__.update(d)
                records.append((k, st))
        except Exception as e:
            raise ValueError("%s is corrupt: %s: %s" % (what, type(e).__name__, e))
        return _FMT_PICKLE, records
    if not isinstance(records, list):
        raise ValueError("%s is corrupt: holds %s, not a list"
                         % (what, type(records).__name__))
    return fmt, records


_stock = []


def _stock_serialize():
    if not _stock:
        import wallaroo
        _stock.append(wallaroo.serialize)
    return _stock[0]


def _not_a_list(what, name, value):
    raise TypeError("%s %r must return a list or None, got %s"
                    % (what, name, type(value).__name__))


class Path(object):
    """The stages of one source, from its decoder to its encoders, cut
    into segments.

    ``stages`` is a list of ``Stage``; ``segments`` a list of ``Segment``
    (the engine's cut; if None, a cut before each state stage);
    ``encoders`` one encoder per sink.

    For each segment the path compiles one Python function (see
    ``_compile``) that takes each message of a batch from that segment
    through every stage to the encoders before the next message: the same
    loop a user would write by hand, with no per-stage lists and no
    dispatch on stage kinds. At a segment boundary whose owner is not
    local, the message leaves the loop as an envelope record.
    """

    def __init__(self, runner, index, source_name, decoder, stages,
                 encoders, segments=None):
        self.runner = runner
        self.index = index
        self.source_name = source_name
        self.decoder = decoder
        self.stages = list(stages)
        for st in self.stages:
            if not isinstance(st, Stage):
                raise TypeError("a path's stages must be Stage objects, got %s"
                                % type(st).__name__)
        self.segments = list(segments) if segments is not None else \
            _single_segment(self.stages)
        if not self.segments or self.segments[0].start != 0:
            raise ValueError("a path's first segment must start at stage 0")
        self.encoders = list(encoders)
        self.generator = None
        self.gen_value = None
        self._raw = {}  # connection -> bytes of an unfinished frame (frame_raw)
        self._rejected = set()  # connections frame_raw gave up on
        self.failed = None  # (stage description, message repr) after an error
        self.salvage = None  # per-sink output made before the error
        self.stage_names = ["decoder of source %r" % (source_name,)]
        if decoder is None:
            self.stage_names[0] = "generator of source %r (apply)" % (source_name,)
        self.stage_names.extend(st.describe() for st in self.stages)
        self.stage_names.extend(
            "encoder %s" % (getattr(type(e), "__name__", "encoder"),)
            for e in self.encoders)
        self.source_text = []
        self._entries = []
        self.compile()

    def compile(self):
        """(Re)build the loops for the runner's current ownership."""
        # The slot lists of this path's old loops are no longer dealt.
        r = self.runner
        r._spread_lists = [e for e in r._spread_lists if e[1] != self.index]
        self.source_text = []
        self._entries = [self._compile(i) for i in range(len(self.segments))]
        # Entries for records that came without keys (see take_envelopes).
        self._keyless = [None] + [self._compile(i, True)
                                  for i in range(1, len(self.segments))]
        # Entries that route each record first (resume's routed), made
        # when first asked: (segment, keyless) -> function.
        self._routed = {}
        self._run = self._entries[0]

    def _boundary(self, code, depth, seg_index, seg, env):
        """Code at the start of segment seg_index (inside the loop of an
        earlier segment): leave as an envelope if it does not run here.
        The names it binds in env are made once per compile (the body is
        emitted more than once while metrics are on: untimed and timed)."""
        runner = self.runner
        # Leaving: appends to the destination's outbox list (see
        # Runner._width); at a keyed boundary the key is None when it is
        # the value itself (take_envelopes).
        ts = "; _o(_ts)" if runner.sample_every else ""
        leave = "_o(k); _o(v)%s; continue" % ts
        if seg.kind == SEG_SPREAD:
            if not any(runner.spread):
                return
            # A random destination per message, as 0.6's random
            # partitioner gives each one a fresh random key (dealing in
            # turn would send the same lines of a periodic input to the
            # same worker every time).
            name = "_spread%d" % seg_index
            if name not in env:
                env["_rnd"] = random.Random().random
                env[name] = runner.spread_list(self.index, seg_index)
            code(depth, "_o = %s[int(_rnd() * %d.0)]" % (name, _SPREAD_SLOTS))
            code(depth, "if _o is not None: " + leave)
            return
        if seg.kind == SEG_SINGLE:
            d = runner.owner[runner.partition_of(SINGLE_PARTITION_KEY)]
            if d:
                name = "_o%d" % seg_index
                if name not in env:
                    env[name] = runner.appender(d, self.index, seg_index)
                code(depth, "_o = %s; k = _SPK; %s" % (name, leave))
            return
        if seg.kind == SEG_KEYED:
            if not any(runner.owner):
                return
            if "_rc%d" % seg_index not in env:
                cache, route = runner.router(self.index, seg_index)
                env["_rc%d" % seg_index] = cache
                env["_rt%d" % seg_index] = route
            # (A subscript in a try costs less than a get call: 26 against
            # 38 ns a key, measured; a miss is rare.)
            code(depth, "try: _o = _rc%d[k]" % seg_index)
            code(depth, "except KeyError: _o = _rt%d(k)" % seg_index)
            # (Not with the module's own serialisation hooks: the value
            # the peer's deserialize makes need not be the key.)
            key = "None if k is v else k" if runner._pickled else "k"
            code(depth, "if _o is not None: _o(%s); _o(v)%s; continue"
                 % (key, ts))

    def _compile(self, entry, keyless=False, routed=False):
        """The function that runs messages from segment ``entry`` on. The
        source entry (0) takes (frames, ts, salvage); a later one takes
        (items, salvage) with items (key, value, ingest ts). It returns
        one bytes per sink and, last, how many messages reached the first
        sink. While metrics are on, the body that times each computation
        (and the decoder) takes one message of each run of up to
        _STRATUM messages of a call, at a random position (sample_every
        1: every message), and the others take the untimed body: no test
        per message. The timings of a run follow a (-1, weight) pair:
        each stands for weight messages (the run's)."""
        env = {
            "_MISSING": _MISSING, "_SPK": SINGLE_PARTITION_KEY,
            "_as_key": _as_key, "_as_output": _as_output, "bytes": bytes,
            "list": list, "type": type, "str": str, "_not_a_list": _not_a_list,
            "_text": _text_type, "_pc": _clock_ns,
            "_tm": self.runner.timings.append,
            "_pick": self.runner.pick,
            "len": len, "min": min, "range": range, "int": int,
        }
        skip = self.runner.dead_letter is not None
        if skip:
            env["_skip"] = self.runner.skip_message
            env["_stn"] = self.stage_names

        def body(timed):
            """The lines of one message's run, inside its for loop."""
            lines = []

            def code(depth, text):
                lines.append("    " * depth + text)

            d = 4
            if skip:
                code(4, "try:")
                d = 5
            self._body(entry, code, d, env, timed, keyless, routed)
            if skip:
                code(4, "except Exception:")
                code(5, "_skip(_stn[_st], _x); _dr += 1")
            return lines

        every = self.runner.sample_every
        loops = []
        if every:
            # (Timed, the loops need the items' number: a zip of records
            # from another worker is made a list.)
            loops.append("            if type(_frames) is not list: _frames = list(_frames)")
        if every == 1:
            loops.append("            if _frames: _tm(-1); _tm(1)")
            loops.append("            for _x in _frames:")
            loops.extend(body(True))
        elif every:
            # One run of at most _STRATUM messages after another: one
            # message of each, drawn at random, is timed and stands for
            # the run's messages; the untimed body runs the others.
            plain = ["    " + line for line in body(False)]
            # (Slices: a list's loop is the fastest, and copying the
            # slice costs less a message than an islice's steps.)
            loops.append("            _n = len(_frames)")
            loops.append("            for _a in range(0, _n, %d):" % _STRATUM)
            loops.append("                _b = min(_a + %d, _n)" % _STRATUM)
            loops.append("                _j = _a + int(_pick() * (_b - _a))")
            loops.append("                _tm(-1); _tm(_b - _a)")
            loops.append("                for _x in _frames[_a:_j]:")
            loops.extend(plain)
            loops.append("                for _x in _frames[_j:_j + 1]:")
            loops.extend("    " + line for line in body(True))
            loops.append("                for _x in _frames[_j + 1:_b]:")
            loops.extend(plain)
        else:
            loops.append("            for _x in _frames:")
            loops.extend(body(False))

        first = self.segments[entry].start
        nenc = len(self.encoders)
        outs = ", ".join("_o%d" % j for j in range(nenc))
        comma = "," if nenc == 1 else ""
        if entry == 0:
            src = ["def _make():", "    def _run(_frames, _ts, _salvage):"]
        else:
            src = ["def _make():", "    def _run(_frames, _salvage):"]
        for j in range(nenc):
            src.append("        _o%d = []; _a%d = _o%d.append" % (j, j, j))
        src.append("        _st = %d; _x = None; _dr = 0" % (first + 1 if entry else 0))
        src.append("        try:")
        src.extend(loops)
        src.append("        except BaseException:  # WorkerStopping too: say where")
        src.append("            _salvage(_st, _x, (%s%s))" % (outs, comma))
        src.append("            raise")
        src.append("        return (%s%s,)" % (
            "".join('b"".join(_o%d), ' % j for j in range(nenc)),
            "len(_o0) + _dr" if nenc else "_dr"))
        src.append("    return _run")
        text = "\n".join(src) + "\n"
        codeobj = compile(text, "<wallaroo runner: %s, segment %d>"
                          % (self.source_name, entry), "exec")
        exec(codeobj, env)
        self.source_text.append(text)
        return env["_make"]()

    def _body(self, entry, code, depth, env, timed, keyless=False,
              routed=False):
        """Emit the loop body of segment ``entry`` on at ``depth``; timed,
        each computation's call (and the decoder's) is timed; routed, the
        boundary of segment ``entry`` itself is emitted first."""
        starts = dict((s.start, (i, s)) for i, s in enumerate(self.segments)
                      if i > 0)
        skip = self.runner.dead_letter is not None
        opened = []  # depths of the try blocks of --on-error skip
        if skip:
            env["_skip"] = self.runner.skip_message
            env["_stn"] = self.stage_names
        first = self.segments[entry].start
        mark = self.index << 8

        def timed_call(n, text):
            if timed:
                code(depth, "_t0 = _pc()")
                code(depth, text)
                code(depth, "_tm(%d); _tm(_pc() - _t0)" % (mark | n))
            else:
                code(depth, text)
        if entry == 0:
            if self.decoder is not None:
                env["_decode"] = self.decoder.decode
                code(depth, "_st = 0")
                timed_call(0, "v = _decode(_x)")
                code(depth, "if v is None: _dr += 1; continue")
            else:
                code(depth, "v = _x")
            code(depth, "k = None")
        elif keyless:
            # Records of a group whose keys were all None: at a keyed
            # segment each key was its value.
            code(depth, "v, _ts = _x" if self.runner.sample_every else "v = _x")
            code(depth, "k = v" if self.segments[entry].kind == SEG_KEYED
                 else "k = None")
        else:
            code(depth, "k, v, _ts = _x" if self.runner.sample_every
                 else "k, v = _x")
            if self.segments[entry].kind == SEG_KEYED:
                code(depth, "if k is None: k = v")
        for i in range(first, len(self.stages)):
            st = self.stages[i]
            n = i + 1
            if i in starts and (starts[i][0] > entry or
                                (routed and starts[i][0] == entry)):
                self._boundary(code, depth, starts[i][0], starts[i][1], env)
            code(depth, "_st = %d; _x = v" % n)
            if st.kind == KEY_BY:
                env["_f%d" % n] = st.component.extract_key
                env["_n%d" % n] = st.name
                code(depth, "k = _f%d(v)" % n)
                if _PY2:
                    code(depth, "if type(k) is not str: k = _as_key(k, _n%d)" % n)
                else:
                    # (Exact bytes only: a subclass goes to _as_key, so
                    # no application code runs in the cache's lookup.)
                    env["_kbg"] = self.runner.key_texts.get
                    env["_kbm"] = self.runner.key_texts.miss
                    code(depth, "if type(k) is not str: k = (_kbg(k) or _kbm(k)) "
                         "if type(k) is bytes else _as_key(k, _n%d)" % n)
                continue
            if st.kind == COMPUTATION:
                comp = st.component
                env["_f%d" % n] = comp.compute_multi if st.multi else comp.compute
                call = "_f%d(v)" % n
                what = "computation_multi"
            else:  # STATE
                comp = st.component
                env["_f%d" % n] = comp.compute_multi if st.multi else comp.compute
                if "_t%d" % n not in env:
                    env["_t%d" % n] = self.runner.state_table(st.step_id)
                    env["_c%d" % n] = self.runner.creator(st.step_id,
                                                          comp.initial_state)
                if not st.keyed:
                    code(depth, "k = _SPK")
                if self.runner.track:
                    env["_h%d" % n] = self.runner.hot_table(st.step_id)
                    code(depth, "s = _h%d.get(k, _MISSING)" % n)
                    code(depth, "if s is _MISSING:")
                    code(depth + 1, "s = _t%d.get(k, _MISSING)" % n)
                    code(depth + 1, "if s is _MISSING: s = _c%d(k)" % n)
                    code(depth + 1, "_h%d[k] = s" % n)
                else:
                    code(depth, "s = _t%d.get(k, _MISSING)" % n)
                    code(depth, "if s is _MISSING: s = _c%d(k)" % n)
                call = "_f%d(v, s)" % n
                what = "state_computation_multi"
            env["_n%d" % n] = st.name
            # A message filtered out (None, or a fan-out to nothing)
            # completes there: _dr counts it with those reaching the sinks.
            if not st.multi:
                timed_call(n, "v = " + call)
                code(depth, "if v is None: _dr += 1; continue")
            else:
                timed_call(n, "vs = " + call)
                code(depth, "if vs is None: _dr += 1; continue")
                code(depth, "if type(vs) is not list: _not_a_list(%r, _n%d, vs)" % (what, n))
                code(depth, "if not vs: _dr += 1; continue")
                code(depth, "for v in vs:")
                depth += 1
                if skip:  # each message of the fan-out skipped alone
                    code(depth, "try:")
                    opened.append(depth)
                    depth += 1
                code(depth, "if v is None: _dr += 1; continue")
        # Encoders: every encoding of a message is made before any is kept,
        # so an encoder failing leaves no half-written message behind.
        first_enc = len(self.stages) + 1
        for j, enc in enumerate(self.encoders):
            n = first_enc + j
            env["_e%d" % j] = enc.encode
            env["_en%d" % j] = self.stage_names[n]
            code(depth, "_st = %d; _x = v" % n)
            code(depth, "e%d = _e%d(v)" % (j, j))
            code(depth, "if e%d is not None and type(e%d) is not bytes: e%d = _as_output(e%d, _en%d)" % (j, j, j, j, j))
        for j in range(len(self.encoders)):
            code(depth, "if e%d is not None: _a%d(e%d)" % (j, j, j))
        for d in reversed(opened):
            code(d, "except Exception:")
            code(d + 1, "_skip(_stn[_st], _x); _dr += 1")

    def _note_failure(self, stage, x, outs):
        self.failed = (self.stage_names[stage],
                       None if x is None else _describe(x))
        self.salvage = tuple(b"".join(o) for o in outs)

    def process(self, frames, ts=0):
        """Run one batch of frames read at ``ts`` (the engine's ingest
        time); return a tuple with one bytes per sink and, last, the number
        of messages that completed here: reached the sinks (counted once)
        or were filtered out (a stage returned None, or a fan-out an empty
        list) or skipped (--on-error skip); an encoder's None is not
        counted. Messages that leave
        at a boundary wait in the runner's outbox (take_envelopes).

        If user code raises, the exception propagates; before that,
        ``failed`` is set to (stage description, repr of the message) and
        ``salvage`` to the per-sink output of the messages before the
        failing one (so output produced before a failure is not lost).
        """
        self.failed = None
        self.salvage = None
        return self._run(frames, ts, self._note_failure)

    def frame_raw(self, conn, chunk, ts, closed, header_length, max_payload):
        """Frame bytes read from one connection of a source whose decoder
        has its own ``payload_length`` (so the engine cannot frame it in
        Go), then run the frames like process. ``conn`` names the
        connection; what is left of a frame waits for its next chunk.
        Returns (outputs, reason): reason is None, or why the stream can
        no longer be framed (payload_length raised, or returned a bad
        length); the engine then closes that connection. The frames before
        the bad header are processed. With ``closed`` the connection has
        ended: its leftover bytes are dropped (reason says how many)."""
        pending = self._raw
        if conn in self._rejected:
            # Bytes read before the engine closed the connection: they
            # follow a header that could not be read, so cannot be framed.
            if closed:
                self._rejected.discard(conn)
            return self._run([], ts, self._note_failure), None
        buf = pending.pop(conn, b"") + chunk if conn in pending else chunk
        plen = self.decoder.payload_length
        frames = []
        pos = 0
        reason = None
        end = len(buf)
        while end - pos >= header_length:
            header = buf[pos:pos + header_length]
            try:
                n = plen(header)
            except Exception as e:
                reason = ("bad frame header %s: payload_length() raised %s: %s"
                          % (_hex(header), type(e).__name__, e))
                break
            if type(n) is not int and not (_PY2 and isinstance(n, long)):  # noqa: F821
                reason = ("bad frame header %s: payload_length() returned %s "
                          "%s, not an int" % (_hex(header), type(n).__name__,
                                              _describe(n)))
                break
            if n < 0:
                reason = ("bad frame header %s: negative payload length %d"
                          % (_hex(header), n))
                break
            if n > max_payload:
                reason = ("frame of %d bytes exceeds the limit of %d bytes"
                          % (n, max_payload))
                break
            if end - pos - header_length < n:
                break
            start = pos + header_length
            frames.append(buf[start:start + n])
            pos = start + n
        if reason is not None and not closed:
            self._rejected.add(conn)
        if reason is None:
            if closed:
                if pos < end:
                    reason = ("connection closed with %d bytes of an "
                              "unfinished frame" % (end - pos))
            elif pos < end:
                pending[conn] = buf[pos:]
        self.failed = None
        self.salvage = None
        if self.runner.sample_every:
            raw = self.runner.raw_frames
            raw[self.index] = raw.get(self.index, 0) + len(frames)
        outs = self._run(frames, ts, self._note_failure)
        return outs, reason

    def resume(self, segment, items, keyless=False, routed=False):
        """Run (key, value[, ingest ts]) items from segment ``segment``
        on (keyless: (value[, ingest ts]), the keys None); return the
        per-sink outputs like process. Ingest times are there while the
        runner's metrics are on. Routed, each item is routed first as at
        the boundary of ``segment``: it may leave for another worker."""
        if not 0 < segment < len(self._entries):
            raise ValueError("envelope for segment %d of pipeline %r, which "
                             "has segments 1 to %d"
                             % (segment, self.source_name,
                                len(self._entries) - 1))
        self.failed = None
        self.salvage = None
        if routed:
            run = self._routed.get((segment, keyless))
            if run is None:
                run = self._routed[(segment, keyless)] = \
                    self._compile(segment, keyless, True)
        else:
            run = self._keyless[segment] if keyless else self._entries[segment]
        return run(items, self._note_failure)

    def generate(self, n, ts=0):
        """Take up to n values from the generator and run them; return
        (outputs, stopped). As in Wallaroo 0.6, the value after ``v`` is
        computed with ``apply(v)`` before ``v`` is pushed; a None (from
        ``initial_value`` or ``apply``) stops the source. ``stopped`` is a
        real bool: the truth of the generator's values is never asked."""
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
                self.salvage = self._run(items, ts, lambda *a: None)
            except Exception:
                self.salvage = None
            raise
        self.gen_value = v
        if self.runner.sample_every:
            raw = self.runner.raw_frames
            raw[self.index] = raw.get(self.index, 0) + len(items)
        return self._run(items, ts, self._note_failure), v is None
