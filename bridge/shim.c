#include "shim.h"

#include <time.h>

/* Start the interpreter without Python's own signal handlers: the Go
 * runtime owns SIGINT/SIGTERM. Returns 0 on success. */
int wb_init(void) {
    Py_InitializeEx(0);
    if (!Py_IsInitialized()) {
        return -1;
    }
#if PY_MAJOR_VERSION < 3 || (PY_MAJOR_VERSION == 3 && PY_MINOR_VERSION < 7)
    PyEval_InitThreads(); /* creates the GIL; implicit from 3.7 on */
#endif
    return 0;
}

PyThreadState *wb_save_thread(void) { return PyEval_SaveThread(); }
void wb_restore_thread(PyThreadState *ts) { PyEval_RestoreThread(ts); }

/* wb_thread_ident is the calling OS thread's identifier as Python knows it
 * (threading.get_ident()). Needs no GIL. It is a long before 3.7. */
unsigned long wb_thread_ident(void) { return (unsigned long)PyThread_get_thread_ident(); }

/* wb_new_thread_state makes a thread state for the calling thread in the
 * interpreter of like (borrowed). Needs no GIL; the caller then takes the
 * GIL with it through wb_restore_thread. The result is owned by the
 * interpreter's list of thread states. */
PyThreadState *wb_new_thread_state(PyThreadState *like) {
#if PY_VERSION_HEX >= 0x03090000
    return PyThreadState_New(PyThreadState_GetInterpreter(like));
#else
    return PyThreadState_New(like->interp);
#endif
}

/* wb_gil_ensure and wb_gil_release bracket Python use on a thread that is
 * not the executor (PyGILState_Ensure/Release); both must run on the same
 * OS thread, which the Go caller locks. */
int wb_gil_ensure(void) { return (int)PyGILState_Ensure(); }
void wb_gil_release(int state) { PyGILState_Release((PyGILState_STATE)state); }

/* wb_async_raise sets cls.stop_message to msg and schedules cls (borrowed;
 * an exception class, as PyThreadState_SetAsyncExc requires: it raises it
 * with no arguments) in the thread ident. GIL held, any thread. Returns
 * the number of thread states changed (1 when ident is a Python thread),
 * or -1 when the message could not be set (the exception is cleared). */
int wb_async_raise(unsigned long ident, PyObject *cls, const char *msg, Py_ssize_t n) {
    int r;
    PyObject *m = wb_str(msg, n); /* new */
    if (m == NULL) {
        PyErr_Clear();
        return -1;
    }
    r = PyObject_SetAttrString(cls, "stop_message", m);
    Py_DECREF(m);
    if (r < 0) {
        PyErr_Clear();
        return -1;
    }
#if PY_VERSION_HEX < 0x03070000
    return PyThreadState_SetAsyncExc((long)ident, cls);
#else
    return PyThreadState_SetAsyncExc(ident, cls);
#endif
}

/* wb_async_clear drops an exception scheduled by wb_async_raise that has
 * not been raised yet. GIL held, any thread. */
void wb_async_clear(unsigned long ident) {
#if PY_VERSION_HEX < 0x03070000
    PyThreadState_SetAsyncExc((long)ident, NULL);
#else
    PyThreadState_SetAsyncExc(ident, NULL);
#endif
}

/* wb_stack_of calls fn(ident) (fn borrowed: machida_bridge.stack_of) and
 * copies the text it returns into *out (malloc'd; the caller frees it).
 * GIL held, any thread. Returns 0, or -1 with no exception left set. */
int wb_stack_of(PyObject *fn, unsigned long ident, char **out, Py_ssize_t *n) {
    int rc = -1;
    const char *view;
    PyObject *r = NULL;
    PyObject *arg = PyLong_FromUnsignedLong(ident); /* new */
    if (arg == NULL)
        goto done;
    r = PyObject_CallFunctionObjArgs(fn, arg, NULL); /* new */
    if (r == NULL)
        goto done;
    if (wb_text_view(r, &view, n) < 0)
        goto done;
    *out = malloc((size_t)*n + 1);
    if (*out == NULL)
        goto done;
    memcpy(*out, view, (size_t)*n);
    (*out)[*n] = 0;
    rc = 0;
done:
    Py_XDECREF(arg);
    Py_XDECREF(r);
    if (rc < 0)
        PyErr_Clear();
    return rc;
}

void wb_incref(PyObject *o) { Py_INCREF(o); }
void wb_decref(PyObject *o) { Py_DECREF(o); }
Py_ssize_t wb_refcnt(PyObject *o) { return Py_REFCNT(o); }
PyObject *wb_none(void) { Py_INCREF(Py_None); return Py_None; }
int wb_is_none(PyObject *o) { return o == Py_None; }

/* wb_str makes the text type from UTF-8: str on Python 3, unicode-decoded
 * then kept as byte str on Python 2 (the 2.7 host hands byte strings to
 * application_setup, as machida did). */
PyObject *wb_str(const char *s, Py_ssize_t n) {
#if PY_MAJOR_VERSION >= 3
    return PyUnicode_DecodeUTF8(s, n, "surrogateescape");
#else
    return PyString_FromStringAndSize(s, n);
#endif
}

PyObject *wb_bytes(const char *s, Py_ssize_t n) {
    return PyBytes_FromStringAndSize(s, n);
}

/* wb_frames_to_list builds a new list with one bytes object per frame:
 * frame i is buf[ends[i-1]:ends[i]]. One cgo crossing per batch. */
PyObject *wb_frames_to_list(const char *buf, const int32_t *ends, Py_ssize_t n) {
    PyObject *list = PyList_New(n); /* new */
    Py_ssize_t i;
    int32_t start = 0;
    if (list == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize(buf + start, ends[i] - start); /* new */
        if (b == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, b); /* steals b */
        start = ends[i];
    }
    return list;
}

/* wb_text_view gives a read-only view of text: UTF-8 of a str (and of a
 * unicode on Python 2, if ASCII), or the raw bytes of a bytes object. The
 * view lives as long as o. Returns 0, or -1 with an exception set, or -2
 * when o is neither text nor bytes (no exception set). */
int wb_text_view(PyObject *o, const char **out, Py_ssize_t *n) {
#if PY_MAJOR_VERSION >= 3
    if (PyUnicode_Check(o)) {
        const char *s = PyUnicode_AsUTF8AndSize(o, n);
        if (s == NULL) {
            return -1;
        }
        *out = s;
        return 0;
    }
#else
    if (PyUnicode_Check(o)) {
        return -2; /* caller encodes unicode explicitly on 2.7 */
    }
#endif
    if (PyBytes_Check(o)) {
        char *s = NULL;
        if (PyBytes_AsStringAndSize(o, &s, n) < 0) {
            return -1;
        }
        *out = s;
        return 0;
    }
    return -2;
}

/* wb_bytes_view is wb_text_view restricted to bytes (2.7: str). */
int wb_bytes_view(PyObject *o, const char **out, Py_ssize_t *n) {
    char *s = NULL;
    if (!PyBytes_Check(o)) {
        return -2;
    }
    if (PyBytes_AsStringAndSize(o, &s, n) < 0) {
        return -1;
    }
    *out = s;
    return 0;
}

int wb_as_int64(PyObject *o, long long *out) {
    long long v;
#if PY_MAJOR_VERSION < 3
    if (PyInt_Check(o)) {
        *out = (long long)PyInt_AsLong(o);
        return 0;
    }
#endif
    if (!PyLong_Check(o)) {
        return -2;
    }
    v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = v;
    return 0;
}

int wb_is_list(PyObject *o) { return PyList_Check(o); }
int wb_is_tuple(PyObject *o) { return PyTuple_Check(o); }
int wb_is_int(PyObject *o) {
#if PY_MAJOR_VERSION < 3
    if (PyInt_Check(o)) return 1;
#endif
    return PyLong_Check(o);
}
int wb_is_text(PyObject *o) {
#if PY_MAJOR_VERSION >= 3
    return PyUnicode_Check(o);
#else
    return PyString_Check(o) || PyUnicode_Check(o);
#endif
}
int wb_is_bytes(PyObject *o) { return PyBytes_Check(o); }
int wb_is_callable(PyObject *o) { return PyCallable_Check(o); }

/* wb_seq_item returns o[i] as a NEW reference (PySequence_GetItem). */
PyObject *wb_seq_item(PyObject *o, Py_ssize_t i) { return PySequence_GetItem(o, i); }

PyObject *wb_call0(PyObject *callable) { return PyObject_CallObject(callable, NULL); }
PyObject *wb_call1(PyObject *callable, PyObject *a) {
    return PyObject_CallFunctionObjArgs(callable, a, NULL);
}
PyObject *wb_call2(PyObject *callable, PyObject *a, PyObject *b) {
    return PyObject_CallFunctionObjArgs(callable, a, b, NULL);
}
PyObject *wb_call_tuple(PyObject *callable, PyObject *args) {
    return PyObject_CallObject(callable, args);
}

int wb_err_occurred(void) { return PyErr_Occurred() != NULL; }

/* wb_err_fetch moves the pending exception into three NEW references
 * (value and tb may be NULL) after normalising it, and clears it. */
void wb_err_fetch(PyObject **type, PyObject **value, PyObject **tb) {
    PyErr_Fetch(type, value, tb);
    PyErr_NormalizeException(type, value, tb);
#if PY_MAJOR_VERSION >= 3
    if (*tb != NULL && *value != NULL) {
        PyException_SetTraceback(*value, *tb);
    }
#endif
}

int wb_err_is_system_exit(PyObject *type) {
    return type != NULL && PyErr_GivenExceptionMatches(type, PyExc_SystemExit);
}

/* wb_err_matches reports whether the exception type (borrowed) is cls
 * (borrowed) or a subclass of it. */
int wb_err_matches(PyObject *type, PyObject *cls) {
    return type != NULL && cls != NULL && PyErr_GivenExceptionMatches(type, cls);
}

void wb_err_set_runtime(const char *msg) { PyErr_SetString(PyExc_RuntimeError, msg); }

/* wb_type_name returns the type's name; the pointer is owned by the type. */
const char *wb_type_name(PyObject *o) { return Py_TYPE(o)->tp_name; }

/* wb_compile compiles a module's source (new reference, or NULL with an
 * exception set). Py_CompileString is a macro before Python 3.10, so cgo
 * cannot call it directly. */
PyObject *wb_compile(const char *source, const char *filename) {
#if PY_MAJOR_VERSION >= 3
    return Py_CompileStringExFlags(source, filename, Py_file_input, NULL, -1);
#else
    return Py_CompileStringFlags(source, filename, Py_file_input, NULL);
#endif
}

/* wb_int makes an int: a plain int on Python 2 when it fits (not a long,
 * whose repr ends in L), an int on Python 3. */
PyObject *wb_int(long long v) {
#if PY_MAJOR_VERSION < 3
    if (v >= LONG_MIN && v <= LONG_MAX) {
        return PyInt_FromLong((long)v);
    }
#endif
    return PyLong_FromLongLong(v);
}

/* Text columns: the C twins of wallaroo._columns.pack_text and
 * unpack_text, in the same format (a count, each item's length in bytes
 * as unsigned LEB128 varints, then the items' bytes: UTF-8 of each exact
 * str on Python 3, the bytes of each exact str on Python 2). The host
 * installs them in wallaroo._runner, which packs the envelope columns of
 * native strings with them (one memcpy per string instead of pickle's
 * opcode and memo entry). Called from Python, so with the GIL held. */

/* WB_TEXT_MAX bounds a packed column (the runner's _MAX_BATCH_BYTES):
 * past it, the column is left to pickle, which writes an object repeated
 * in it once (a list of one large string n times would pack to n
 * copies). */
#define WB_TEXT_MAX ((Py_ssize_t)4 << 20)

static char *wb_put_varint(char *p, uint64_t n) {
    while (n > 0x7f) {
        *p++ = (char)((n & 0x7f) | 0x80);
        n >>= 7;
    }
    *p++ = (char)n;
    return p;
}

static Py_ssize_t wb_varint_size(uint64_t n) {
    Py_ssize_t k = 1;
    while (n > 0x7f) {
        n >>= 7;
        k++;
    }
    return k;
}

/* One item of a column being packed: its bytes, and the UTF-8 copy that
 * holds them when the str is not ASCII (owned; NULL otherwise). */
struct wb_text_item {
    const char *s;
    Py_ssize_t n;
    PyObject *utf8;
};

/* wb_text_item fills it from o: 1, or 0 when o is not an exact native
 * string or has no UTF-8 form (a lone surrogate; no exception left set),
 * or -1 with an exception set (out of memory). A non-ASCII str gets a
 * UTF-8 copy of its own (PyUnicode_AsUTF8AndSize would keep one in the
 * str for as long as it lives: a key in a state dict, for ever). */
static int wb_text_item(PyObject *o, struct wb_text_item *it) {
    it->utf8 = NULL;
#if PY_MAJOR_VERSION >= 3
    if (!PyUnicode_CheckExact(o)) {
        return 0;
    }
    if (PyUnicode_IS_COMPACT_ASCII(o)) {
        it->s = (const char *)PyUnicode_DATA(o);
        it->n = PyUnicode_GET_LENGTH(o);
        return 1;
    }
    it->utf8 = PyUnicode_AsUTF8String(o); /* new */
    if (it->utf8 == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    it->s = PyBytes_AS_STRING(it->utf8);
    it->n = PyBytes_GET_SIZE(it->utf8);
    return 1;
#else
    if (!PyString_CheckExact(o)) {
        return 0;
    }
    it->s = PyString_AS_STRING(o);
    it->n = PyString_GET_SIZE(o);
    return 1;
#endif
}

static PyObject *wb_pack_text(PyObject *self, PyObject *values) {
    Py_ssize_t count, i, done = 0, size;
    struct wb_text_item *items;
    char *p;
    PyObject *out = NULL;
    (void)self;
    if (!PyList_CheckExact(values)) {
        Py_RETURN_NONE;
    }
    count = PyList_GET_SIZE(values);
    if (count >= WB_TEXT_MAX) { /* at least a byte an item */
        Py_RETURN_NONE;
    }
    items = PyMem_Malloc(sizeof(*items) * (size_t)(count > 0 ? count : 1));
    if (items == NULL) {
        return PyErr_NoMemory();
    }
    size = wb_varint_size((uint64_t)count);
    for (i = 0; i < count; i++) {
        int ok = wb_text_item(PyList_GET_ITEM(values, i), &items[i]);
        if (ok <= 0) {
            goto give_up; /* -1: the exception stays set */
        }
        done = i + 1; /* items[:done] may hold UTF-8 copies */
        /* (Compared before adding: no overflow on any Py_ssize_t.) */
        if (items[i].n > WB_TEXT_MAX - size - 5) {
            goto give_up;
        }
        size += wb_varint_size((uint64_t)items[i].n) + items[i].n;
    }
    out = PyBytes_FromStringAndSize(NULL, size); /* new */
    if (out != NULL) {
        p = wb_put_varint(PyBytes_AS_STRING(out), (uint64_t)count);
        for (i = 0; i < count; i++) {
            p = wb_put_varint(p, (uint64_t)items[i].n);
        }
        for (i = 0; i < count; i++) {
            memcpy(p, items[i].s, (size_t)items[i].n);
            p += items[i].n;
        }
    }
    goto free_items;
give_up:
    if (!PyErr_Occurred()) {
        Py_INCREF(Py_None);
        out = Py_None;
    }
free_items:
    for (i = 0; i < done; i++) { /* (an item refused holds no copy) */
        Py_XDECREF(items[i].utf8);
    }
    PyMem_Free(items);
    return out;
}

/* wb_get_varint reads the varint at *p (before end) into *n; 0, or -1
 * if it runs past end or its value is over 32 bits. */
static int wb_get_varint(const unsigned char **p, const unsigned char *end, uint64_t *n) {
    int shift = 0;
    *n = 0;
    for (;;) {
        unsigned char b;
        if (*p >= end) {
            return -1;
        }
        b = *(*p)++;
        *n |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            return *n > 0xffffffffu ? -1 : 0;
        }
        shift += 7;
        if (shift > 28) {
            return -1;
        }
    }
}

static PyObject *wb_corrupt_column(const char *why) {
    PyErr_Format(PyExc_ValueError, "text column is corrupt: %s", why);
    return NULL;
}

static PyObject *wb_unpack_text(PyObject *self, PyObject *data) {
    const unsigned char *start, *end, *p, *lens, *body;
    uint64_t count, n, total = 0, room;
    Py_ssize_t i;
    PyObject *list;
    (void)self;
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "a text column is bytes, not %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    start = (const unsigned char *)PyBytes_AS_STRING(data);
    end = start + PyBytes_GET_SIZE(data);
    p = start;
    if (wb_get_varint(&p, end, &count) < 0) {
        return wb_corrupt_column("it ends inside a length, or a length is over 32 bits");
    }
    if (count > (uint64_t)(end - p)) {
        return wb_corrupt_column("more items than bytes");
    }
    lens = p;
    for (i = 0; i < (Py_ssize_t)count; i++) {
        if (wb_get_varint(&p, end, &n) < 0) {
            return wb_corrupt_column("it ends inside a length, or a length is over 32 bits");
        }
        /* (The total never passes the column's size: no wrap.) */
        room = (uint64_t)(end - p);
        if (n > room || total > room - n) {
            return wb_corrupt_column("its items' lengths add up to more than its size");
        }
        total += n;
    }
    body = p;
    if (total != (uint64_t)(end - body)) {
        return wb_corrupt_column("its items' lengths add up to less than its size");
    }
    list = PyList_New((Py_ssize_t)count); /* new */
    if (list == NULL) {
        return NULL;
    }
    p = lens;
    for (i = 0; i < (Py_ssize_t)count; i++) {
        PyObject *s;
        wb_get_varint(&p, end, &n); /* read once above: cannot fail */
#if PY_MAJOR_VERSION >= 3
        {
            uint64_t j;
            unsigned char high = 0;
            for (j = 0; j < n; j++) {
                high |= body[j];
            }
            if (high < 0x80) { /* ASCII: no decoding to do */
                s = PyUnicode_New((Py_ssize_t)n, 127);
                if (s != NULL) {
                    memcpy(PyUnicode_DATA(s), body, (size_t)n);
                }
            } else {
                s = PyUnicode_DecodeUTF8((const char *)body, (Py_ssize_t)n, NULL);
                if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    PyErr_Clear();
                    Py_DECREF(list);
                    return wb_corrupt_column("an item is not UTF-8");
                }
            }
        }
#else
        s = PyString_FromStringAndSize((const char *)body, (Py_ssize_t)n);
#endif
        if (s == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, s); /* steals s */
        body += n;
    }
    return list;
}

/* wb_monotonic_ns is a nanosecond monotonic clock for the runner's stage
 * timing: Python 2 has neither perf_counter nor time_ns, and time.time()
 * as a double keeps only about 256 ns of today's epoch (and goes back when
 * the wall clock does). */
static PyObject *wb_monotonic_ns(PyObject *self, PyObject *unused) {
    struct timespec ts;
    (void)self;
    (void)unused;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec);
}

static PyMethodDef wb_clock_def = {"monotonic_ns", wb_monotonic_ns, METH_NOARGS,
                                   "A monotonic clock in integer nanoseconds."};

/* wb_clock returns the built-in function monotonic_ns (a new reference). */
PyObject *wb_clock(void) { return PyCFunction_NewEx(&wb_clock_def, NULL, NULL); }

static PyMethodDef wb_text_defs[] = {
    {"pack_text", wb_pack_text, METH_O, "A list of exact native strings as one bytes (None for anything else)."},
    {"unpack_text", wb_unpack_text, METH_O, "The list of strings a packed text column holds."},
};

/* wb_text_codec returns the built-in function pack_text (which 0) or
 * unpack_text (1). */
PyObject *wb_text_codec(int which) {
    if (which < 0 || which > 1) {
        PyErr_SetString(PyExc_ValueError, "no such text codec function");
        return NULL;
    }
    return PyCFunction_NewEx(&wb_text_defs[which], NULL, NULL);
}
