/* The masking step of templates.template_text, in C: analysed tokens -> the
 * template (variable tokens replaced by <*>, runs of them collapsed, at most
 * MAX_TEMPLATE_TOKENS tokens).
 *
 * Why C: explain and suggest mask every line they read, millions per cold
 * run; the four regex passes of the Python twin (templates._mask_tokens)
 * cost ~19 us a line, this ~0.3 us. tests/test_templates_native.py holds
 * the two to the same answers.
 *
 * Input: ASCII tokens joined by single spaces (analysis.index_text's output
 * for an ASCII line; the caller keeps other lines for the Python twin).
 * Each token is judged as a whole, as the twin's regexes do:
 *   1. variable: it has a digit; or is 12+ of [0-9a-f]; or has a run of 12+
 *      of [b-df-hj-np-tv-z_]; or is 32+ long with no '_' or '.';
 *   2. an id group: 1-12 of [0-9a-f], not variable, between two variable
 *      tokens (judged on step 1's result);
 *   3. a temporary name: "tmp" and exactly 8 of [a-z0-9_];
 * then each run of masked tokens becomes one "<*>".
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_TEMPLATE_TOKENS 64

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
static inline int is_consonant(unsigned char c)
{
    return c == '_' || (c >= 'b' && c <= 'z' && c != 'e' && c != 'i' && c != 'o' && c != 'u');
}

static int is_variable(const unsigned char *s, Py_ssize_t n)
{
    if (n == 3 && s[0] == '<' && s[1] == '*' && s[2] == '>') return 1;  /* a mask already: one of the run */
    int all_hex = 1, dotted = 0;
    Py_ssize_t run = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (is_digit(c)) return 1;
        if (!is_hex(c)) all_hex = 0;
        if (c == '_' || c == '.') dotted = 1;
        if (is_consonant(c)) {
            if (++run >= 12) return 1;
        } else {
            run = 0;
        }
    }
    return (all_hex && n >= 12) || (!dotted && n >= 32);
}

static int is_id_group(const unsigned char *s, Py_ssize_t n)
{
    if (n < 1 || n > 12) return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!is_hex(s[i])) return 0;
    return 1;
}

static int is_tmp_name(const unsigned char *s, Py_ssize_t n)
{
    if (n != 11 || s[0] != 't' || s[1] != 'm' || s[2] != 'p') return 0;
    for (Py_ssize_t i = 3; i < n; i++) {
        unsigned char c = s[i];
        if (!(is_digit(c) || (c >= 'a' && c <= 'z') || c == '_')) return 0;
    }
    return 1;
}

static PyObject *mask_tokens(PyObject *self, PyObject *arg)
{
    if (!PyUnicode_Check(arg) || PyUnicode_READY(arg) < 0 || !PyUnicode_IS_ASCII(arg)) {
        PyErr_SetString(PyExc_TypeError, "mask_tokens takes an ASCII str");
        return NULL;
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    if (n == 0) return PyUnicode_New(0, 127);
    /* Token bounds and marks: at most n+1 tokens (str.split(" ") of n spaces). */
    Py_ssize_t cap = n + 1;
    Py_ssize_t *start = PyMem_Malloc(sizeof(Py_ssize_t) * cap * 2);
    char *mark = PyMem_Malloc((size_t)cap * 2);
    /* A masked token can be longer than the token ("1" -> "<*>"), but a run of
     * them is one and each is followed by an unmasked token and a space:
     * under twice the input, plus one <*>. */
    unsigned char *out = PyMem_Malloc((size_t)n * 2 + 4);
    if (start == NULL || mark == NULL || out == NULL) {
        PyMem_Free(start); PyMem_Free(mark); PyMem_Free(out);
        return PyErr_NoMemory();
    }
    Py_ssize_t *end = start + cap;
    char *variable = mark + cap;
    Py_ssize_t count = 0, i = 0;
    while (i <= n && count < cap) {  /* split on single spaces, as str.split(" ") */
        Py_ssize_t j = i;
        while (j < n && s[j] != ' ') j++;
        start[count] = i;
        end[count] = j;
        count++;
        i = j + 1;
    }
    for (Py_ssize_t t = 0; t < count; t++)
        variable[t] = (char)is_variable(s + start[t], end[t] - start[t]);
    for (Py_ssize_t t = 0; t < count; t++) {
        const unsigned char *token = s + start[t];
        Py_ssize_t len = end[t] - start[t];
        mark[t] = variable[t]
            || (t > 0 && t + 1 < count && variable[t - 1] && variable[t + 1] && is_id_group(token, len))
            || is_tmp_name(token, len);
    }
    Py_ssize_t w = 0, written = 0;
    for (Py_ssize_t t = 0; t < count && written < MAX_TEMPLATE_TOKENS; t++) {
        if (mark[t] && t > 0 && mark[t - 1]) continue;  /* a run of masked tokens is one <*> */
        if (written) out[w++] = ' ';
        if (mark[t]) {
            out[w++] = '<'; out[w++] = '*'; out[w++] = '>';
        } else {
            memcpy(out + w, s + start[t], (size_t)(end[t] - start[t]));
            w += end[t] - start[t];
        }
        written++;
    }
    PyObject *result = PyUnicode_New(w, 127);
    if (result != NULL) memcpy(PyUnicode_1BYTE_DATA(result), out, (size_t)w);
    PyMem_Free(start); PyMem_Free(mark); PyMem_Free(out);
    return result;
}

static PyMethodDef methods[] = {
    {"mask_tokens", mask_tokens, METH_O,
     "mask_tokens(tokens) -> the template of an ASCII line's analysed tokens (templates._mask_tokens)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_templates", NULL, -1, methods};

PyMODINIT_FUNC PyInit__templates(void) { return PyModule_Create(&module); }
