/* The masking step of templates.template_text, in C: analysed tokens -> the
 * template (variable tokens replaced by <*>, runs of them collapsed, at most
 * MAX_TEMPLATE_TOKENS tokens).
 *
 * Why C: explain and suggest mask every line they read, millions per cold
 * run; the four regex passes of the Python twin (templates._mask_tokens)
 * cost ~19 us a line, this ~0.3 us; line_bodies and masks take a whole
 * list, so a build's lines are masked with no Python call per line.
 * tests/test_templates_native.py holds them to their Python twins.
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

static PyObject *mask_one(PyObject *arg)
{
    const unsigned char *s = PyUnicode_1BYTE_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    if (n == 0) return PyUnicode_New(0, 127);
    /* Token bounds and marks: at most n+1 tokens (str.split(" ") of n spaces).
     * A masked token can be longer than the token ("1" -> "<*>"), but a run of
     * them is one and each is followed by an unmasked token and a space: the
     * output is under twice the input, plus one <*>. A log line's fit on the
     * stack; a longer one's are allocated. */
    Py_ssize_t cap = n + 1;
    size_t need = sizeof(Py_ssize_t) * (size_t)cap * 2 + (size_t)cap * 2 + (size_t)n * 2 + 4;
    Py_ssize_t stack[2048];
    Py_ssize_t *start = need <= sizeof(stack) ? stack : PyMem_Malloc(need);
    if (start == NULL) return PyErr_NoMemory();
    char *mark = (char *)(start + cap * 2);
    unsigned char *out = (unsigned char *)(mark + cap * 2);
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
    if (start != stack) PyMem_Free(start);
    return result;
}

/* -- templates.line_body on ASCII text ----------------------------------------
 * The end of the console log's or oslo.log's prefix, or 0 when the line has
 * neither: the greedy reading of the two regexes in templates.py, which has
 * no backtracking to do (each run is followed by a character it cannot
 * hold), so both give the same end. */

static inline int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }
static inline int is_word(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static Py_ssize_t digits(const unsigned char *s, Py_ssize_t i, Py_ssize_t n, Py_ssize_t count)
{
    for (Py_ssize_t k = 0; k < count; k++, i++)
        if (i >= n || !is_digit(s[i])) return -1;
    return i;
}

/* \d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)? : the end, or -1 */
static Py_ssize_t stamp_end(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = digits(s, 0, n, 4);
    static const char seps[] = "--T::";
    for (int part = 0; part < 5 && i >= 0; part++) {
        if (i >= n) return -1;
        if (part == 2 ? !(s[i] == ' ' || s[i] == 'T') : s[i] != seps[part]) return -1;
        i = digits(s, i + 1, n, 2);
    }
    if (i < 0) return -1;
    if (i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
        i++;
        while (i < n && is_digit(s[i])) i++;
    }
    return i;
}

static Py_ssize_t console_prefix_end(const unsigned char *s, Py_ssize_t n, Py_ssize_t i)
{
    /* \s*\|(?:\s*[\w.@:-]{1,64}\s*\|)?\s? */
    while (i < n && is_space(s[i])) i++;
    if (i >= n || s[i] != '|') return -1;
    i++;
    Py_ssize_t j = i;
    while (j < n && is_space(s[j])) j++;
    Py_ssize_t run = j;
    while (run < n && (is_word(s[run]) || s[run] == '.' || s[run] == '@' || s[run] == ':' || s[run] == '-')) run++;
    if (run > j && run - j <= 64) {
        Py_ssize_t k = run;
        while (k < n && is_space(s[k])) k++;
        if (k < n && s[k] == '|') i = k + 1;
    }
    if (i < n && is_space(s[i])) i++;
    return i;
}

static Py_ssize_t oslo_prefix_end(const unsigned char *s, Py_ssize_t n, Py_ssize_t i)
{
    /* " \d+ (?:DEBUG|INFO|WARNING|ERROR|CRITICAL|TRACE|AUDIT) [\w.]+ (?:\[[^\]]{0,300}\] ?)?" */
    static const char *levels[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "TRACE", "AUDIT"};
    if (i >= n || s[i] != ' ') return -1;
    Py_ssize_t j = ++i;
    while (i < n && is_digit(s[i])) i++;
    if (i == j || i >= n || s[i] != ' ') return -1;
    i++;
    Py_ssize_t level = -1;
    for (int k = 0; k < 7 && level < 0; k++) {
        Py_ssize_t len = (Py_ssize_t)strlen(levels[k]);
        if (i + len < n && memcmp(s + i, levels[k], (size_t)len) == 0 && s[i + len] == ' ') level = i + len;
    }
    if (level < 0) return -1;
    i = j = level + 1;
    while (i < n && (is_word(s[i]) || s[i] == '.')) i++;
    if (i == j || i >= n || s[i] != ' ') return -1;
    i++;
    if (i < n && s[i] == '[') {
        Py_ssize_t k = i + 1;
        while (k < n && k - (i + 1) <= 300 && s[k] != ']') k++;
        if (k < n && s[k] == ']' && k - (i + 1) <= 300) {
            i = k + 1;
            if (i < n && s[i] == ' ') i++;
        }
    }
    return i;
}

static Py_ssize_t body_start(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t stamp = stamp_end(s, n);
    if (stamp < 0) return 0;
    Py_ssize_t end = console_prefix_end(s, n, stamp);
    if (end < 0) end = oslo_prefix_end(s, n, stamp);
    return end < 0 ? 0 : end;
}

/* fn(each) for each str of a list: ``native`` for ASCII ones, ``fallback`` (a
 * Python callable) for the others. */
static PyObject *map_ascii(PyObject *args, PyObject *(*native)(PyObject *))
{
    PyObject *items, *fallback;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &items, &fallback)) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(items);
    PyObject *out = PyList_New(count);
    if (out == NULL) return NULL;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = PyList_GET_ITEM(items, k), *done;
        if (PyUnicode_Check(item) && PyUnicode_READY(item) == 0 && PyUnicode_IS_ASCII(item))
            done = native(item);
        else
            done = PyObject_CallOneArg(fallback, item);
        if (done == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, k, done);
    }
    return out;
}

static PyObject *line_body(PyObject *message)
{
    const unsigned char *s = PyUnicode_1BYTE_DATA(message);
    Py_ssize_t n = PyUnicode_GET_LENGTH(message);
    Py_ssize_t start = body_start(s, n);
    if (start == 0) {
        Py_INCREF(message);
        return message;
    }
    return PyUnicode_Substring(message, start, n);
}

static PyObject *line_bodies(PyObject *self, PyObject *args) { return map_ascii(args, line_body); }
static PyObject *masks(PyObject *self, PyObject *args) { return map_ascii(args, mask_one); }

static PyObject *mask_tokens(PyObject *self, PyObject *arg)
{
    if (!PyUnicode_Check(arg) || PyUnicode_READY(arg) < 0 || !PyUnicode_IS_ASCII(arg)) {
        PyErr_SetString(PyExc_TypeError, "mask_tokens takes an ASCII str");
        return NULL;
    }
    return mask_one(arg);
}

static PyMethodDef methods[] = {
    {"mask_tokens", mask_tokens, METH_O,
     "mask_tokens(tokens) -> the template of an ASCII line's analysed tokens (templates._mask_tokens)"},
    {"line_bodies", line_bodies, METH_VARARGS,
     "line_bodies(messages, fallback) -> templates.line_body of each (fallback(m) for non-ASCII ones)"},
    {"masks", masks, METH_VARARGS,
     "masks(tokens, fallback) -> mask_tokens of each (fallback(t) for non-ASCII ones)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_templates", NULL, -1, methods};

PyMODINIT_FUNC PyInit__templates(void) { return PyModule_Create(&module); }
