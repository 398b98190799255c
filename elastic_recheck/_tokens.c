/* The ingest fast path of analysis.index_text: ASCII text -> its standard-analyzer
 * terms, lower-cased and joined by single spaces.
 *
 * Why C: this runs on every indexed log line, and Python's regex findall over it
 * was the largest single cost of ingest (~6 us a line; this is ~0.3 us).
 *
 * The scanner itself is in _ascii_tokens.h (shared with _templates.c).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_ascii_tokens.h"

static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c; }

static PyObject *ascii_index_text(PyObject *self, PyObject *arg)
{
    if (!PyUnicode_Check(arg) || PyUnicode_READY(arg) < 0 || !PyUnicode_IS_ASCII(arg)) {
        PyErr_SetString(PyExc_TypeError, "ascii_index_text takes an ASCII str");
        return NULL;
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    Py_ssize_t size = n + n / 200 + 2;
    PyObject *out = PyUnicode_New(size, 127);
    if (out == NULL) return NULL;
    unsigned char *o = PyUnicode_1BYTE_DATA(out);
    Py_ssize_t w = 0, at = 0, i, k;
    while (next_ascii_token(s, n, &at, &i, &k)) {
        if (w + (k - i) + 1 > size) {  /* cannot happen (see above); never write past the buffer */
            Py_DECREF(out);
            PyErr_SetString(PyExc_RuntimeError, "ascii_index_text: output longer than expected");
            return NULL;
        }
        if (w) o[w++] = ' ';
        for (Py_ssize_t p = i; p < k; p++) o[w++] = lower(s[p]);
    }
    if (w == size) return out;
    PyObject *shorter = PyUnicode_New(w, 127);
    if (shorter != NULL) memcpy(PyUnicode_1BYTE_DATA(shorter), o, (size_t)w);
    Py_DECREF(out);
    return shorter;
}

/* -- the writer's batch path --------------------------------------------------
 *
 * Why: per line, calling index_text, building the JSON in Python and calling
 * add_json from a Python loop cost more than tantivy's own parsing of that
 * JSON (measured). The pure-Python path (search/embedded.py, schema.line_json)
 * gives the same documents; tests/test_embedded_backend.py holds them equal. */

/* index_texts(messages, analyse) -> [tokens]: ascii_index_text for ASCII messages, ``analyse(m)`` for the rest. */
static PyObject *index_texts(PyObject *self, PyObject *args)
{
    PyObject *messages, *analyse;
    if (!PyArg_ParseTuple(args, "OO", &messages, &analyse)) return NULL;
    PyObject *seq = PySequence_Fast(messages, "index_texts takes a sequence of str");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    if (!out) { Py_DECREF(seq); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *t = (PyUnicode_Check(m) && PyUnicode_IS_ASCII(m)) ? ascii_index_text(NULL, m)
                                                                    : PyObject_CallOneArg(analyse, m);
        if (!t) { Py_DECREF(out); Py_DECREF(seq); return NULL; }
        PyList_SET_ITEM(out, i, t);
    }
    Py_DECREF(seq);
    return out;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Whether ASCII text needs no JSON escape: analysed tokens never do, so their
 * body is copied whole. No early exit: the compiler vectorizes the loop. */
static int ascii_plain(const unsigned char *s, Py_ssize_t n)
{
    unsigned char bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) bad |= (unsigned char)((s[i] < 0x20) | (s[i] == '"') | (s[i] == '\\'));
    return !bad;
}

/* Bytes needed for ``tokens`` as a JSON string body, every character above ASCII as \uXXXX. */
static Py_ssize_t json_body_size(PyObject *tokens)
{
    if (PyUnicode_IS_ASCII(tokens)) {
        const unsigned char *s = PyUnicode_1BYTE_DATA(tokens);
        Py_ssize_t n = PyUnicode_GET_LENGTH(tokens), size = 0;
        if (ascii_plain(s, n)) return n;
        for (Py_ssize_t i = 0; i < n; i++) size += (s[i] == '"' || s[i] == '\\') ? 2 : (s[i] < 0x20 ? 6 : 1);
        return size;
    }
    int kind = PyUnicode_KIND(tokens);
    const void *data = PyUnicode_DATA(tokens);
    Py_ssize_t n = PyUnicode_GET_LENGTH(tokens), size = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        size += (c == '"' || c == '\\') ? 2 : (c < 0x20 || (c >= 0x7f && c < 0x10000)) ? 6 : c >= 0x10000 ? 12 : 1;
    }
    return size;
}

static char *put_u(char *o, unsigned int u)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '\\'; *o++ = 'u';
    *o++ = hex[(u >> 12) & 15]; *o++ = hex[(u >> 8) & 15]; *o++ = hex[(u >> 4) & 15]; *o++ = hex[u & 15];
    return o;
}

static char *put_body(char *o, PyObject *tokens)
{
    if (PyUnicode_IS_ASCII(tokens) && ascii_plain(PyUnicode_1BYTE_DATA(tokens), PyUnicode_GET_LENGTH(tokens))) {
        memcpy(o, PyUnicode_1BYTE_DATA(tokens), (size_t)PyUnicode_GET_LENGTH(tokens));
        return o + PyUnicode_GET_LENGTH(tokens);
    }
    int kind = PyUnicode_KIND(tokens);
    const void *data = PyUnicode_DATA(tokens);
    Py_ssize_t n = PyUnicode_GET_LENGTH(tokens);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '"' || c == '\\') { *o++ = '\\'; *o++ = (char)c; }
        else if (c < 0x20 || (c >= 0x7f && c < 0x10000)) o = put_u(o, c);
        else if (c >= 0x10000) { c -= 0x10000; o = put_u(o, 0xD800 + (c >> 10)); o = put_u(o, 0xDC00 + (c & 0x3FF)); }
        else *o++ = (char)c;
    }
    return o;
}

/* A signed integer in decimal, as %lld writes it (snprintf's parsing of its
 * format was a tenth of a line's JSON). */
static char *put_int(char *o, long long value)
{
    char digits[24];
    int n = 0;
    unsigned long long v = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (value < 0) *o++ = '-';
    while (n) *o++ = digits[--n];
    return o;
}

/* {"cid":C,"ts":T,"message":"  (at most 7 + 20 + 6 + 20 + 12 bytes) */
static int put_head(char *head, long long cid, long long ts)
{
    char *o = head;
    memcpy(o, "{\"cid\":", 7);
    o = put_int(o + 7, cid);
    memcpy(o, ",\"ts\":", 6);
    o = put_int(o + 6, ts);
    memcpy(o, ",\"message\":\"", 12);
    return (int)(o + 12 - head);
}

/* One line's JSON (schema.line_json's document), or NULL with an error set. */
static PyObject *line_doc(PyObject *cid, PyObject *micros, PyObject *message, PyObject *tokens)
{
    long long c = PyLong_AsLongLong(cid), ts = PyLong_AsLongLong(micros);
    if ((c == -1 || ts == -1) && PyErr_Occurred()) return NULL;
    if (!PyUnicode_Check(tokens) || !PyUnicode_Check(message)) {
        PyErr_SetString(PyExc_TypeError, "messages and tokens must be str");
        return NULL;
    }
    Py_ssize_t raw_len;
    const char *raw = PyUnicode_AsUTF8AndSize(message, &raw_len);
    if (!raw) return NULL;
    char head[96];
    int head_len = put_head(head, c, ts);
    Py_ssize_t b64_len = (raw_len + 2) / 3 * 4;
    Py_ssize_t size = head_len + json_body_size(tokens) + 9 + b64_len + 2;  /* ","src":" ... "} */
    PyObject *out = PyUnicode_New(size, 127);
    if (!out) return NULL;
    char *o = (char *)PyUnicode_1BYTE_DATA(out);
    memcpy(o, head, (size_t)head_len);
    o = put_body(o + head_len, tokens);
    memcpy(o, "\",\"src\":\"", 9);
    o += 9;
    const unsigned char *s = (const unsigned char *)raw;
    Py_ssize_t i = 0;
    for (; i + 2 < raw_len; i += 3) {
        unsigned int v = (unsigned int)s[i] << 16 | (unsigned int)s[i + 1] << 8 | s[i + 2];
        *o++ = B64[v >> 18]; *o++ = B64[(v >> 12) & 63]; *o++ = B64[(v >> 6) & 63]; *o++ = B64[v & 63];
    }
    if (i < raw_len) {
        unsigned int v = (unsigned int)s[i] << 16 | (i + 1 < raw_len ? (unsigned int)s[i + 1] << 8 : 0);
        *o++ = B64[v >> 18]; *o++ = B64[(v >> 12) & 63];
        *o++ = i + 1 < raw_len ? B64[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o++ = '"'; *o++ = '}';
    return out;
}

/* add_line_docs(add, cids, micros, messages, tokens, fallback): ``add(json)`` for each line, the
 * JSON from ``fallback(cid, micros, message, tokens)`` for a message UTF-8 cannot encode (a lone
 * surrogate: schema.line_json stores it with surrogatepass). */
static PyObject *add_line_docs(PyObject *self, PyObject *args)
{
    PyObject *add, *cids, *micros, *messages, *tokens, *fallback;
    if (!PyArg_ParseTuple(args, "OOOOOO", &add, &cids, &micros, &messages, &tokens, &fallback)) return NULL;
    PyObject *c = PySequence_Fast(cids, "cids must be a sequence"), *w = NULL, *m = NULL, *t = NULL;
    if (!c || !(w = PySequence_Fast(micros, "micros must be a sequence")) ||
        !(m = PySequence_Fast(messages, "messages must be a sequence")) ||
        !(t = PySequence_Fast(tokens, "tokens must be a sequence"))) goto fail;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(c);
    if (PySequence_Fast_GET_SIZE(w) != n || PySequence_Fast_GET_SIZE(m) != n || PySequence_Fast_GET_SIZE(t) != n) {
        PyErr_SetString(PyExc_ValueError, "cids, micros, messages and tokens differ in length");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ci = PySequence_Fast_GET_ITEM(c, i), *wi = PySequence_Fast_GET_ITEM(w, i);
        PyObject *mi = PySequence_Fast_GET_ITEM(m, i), *ti = PySequence_Fast_GET_ITEM(t, i);
        PyObject *doc = line_doc(ci, wi, mi, ti);
        if (!doc && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            doc = PyObject_CallFunctionObjArgs(fallback, ci, wi, mi, ti, NULL);
        }
        if (!doc) goto fail;
        PyObject *r = PyObject_CallOneArg(add, doc);
        Py_DECREF(doc);
        if (!r) goto fail;
        Py_DECREF(r);
    }
    Py_DECREF(c); Py_DECREF(w); Py_DECREF(m); Py_DECREF(t);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(c); Py_XDECREF(w); Py_XDECREF(m); Py_XDECREF(t);
    return NULL;
}

static PyMethodDef methods[] = {
    {"ascii_index_text", ascii_index_text, METH_O,
     "The standard-analyzer terms of an ASCII str, lower-cased and joined by spaces."},
    {"index_texts", index_texts, METH_VARARGS,
     "index_texts(messages, analyse) -> each message's terms joined by spaces (analyse(m) for non-ASCII ones)"},
    {"add_line_docs", add_line_docs, METH_VARARGS,
     "add_line_docs(add, cids, micros, messages, tokens, fallback): add(json) for each line, as schema.line_json"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tokens", NULL, -1, methods};

PyMODINIT_FUNC PyInit__tokens(void) { return PyModule_Create(&module); }
