/* pycontroller._speedups: the per-object steps of pycontroller/client/_lazy.py in C.
 *
 * Optional: the package works without it (the pure-Python code in _lazy.py is the
 * reference, and the tests run both against the same cases):
 *
 *   from_shaped(shaped)  LazyObject._from_shaped: build a LazyObject from a _Shaped struct
 *   meta_from(meta)      LazyObject._meta_from: build the metadata LazyObject from a _Meta
 *   leave_gc(obj)        _lazy._leave_gc: untrack a cached object's JSON containers
 *   untrack(obj)         PyObject_GC_UnTrack (what _lazy does through ctypes otherwise)
 *
 * configure(...) hands over the Python objects they use (the LazyObject type, msgspec's
 * UNSET, orjson.Fragment, the shared-string table, ...): at import of _lazy.py, and again
 * only by tests, while no other thread decodes. Every function runs with the GIL held and
 * calls back into Python only on rare paths (a scalar spec, a raw metadata value that is
 * no object or array, the first object with a new set of raw metadata keys).
 *
 * Not thread-safe beyond what the GIL gives, like the Python code it replaces (the string
 * table is a dict shared by all threads, each step of it atomic under the GIL). Single-phase
 * init with process-wide state: not for subinterpreters.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
    PyTypeObject *lazy_type;  /* LazyObject */
    Py_ssize_t lazy_offset;   /* its _lazy slot */
    PyObject *unset;          /* msgspec.UNSET */
    PyObject *fragment;       /* orjson.Fragment */
    PyObject *strings;        /* the shared-string table (a dict) */
    Py_ssize_t strings_max;   /* emptied when it holds this many */
    Py_ssize_t intern_max;    /* strings longer than this are not shared */
    Py_ssize_t cached_key;    /* msgspec shares dict keys up to this length itself */
    PyObject *scalar;         /* _lazy._scalar(bytes): a spec/status that is no container */
    PyObject *loads;          /* orjson.loads: a raw metadata value that is no container */
    PyObject *shared;         /* _lazy._shared(tuple): the canonical lazy-key tuple */
    PyObject *spec, *status, *spec_status;  /* shared lazy-key tuples */
    PyObject *shaped_fields;  /* _Shaped.__struct_fields__ (kind, apiVersion, metadata, spec, status) */
    PyObject *meta_fields;    /* _Meta.__struct_fields__ */
    int meta_kind[64];        /* per meta field: 0 plain, 1 shared string, 2 string map, 3 raw */
    int meta_raw_bit[64];     /* per raw meta field: its bit in the lazy-key mask */
    PyObject *meta_lazy[8];   /* per mask of raw fields kept raw: the shared tuple (lazily) */
    PyObject *meta_raw_names[3];
    int configured;
} State;

static State S;

enum { PLAIN = 0, SHARED = 1, STRMAP = 2, RAW = 3 };

/* ---- small helpers ---------------------------------------------------------------- */

static PyObject *empty_tuple;

static int set_lazy(PyObject *obj, PyObject *value);

static PyObject *
new_lazy(void)
{
    /* dict.__new__(LazyObject): no Python-level __init__; the _lazy slot set to None. */
    PyObject *obj = PyDict_Type.tp_new(S.lazy_type, empty_tuple, NULL);
    if (obj != NULL) {
        set_lazy(obj, Py_None);
    }
    return obj;
}

static int
set_lazy(PyObject *obj, PyObject *value)
{
    PyObject **slot = (PyObject **)((char *)obj + S.lazy_offset);
    PyObject *old = *slot;
    Py_INCREF(value);
    *slot = value;
    Py_XDECREF(old);
    return 0;
}

/* One copy of a short string (the table's), as _lazy._shared_str; a new reference. */
static PyObject *
share(PyObject *value)
{
    if (!PyUnicode_CheckExact(value) || PyUnicode_GET_LENGTH(value) > S.intern_max) {
        Py_INCREF(value);
        return value;
    }
    PyObject *kept = PyDict_SetDefault(S.strings, value, value);  /* borrowed */
    if (kept == NULL) {
        return NULL;
    }
    Py_INCREF(kept);
    return kept;
}

static void
bound_strings(void)
{
    if (PyDict_GET_SIZE(S.strings) >= S.strings_max) {
        PyDict_Clear(S.strings);
    }
}

/* bytes(raw): the one copy of a raw JSON value out of the line; a new reference. */
static PyObject *
raw_bytes(PyObject *raw)
{
    Py_buffer view;
    if (PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *data = PyBytes_FromStringAndSize(view.buf, view.len);
    PyBuffer_Release(&view);
    return data;
}

static int
is_container(PyObject *data)
{
    const char *s = PyBytes_AS_STRING(data);
    return PyBytes_GET_SIZE(data) > 0 && (s[0] == '{' || s[0] == '[');
}

/* ---- from_shaped / meta_from ------------------------------------------------------- */

/* labels/annotations: values shared in place; keys longer than msgspec's key cache make
 * a new dict with every key shared, whatever its length (as _share_meta_strings). A new
 * reference. */
static PyObject *
share_map(PyObject *values)
{
    if (!PyDict_CheckExact(values) || PyDict_GET_SIZE(values) == 0) {
        Py_INCREF(values);
        return values;
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int long_keys = 0;
    while (PyDict_Next(values, &pos, &k, &v)) {
        if (PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) <= S.intern_max) {
            PyObject *kept = PyDict_SetDefault(S.strings, v, v);
            if (kept == NULL) {
                return NULL;
            }
            if (kept != v && PyDict_SetItem(values, k, kept) < 0) {  /* same key: safe */
                return NULL;
            }
        }
        if (PyUnicode_CheckExact(k) && PyUnicode_GET_LENGTH(k) > S.cached_key) {
            long_keys = 1;
        }
    }
    if (!long_keys) {
        Py_INCREF(values);
        return values;
    }
    PyObject *out = PyDict_New();
    if (out == NULL) {
        return NULL;
    }
    pos = 0;
    while (PyDict_Next(values, &pos, &k, &v)) {
        PyObject *key = PyDict_SetDefault(S.strings, k, k);  /* borrowed */
        if (key == NULL || PyDict_SetItem(out, key, v) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *
meta_lazy_tuple(int mask)
{
    if (S.meta_lazy[mask] == NULL) {
        Py_ssize_t n = 0;
        for (int bit = 0; bit < 3; bit++) {
            n += (mask >> bit) & 1;
        }
        PyObject *names = PyTuple_New(n);
        if (names == NULL) {
            return NULL;
        }
        n = 0;
        for (int bit = 0; bit < 3; bit++) {
            if (mask & (1 << bit)) {
                Py_INCREF(S.meta_raw_names[bit]);
                PyTuple_SET_ITEM(names, n++, S.meta_raw_names[bit]);
            }
        }
        PyObject *shared = PyObject_CallOneArg(S.shared, names);
        Py_DECREF(names);
        if (shared == NULL) {
            return NULL;
        }
        if (S.meta_lazy[mask] == NULL) {  /* (the call may have let another thread in) */
            S.meta_lazy[mask] = shared;  /* kept until configure runs again */
        } else {
            Py_DECREF(shared);
        }
    }
    return S.meta_lazy[mask];
}

static PyObject *
build_meta(PyObject *known)
{
    PyObject *meta = new_lazy();
    if (meta == NULL) {
        return NULL;
    }
    bound_strings();
    int mask = 0;
    Py_ssize_t n = PyTuple_GET_SIZE(S.meta_fields);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(S.meta_fields, i);
        PyObject *value = PyObject_GetAttr(known, name);
        if (value == NULL) {
            goto error;
        }
        if (value == S.unset) {
            Py_DECREF(value);
            continue;
        }
        PyObject *kept = NULL;
        switch (S.meta_kind[i]) {
        case SHARED:
            kept = share(value);
            break;
        case STRMAP:
            kept = share_map(value);
            break;
        case RAW: {
            PyObject *data = raw_bytes(value);
            if (data == NULL) {
                break;
            }
            if (is_container(data)) {
                mask |= S.meta_raw_bit[i];
                kept = PyObject_CallOneArg(S.fragment, data);
            } else {
                kept = PyObject_CallOneArg(S.loads, data);
            }
            Py_DECREF(data);
            break;
        }
        default:
            Py_INCREF(value);
            kept = value;
        }
        Py_DECREF(value);
        if (kept == NULL) {
            goto error;
        }
        int rc = PyDict_SetItem(meta, name, kept);
        Py_DECREF(kept);
        if (rc < 0) {
            goto error;
        }
    }
    if (mask) {
        PyObject *lazy = meta_lazy_tuple(mask);
        if (lazy == NULL) {
            goto error;
        }
        set_lazy(meta, lazy);
    }
    return meta;
error:
    Py_DECREF(meta);
    return NULL;
}

/* spec or status: an object or array kept as a fragment (1), anything else decoded (0);
 * -1 on error. */
static int
put_body(PyObject *obj, PyObject *name, PyObject *raw)
{
    PyObject *data = raw_bytes(raw);
    if (data == NULL) {
        return -1;
    }
    int container = is_container(data);
    PyObject *value = PyObject_CallOneArg(container ? S.fragment : S.scalar, data);
    Py_DECREF(data);
    if (value == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(obj, name, value);
    Py_DECREF(value);
    return rc < 0 ? -1 : container;
}

static PyObject *
from_shaped(PyObject *self, PyObject *shaped)
{
    if (!S.configured) {
        PyErr_SetString(PyExc_RuntimeError, "pycontroller._speedups: not configured");
        return NULL;
    }
    PyObject *obj = new_lazy();
    if (obj == NULL) {
        return NULL;
    }
    bound_strings();
    PyObject *fields[5] = {NULL, NULL, NULL, NULL, NULL};
    for (int i = 0; i < 5; i++) {
        fields[i] = PyObject_GetAttr(shaped, PyTuple_GET_ITEM(S.shaped_fields, i));
        if (fields[i] == NULL) {
            goto error;
        }
    }
    for (int i = 0; i < 2; i++) {  /* kind, apiVersion */
        if (fields[i] != S.unset) {
            PyObject *value = share(fields[i]);
            if (value == NULL) {
                goto error;
            }
            int rc = PyDict_SetItem(obj, PyTuple_GET_ITEM(S.shaped_fields, i), value);
            Py_DECREF(value);
            if (rc < 0) {
                goto error;
            }
        }
    }
    if (fields[2] != S.unset) {
        PyObject *meta = build_meta(fields[2]);
        if (meta == NULL) {
            goto error;
        }
        int rc = PyDict_SetItem(obj, PyTuple_GET_ITEM(S.shaped_fields, 2), meta);
        Py_DECREF(meta);
        if (rc < 0) {
            goto error;
        }
    }
    int spec = 0, status = 0;
    if (fields[3] != S.unset
        && (spec = put_body(obj, PyTuple_GET_ITEM(S.shaped_fields, 3), fields[3])) < 0) {
        goto error;
    }
    if (fields[4] != S.unset
        && (status = put_body(obj, PyTuple_GET_ITEM(S.shaped_fields, 4), fields[4])) < 0) {
        goto error;
    }
    if (spec || status) {
        set_lazy(obj, spec && status ? S.spec_status : (spec ? S.spec : S.status));
    }
    for (int i = 0; i < 5; i++) {
        Py_DECREF(fields[i]);
    }
    return obj;
error:
    for (int i = 0; i < 5; i++) {
        Py_XDECREF(fields[i]);
    }
    Py_DECREF(obj);
    return NULL;
}

static PyObject *
meta_from(PyObject *self, PyObject *known)
{
    if (!S.configured) {
        PyErr_SetString(PyExc_RuntimeError, "pycontroller._speedups: not configured");
        return NULL;
    }
    return build_meta(known);
}

/* ---- leave_gc ---------------------------------------------------------------------- */

#define MAX_DEPTH 200  /* deeper than this: left tracked (as Python's RecursionError) */

static int
is_walked(PyObject *value)
{
    PyTypeObject *t = Py_TYPE(value);
    return t == &PyDict_Type || t == &PyList_Type || t == S.lazy_type;
}

/* Untrack `c` if every value in it is untracked once its own containers are; whether it
 * did. `path` holds the containers being walked above it (a cycle is left tracked). */
static int
leave(PyObject *c, PyObject **path, int depth)
{
    if (!PyObject_GC_IsTracked(c)) {
        return 1;
    }
    for (int i = 0; i < depth; i++) {
        if (path[i] == c) {
            return 0;
        }
    }
    if (depth >= MAX_DEPTH) {
        return 0;
    }
    path[depth] = c;
    int json_only = 1;
    if (PyDict_Check(c)) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(c, &pos, &k, &v)) {
            if (PyObject_GC_IsTracked(v) && !(is_walked(v) && leave(v, path, depth + 1))) {
                json_only = 0;
            }
        }
    } else {
        Py_ssize_t n = PyList_GET_SIZE(c);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *v = PyList_GET_ITEM(c, i);
            if (PyObject_GC_IsTracked(v) && !(is_walked(v) && leave(v, path, depth + 1))) {
                json_only = 0;
            }
        }
    }
    if (json_only) {
        PyObject_GC_UnTrack(c);
    }
    return json_only;
}

static PyObject *
leave_gc(PyObject *self, PyObject *obj)
{
    if (S.configured && Py_TYPE(obj) == S.lazy_type) {
        PyObject *path[MAX_DEPTH];
        leave(obj, path, 0);
    }
    Py_RETURN_NONE;
}

static PyObject *
untrack(PyObject *self, PyObject *obj)
{
    if (PyObject_GC_IsTracked(obj)) {
        PyObject_GC_UnTrack(obj);
    }
    Py_RETURN_NONE;
}

/* ---- configure --------------------------------------------------------------------- */

static int
index_of(PyObject *names, const char *name)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(names, i), name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static PyObject *
configure(PyObject *self, PyObject *args)
{
    PyObject *lazy_type, *unset, *fragment, *strings, *scalar, *loads, *shared;
    PyObject *spec, *status, *spec_status, *shaped_fields, *meta_fields;
    PyObject *shared_names, *map_names, *raw_names;
    Py_ssize_t strings_max, intern_max, cached_key;
    if (!PyArg_ParseTuple(args, "O!OOO!nnnOOOO!O!O!O!O!O!O!O!", &PyType_Type, &lazy_type,
                          &unset, &fragment, &PyDict_Type, &strings, &strings_max,
                          &intern_max, &cached_key, &scalar, &loads, &shared,
                          &PyTuple_Type, &spec, &PyTuple_Type, &status,
                          &PyTuple_Type, &spec_status, &PyTuple_Type, &shaped_fields,
                          &PyTuple_Type, &meta_fields, &PyTuple_Type, &shared_names,
                          &PyTuple_Type, &map_names, &PyTuple_Type, &raw_names)) {
        return NULL;
    }
    /* Everything is checked before the old configuration is released. */
    PyTypeObject *type = (PyTypeObject *)lazy_type;
    if (!PyType_IsSubtype(type, &PyDict_Type)) {
        PyErr_SetString(PyExc_TypeError, "the lazy type must subclass dict");
        return NULL;
    }
    PyObject *descr = PyObject_GetAttrString(lazy_type, "_lazy");
    if (descr == NULL) {
        return NULL;
    }
    int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type)
             && ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
    Py_ssize_t offset = ok ? ((PyMemberDescrObject *)descr)->d_member->offset : 0;
    Py_DECREF(descr);
    if (!ok) {
        PyErr_SetString(PyExc_TypeError, "the lazy type's _lazy must be a slot");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(meta_fields);
    if (PyTuple_GET_SIZE(shaped_fields) != 5 || n > 64 || PyTuple_GET_SIZE(raw_names) != 3) {
        PyErr_SetString(PyExc_ValueError, "unexpected field tuples");
        return NULL;
    }
    int kind[64] = {0}, raw_bit[64] = {0};
    PyObject *raw_field[3] = {NULL, NULL, NULL};
    for (Py_ssize_t g = 0; g < 3; g++) {
        PyObject *names = g == 0 ? shared_names : (g == 1 ? map_names : raw_names);
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(names); j++) {
            const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(names, j));
            if (name == NULL) {
                return NULL;
            }
            int i = index_of(meta_fields, name);
            if (i < 0) {
                PyErr_Format(PyExc_ValueError, "%s is no metadata field", name);
                return NULL;
            }
            kind[i] = g == 0 ? SHARED : (g == 1 ? STRMAP : RAW);
            if (g == 2) {
                raw_bit[i] = 1 << j;
                raw_field[j] = PyTuple_GET_ITEM(meta_fields, i);
            }
        }
    }
    /* Release the old configuration (configure runs again when the tests swap the string
     * table), then keep the new one. */
    PyObject **refs[] = {&S.unset, &S.fragment, &S.strings, &S.scalar, &S.loads, &S.shared,
                         &S.spec, &S.status, &S.spec_status, &S.shaped_fields,
                         &S.meta_fields, (PyObject **)&S.lazy_type, &S.meta_raw_names[0],
                         &S.meta_raw_names[1], &S.meta_raw_names[2], &S.meta_lazy[0],
                         &S.meta_lazy[1], &S.meta_lazy[2], &S.meta_lazy[3], &S.meta_lazy[4],
                         &S.meta_lazy[5], &S.meta_lazy[6], &S.meta_lazy[7]};
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
        Py_CLEAR(*refs[i]);
    }
    PyObject *values[] = {unset, fragment, strings, scalar, loads, shared, spec, status,
                          spec_status, shaped_fields, meta_fields, lazy_type, raw_field[0],
                          raw_field[1], raw_field[2]};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        Py_INCREF(values[i]);
        *refs[i] = values[i];
    }
    memcpy(S.meta_kind, kind, sizeof(kind));
    memcpy(S.meta_raw_bit, raw_bit, sizeof(raw_bit));
    S.lazy_offset = offset;
    S.strings_max = strings_max;
    S.intern_max = intern_max;
    S.cached_key = cached_key;
    S.configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, "Hand over _lazy's objects (once)."},
    {"from_shaped", from_shaped, METH_O, "LazyObject._from_shaped in C."},
    {"meta_from", meta_from, METH_O, "LazyObject._meta_from in C."},
    {"leave_gc", leave_gc, METH_O, "_lazy.leave_gc in C."},
    {"untrack", untrack, METH_O, "PyObject_GC_UnTrack(obj) if obj is tracked."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pycontroller._speedups",
    "The per-object steps of pycontroller.client._lazy in C (optional).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    empty_tuple = PyTuple_New(0);
    if (empty_tuple == NULL) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    /* What configure takes: _lazy.py checks it, so a stale build falls back to Python. */
    if (m != NULL && PyModule_AddIntConstant(m, "ABI", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
