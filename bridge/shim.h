/* shim.h: the C helpers the bridge's Go code calls. Every function that
 * returns a PyObject* returns a NEW reference, or NULL with a Python
 * exception set (the Go caller then calls fetchError). Arguments are
 * BORROWED unless a comment says otherwise. All of them must be called
 * with the GIL held, on the executor thread, except those in the
 * "threads" group below, whose comments in shim.c say what they need. */
#ifndef WB_SHIM_H
#define WB_SHIM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <stdint.h>

int wb_init(void);
PyThreadState *wb_save_thread(void);
void wb_restore_thread(PyThreadState *ts);

/* threads */
unsigned long wb_thread_ident(void);
PyThreadState *wb_new_thread_state(PyThreadState *like);
int wb_gil_ensure(void);
int wb_stack_of(PyObject *fn, unsigned long ident, char **out, Py_ssize_t *n);
void wb_gil_release(int state);
int wb_async_raise(unsigned long ident, PyObject *cls, const char *msg, Py_ssize_t n);
void wb_async_clear(unsigned long ident);

void wb_incref(PyObject *o);
void wb_decref(PyObject *o);
Py_ssize_t wb_refcnt(PyObject *o);
PyObject *wb_none(void);
int wb_is_none(PyObject *o);

PyObject *wb_str(const char *s, Py_ssize_t n);
PyObject *wb_bytes(const char *s, Py_ssize_t n);
PyObject *wb_frames_to_list(const char *buf, const int32_t *ends, Py_ssize_t n);

int wb_text_view(PyObject *o, const char **out, Py_ssize_t *n);
int wb_bytes_view(PyObject *o, const char **out, Py_ssize_t *n);
int wb_as_int64(PyObject *o, long long *out);
int wb_is_list(PyObject *o);
int wb_is_tuple(PyObject *o);
int wb_is_int(PyObject *o);
int wb_is_text(PyObject *o);
int wb_is_bytes(PyObject *o);
int wb_is_callable(PyObject *o);
PyObject *wb_seq_item(PyObject *o, Py_ssize_t i);

PyObject *wb_call0(PyObject *callable);
PyObject *wb_call1(PyObject *callable, PyObject *a);
PyObject *wb_call2(PyObject *callable, PyObject *a, PyObject *b);
PyObject *wb_call_tuple(PyObject *callable, PyObject *args);

int wb_err_occurred(void);
void wb_err_fetch(PyObject **type, PyObject **value, PyObject **tb);
int wb_err_is_system_exit(PyObject *type);
int wb_err_matches(PyObject *type, PyObject *cls);
void wb_err_set_runtime(const char *msg);

const char *wb_type_name(PyObject *o);
PyObject *wb_compile(const char *source, const char *filename);
PyObject *wb_int(long long v);
PyObject *wb_text_codec(int which);
PyObject *wb_clock(void);
#endif
