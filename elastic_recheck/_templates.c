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
#include <stdint.h>
#include <string.h>

#define MAX_TEMPLATE_TOKENS 64

#include "_ascii_tokens.h"  /* is_digit, and the scanner that counts a prefix's tokens */

static inline int is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
static inline int is_consonant(unsigned char c)
{
    return c == '_' || (c >= 'b' && c <= 'z' && c != 'e' && c != 'i' && c != 'o' && c != 'u');
}

/* Each byte's classes, for is_variable's one pass without a branch per byte. */
enum { C_DIGIT = 1, C_HEX = 2, C_CONSONANT = 4, C_DOTTED = 8 };
static unsigned char char_class[256];

static void init_char_classes(void)
{
    for (int c = 0; c < 256; c++)
        char_class[c] = (unsigned char)((is_digit((unsigned char)c) ? C_DIGIT : 0) | (is_hex((unsigned char)c) ? C_HEX : 0)
            | (is_consonant((unsigned char)c) ? C_CONSONANT : 0) | (c == '_' || c == '.' ? C_DOTTED : 0));
}

static int is_variable(const unsigned char *s, Py_ssize_t n)
{
    if (n == 3 && s[0] == '<' && s[1] == '*' && s[2] == '>') return 1;  /* a mask already: one of the run */
    unsigned all = C_HEX, any = 0;
    Py_ssize_t run = 0, longest = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned k = char_class[s[i]];
        all &= k;
        any |= k;
        run = (k & C_CONSONANT) ? run + 1 : 0;
        longest = run > longest ? run : longest;
    }
    if ((any & C_DIGIT) || longest >= 12) return 1;
    return ((all & C_HEX) && n >= 12) || (!(any & C_DOTTED) && n >= 32);
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

/* The masking of an ASCII line's tokens into a buffer. Token bounds and
 * marks: at most n+1 tokens (str.split(" ") of n spaces). A masked token can
 * be longer than the token ("1" -> "<*>"), but a run of them is one and each
 * is followed by an unmasked token and a space: the output is under twice the
 * input, plus one <*>. A log line's fit in ``space``'s stack array; a longer
 * one's are allocated (mask_space_free). NULL when out of memory, with no
 * Python error set: the writer's keys are made without the GIL. */
typedef struct {
    Py_ssize_t stack[2048];
    Py_ssize_t *block;
} MaskSpace;

static void mask_space_free(MaskSpace *space)
{
    if (space->block != NULL && space->block != space->stack) PyMem_RawFree(space->block);
    space->block = NULL;
}

static const unsigned char *mask_ascii(MaskSpace *space, const unsigned char *s, Py_ssize_t n, Py_ssize_t *length)
{
    Py_ssize_t cap = n + 1;
    size_t need = sizeof(Py_ssize_t) * (size_t)cap * 2 + (size_t)cap * 2 + (size_t)n * 2 + 4;
    Py_ssize_t *start = need <= sizeof(space->stack) ? space->stack : PyMem_RawMalloc(need);
    space->block = start;
    if (start == NULL) return NULL;  /* no Python error set: it may run without the GIL */
    char *mark = (char *)(start + cap * 2);
    unsigned char *out = (unsigned char *)(mark + cap * 2);
    Py_ssize_t *end = start + cap;
    char *variable = mark + cap;
    Py_ssize_t count = 0, i = 0;
    if (n == 0) {
        *length = 0;
        return out;
    }
    while (i <= n && count < cap) {  /* split on single spaces, as str.split(" ") */
        const unsigned char *space = i < n ? memchr(s + i, ' ', (size_t)(n - i)) : NULL;
        Py_ssize_t j = space != NULL ? space - s : n;
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
    *length = w;
    return out;
}

static PyObject *mask_one(PyObject *arg)
{
    MaskSpace space;  /* not zeroed: 16 KiB a line */
            space.block = NULL;
    Py_ssize_t w;
    const unsigned char *out = mask_ascii(&space, PyUnicode_1BYTE_DATA(arg), PyUnicode_GET_LENGTH(arg), &w);
    PyObject *result = out == NULL ? PyErr_NoMemory() : PyUnicode_New(w, 127);
    if (result != NULL) memcpy(PyUnicode_1BYTE_DATA(result), out, (size_t)w);
    mask_space_free(&space);
    return result;
}

/* -- templates.template_key: BLAKE2b with an 8-byte digest (RFC 7693) ---------
 * The key a build's template set holds is the first 8 bytes of the template's
 * BLAKE2b-64 read big-endian, shifted right by one (63 bits, a positive
 * SQLite integer). hashlib gives the same, at ~2.8 us a call from Python; the
 * writer keys every line it indexes, so the hash is here, ~0.2 us a line.
 * tests/test_templates_native.py holds it to hashlib. */

static const uint64_t blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const unsigned char blake2b_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64_le(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24
        | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

#define B2B_G(a, b, c, d, x, y) do { \
        v[a] = v[a] + v[b] + (x); v[d] = rotr64(v[d] ^ v[a], 32); \
        v[c] = v[c] + v[d];       v[b] = rotr64(v[b] ^ v[c], 24); \
        v[a] = v[a] + v[b] + (y); v[d] = rotr64(v[d] ^ v[a], 16); \
        v[c] = v[c] + v[d];       v[b] = rotr64(v[b] ^ v[c], 63); \
    } while (0)

static void blake2b_compress(uint64_t h[8], const unsigned char block[128], uint64_t counted, int last)
{
    uint64_t v[16], m[16];
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = blake2b_iv[i];
    }
    v[12] ^= counted;  /* the byte count's high word stays 0: a line is far under 2^64 bytes */
    if (last) v[14] = ~v[14];
    for (int i = 0; i < 16; i++) m[i] = load64_le(block + 8 * i);
    for (int r = 0; r < 12; r++) {
        const unsigned char *s = blake2b_sigma[r];
        B2B_G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        B2B_G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        B2B_G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        B2B_G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        B2B_G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        B2B_G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        B2B_G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        B2B_G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

static uint64_t template_key63(const unsigned char *data, Py_ssize_t n)
{
    uint64_t h[8];
    unsigned char block[128];
    for (int i = 0; i < 8; i++) h[i] = blake2b_iv[i];
    h[0] ^= 0x01010000ULL ^ 8;  /* depth 1, fanout 1, no key, an 8-byte digest */
    uint64_t counted = 0;
    while (n > 128) {
        counted += 128;
        blake2b_compress(h, data, counted, 0);
        data += 128;
        n -= 128;
    }
    memset(block, 0, sizeof(block));
    if (n > 0) memcpy(block, data, (size_t)n);
    counted += (uint64_t)n;
    blake2b_compress(h, block, counted, 1);
    uint64_t digest_be = 0;  /* the digest is h[0]'s bytes, little-endian; the key reads them big-endian */
    for (int i = 0; i < 8; i++) digest_be = digest_be << 8 | ((h[0] >> (8 * i)) & 0xff);
    return digest_be >> 1;
}

static int key63_of_text(PyObject *text, uint64_t *key)
{
    PyObject *encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass");
    if (encoded == NULL) return -1;
    *key = template_key63((const unsigned char *)PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    return 0;
}

static PyObject *key_of_text(PyObject *text)
{
    uint64_t key;
    return key63_of_text(text, &key) < 0 ? NULL : PyLong_FromUnsignedLongLong(key);
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

#define NO_KEY UINT64_MAX  /* keys are 63-bit: out of memory while masking */

/* The key of an ASCII line's analysed tokens, masked in place: no str made,
 * no Python object touched (it runs without the GIL). */
static uint64_t key_of_ascii_tokens(const unsigned char *tokens, Py_ssize_t n)
{
    MaskSpace space;  /* not zeroed: 16 KiB a line */
    space.block = NULL;
    Py_ssize_t w;
    const unsigned char *masked = mask_ascii(&space, tokens, n, &w);
    uint64_t key = masked == NULL ? NO_KEY : template_key63(masked, w);
    mask_space_free(&space);
    return key;
}

/* The key of the template text ``fallback(item)`` gives (the Python twin, for non-ASCII lines). */
static int key_by_fallback(PyObject *fallback, PyObject *item, uint64_t *key)
{
    PyObject *text = PyObject_CallOneArg(fallback, item);
    if (text == NULL) return -1;
    if (!PyUnicode_Check(text)) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "template keys: the fallback must return a str");
        return -1;
    }
    int result = key63_of_text(text, key);
    Py_DECREF(text);
    return result;
}

/* An ASCII line, as read while the GIL is held; message NULL: a non-ASCII one. */
typedef struct {
    const unsigned char *message, *tokens;
    Py_ssize_t message_length, tokens_length;
} AsciiLine;

/* The key of an ASCII message given its analysed tokens: its body's tokens
 * are the tokens after those of its prefix, so the body is not analysed a
 * second time. That holds because a prefix ends with a character no token
 * holds (a space, '|' or ']'): the scanner, which never looks back, passes
 * through the body's first character as it would starting there. */
static uint64_t key_of_ascii_line(const AsciiLine *line)
{
    const unsigned char *m = line->message, *t = line->tokens;
    Py_ssize_t tn = line->tokens_length;
    Py_ssize_t body = body_start(m, line->message_length), from = 0;
    if (body > 0) {
        Py_ssize_t at = 0, a, b;
        while (next_ascii_token(m, body, &at, &a, &b)) {  /* skip the prefix's tokens */
            const unsigned char *space = from < tn ? memchr(t + from, ' ', (size_t)(tn - from)) : NULL;
            from = space != NULL ? space - t + 1 : tn;
        }
    }
    return key_of_ascii_tokens(t + from, tn - from);
}

/* template_key(template_text(m)) of each message into ``out``. The ASCII
 * lines, nearly all, are keyed with the GIL released: the writer thread
 * indexes meanwhile. ``fallback(m)`` gives a non-ASCII message's template text. */
static int fill_keys(PyObject *messages, PyObject *tokens, PyObject *fallback, uint64_t *out, Py_ssize_t count)
{
    /* Tuples hold every str alive while the GIL is released, whatever
     * another thread does to the lists meanwhile. */
    PyObject *held_messages = PyList_AsTuple(messages), *held_tokens = PyList_AsTuple(tokens);
    AsciiLine *lines = count ? PyMem_Malloc(sizeof(AsciiLine) * (size_t)count) : NULL;
    int result = -1;
    if (held_messages == NULL || held_tokens == NULL || (count && lines == NULL)) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    if (PyTuple_GET_SIZE(held_messages) != count || PyTuple_GET_SIZE(held_tokens) != count) {
        PyErr_SetString(PyExc_ValueError, "template keys: messages and tokens differ in length");
        goto done;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *message = PyTuple_GET_ITEM(held_messages, k), *terms = PyTuple_GET_ITEM(held_tokens, k);
        lines[k].message = NULL;
        if (PyUnicode_Check(message) && PyUnicode_READY(message) == 0 && PyUnicode_IS_ASCII(message)
                && PyUnicode_Check(terms) && PyUnicode_READY(terms) == 0 && PyUnicode_IS_ASCII(terms)) {
            lines[k].message = PyUnicode_1BYTE_DATA(message);
            lines[k].message_length = PyUnicode_GET_LENGTH(message);
            lines[k].tokens = PyUnicode_1BYTE_DATA(terms);
            lines[k].tokens_length = PyUnicode_GET_LENGTH(terms);
        }
    }
    int out_of_memory = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < count && !out_of_memory; k++) {
        if (lines[k].message != NULL) {
            out[k] = key_of_ascii_line(&lines[k]);
            out_of_memory = out[k] == NO_KEY;
        }
    }
    Py_END_ALLOW_THREADS
    if (out_of_memory) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        if (lines[k].message == NULL && key_by_fallback(fallback, PyTuple_GET_ITEM(held_messages, k), &out[k]) < 0)
            goto done;
    }
    result = 0;
done:
    PyMem_Free(lines);
    Py_XDECREF(held_messages);
    Py_XDECREF(held_tokens);
    return result;
}

/* key_array(messages, tokens, fallback) -> template_key(template_text(m)) of
 * each message, given its analysed tokens, packed as native uint64s: what a
 * build's template set is kept as, with no int object a line. */
static PyObject *key_array(PyObject *self, PyObject *args)
{
    PyObject *messages, *tokens, *fallback;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyList_Type, &messages, &PyList_Type, &tokens, &fallback)) return NULL;
    PyObject *packed = PyBytes_FromStringAndSize(NULL, PyList_GET_SIZE(messages) * (Py_ssize_t)sizeof(uint64_t));
    if (packed == NULL) return NULL;
    if (fill_keys(messages, tokens, fallback, (uint64_t *)PyBytes_AS_STRING(packed),
                  PyBytes_GET_SIZE(packed) / (Py_ssize_t)sizeof(uint64_t)) < 0)
        Py_CLEAR(packed);
    return packed;
}

static int compare_keys(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* unique_keys(packed) -> the distinct keys of a packed array, ascending
 * (sorted without the GIL). */
static PyObject *unique_keys(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Py_ssize_t count = view.len / (Py_ssize_t)sizeof(uint64_t);
    PyObject *packed = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(uint64_t));
    if (packed == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    uint64_t *keys = (uint64_t *)PyBytes_AS_STRING(packed);
    Py_ssize_t kept = 0;
    Py_BEGIN_ALLOW_THREADS
    if (count) memcpy(keys, view.buf, (size_t)count * sizeof(uint64_t));
    qsort(keys, (size_t)count, sizeof(uint64_t), compare_keys);
    for (Py_ssize_t k = 0; k < count; k++)
        if (kept == 0 || keys[k] != keys[kept - 1]) keys[kept++] = keys[k];
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (kept != count) _PyBytes_Resize(&packed, kept * (Py_ssize_t)sizeof(uint64_t));
    return packed;
}

static PyObject *text_key(PyObject *self, PyObject *arg)
{
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "text_key takes a str");
        return NULL;
    }
    return key_of_text(arg);
}

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
    {"key_array", key_array, METH_VARARGS,
     "key_array(messages, tokens, fallback) -> template_key(template_text(m)) of each, given its analysed tokens, "
     "packed as native uint64s"},
    {"unique_keys", unique_keys, METH_O, "unique_keys(packed) -> the distinct keys of a packed array, ascending"},
    {"text_key", text_key, METH_O, "text_key(text) -> templates.template_key(text)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_templates", NULL, -1, methods};

PyMODINIT_FUNC PyInit__templates(void)
{
    init_char_classes();
    return PyModule_Create(&module);
}
