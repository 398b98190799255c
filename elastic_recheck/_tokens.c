/* The ingest fast path of analysis.index_text: ASCII text -> its standard-analyzer
 * terms, lower-cased and joined by single spaces.
 *
 * Why C: this runs on every indexed log line, and Python's regex findall over it
 * was the largest single cost of ingest (~6 us a line; this is ~0.3 us).
 *
 * It is the greedy reading of analysis._ASCII_TOKEN, which Python's re takes
 * too, so both give the same tokens (tests/test_analysis.py checks it):
 *
 *     (?:_*(?:[a-z]+(?:[:.'][a-z]+)*|[0-9]+(?:[,;.'][0-9]+)*))+_*
 *
 * A token is a run of units; a unit is optional underscores and then a word
 * (letters joined by : . ') or a number (digits joined by , ; . '); trailing
 * underscores belong to the token. A token is never directly followed by a
 * letter, digit or underscore, so the output is never longer than the input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static inline int is_letter(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_alnum(unsigned char c) { return is_letter(c) || is_digit(c); }
static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c; }

/* The end of the unit (word or number) that starts with the letter or digit at i. */
static Py_ssize_t unit_end(const unsigned char *s, Py_ssize_t i, Py_ssize_t n)
{
    if (is_letter(s[i])) {
        while (i < n && is_letter(s[i])) i++;
        while (i + 1 < n && (s[i] == ':' || s[i] == '.' || s[i] == '\'') && is_letter(s[i + 1])) {
            i++;
            while (i < n && is_letter(s[i])) i++;
        }
    } else {
        while (i < n && is_digit(s[i])) i++;
        while (i + 1 < n && (s[i] == ',' || s[i] == ';' || s[i] == '.' || s[i] == '\'') && is_digit(s[i + 1])) {
            i++;
            while (i < n && is_digit(s[i])) i++;
        }
    }
    return i;
}

static PyObject *ascii_index_text(PyObject *self, PyObject *arg)
{
    if (!PyUnicode_Check(arg) || PyUnicode_READY(arg) < 0 || !PyUnicode_IS_ASCII(arg)) {
        PyErr_SetString(PyExc_TypeError, "ascii_index_text takes an ASCII str");
        return NULL;
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    PyObject *out = PyUnicode_New(n, 127);
    if (out == NULL) return NULL;
    unsigned char *o = PyUnicode_1BYTE_DATA(out);
    Py_ssize_t w = 0, i = 0;
    while (i < n) {
        Py_ssize_t j = i;
        while (j < n && s[j] == '_') j++;
        if (j >= n || !is_alnum(s[j])) {  /* no token starts here: skip the underscores and the breaker */
            i = j + 1;
            continue;
        }
        Py_ssize_t k = j;
        for (;;) {
            k = unit_end(s, k, n);
            Py_ssize_t m = k;
            while (m < n && s[m] == '_') m++;
            k = m;
            if (m >= n || !is_alnum(s[m])) break;
        }
        if (w) o[w++] = ' ';
        for (Py_ssize_t p = i; p < k; p++) o[w++] = lower(s[p]);
        i = k;
    }
    if (w == n) return out;
    PyObject *shorter = PyUnicode_New(w, 127);
    if (shorter != NULL) memcpy(PyUnicode_1BYTE_DATA(shorter), o, (size_t)w);
    Py_DECREF(out);
    return shorter;
}

static PyMethodDef methods[] = {
    {"ascii_index_text", ascii_index_text, METH_O,
     "The standard-analyzer terms of an ASCII str, lower-cased and joined by spaces."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tokens", NULL, -1, methods};

PyMODINIT_FUNC PyInit__tokens(void) { return PyModule_Create(&module); }
