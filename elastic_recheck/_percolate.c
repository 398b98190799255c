/* The percolator's per-line matcher (see percolate.py and percolate_engine.py).
 *
 * Why C: it runs on every indexed log line against every fingerprint, and the
 * target is a 500,000-line build against 5,000 fingerprints in 0.3 s; a
 * Python frame per line alone costs most of that.
 *
 * percolate_engine.py is the same algorithm in Python, step for step:
 *   1. split the analysed tokens on ASCII whitespace (tantivy's whitespace
 *      tokenizer); a token longer than MAX_TOKEN_BYTES is not indexed;
 *   2. an atom that anchors a query (an *indexed* atom) is registered under
 *      one key: a term under its token, a phrase under one pair of adjacent
 *      tokens (the anchor offset says which). While the line is split, each
 *      token and each pair of adjacent tokens is tested against a bitmap of
 *      those keys; where a bit is set, the key is looked up and the atoms
 *      registered under it are compared in place, token by token. With
 *      fingerprints cut from logs, half a line's tokens are words some
 *      fingerprint uses, but few of its adjacent pairs are any phrase's
 *      anchor pair: the bitmap is what most tokens cost;
 *   3. the queries anchored by an atom found, and the context's anchorless
 *      queries, are candidates; each is run once as a postfix program. An
 *      atom no query is anchored by (the NOT of a query, the second phrase of
 *      an AND) is looked for in the line only when a program asks for it;
 *   4. a matching query counts the line and keeps the newest (ties: the later line).
 * The tests hold both engines to the same answers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_TOKEN_BYTES 65530
#define EMPTY_KEY UINT64_MAX
enum { OP_ATOM, OP_CTX, OP_TS, OP_TRUE, OP_FALSE, OP_AND, OP_OR, OP_NOT };

#define FILTER_BLOCKS 1024 /* by a token's top ten hash bits; two words each: 16 KiB */

typedef struct {
    PyObject_HEAD
    /* The bitmaps of anchor keys, in blocks of two words chosen by a token's
     * hash: in the first a bit for each term anchored there, in the second
     * one for each pair ending there (by the pair key's bits). A token's two
     * tests read one 16-byte block, not two places 8 KiB apart. */
    uint64_t filter[2 * FILTER_BLOCKS];
    /* anchor keys -> groups: key_group[slot]; group g's atoms are group_start[g] .. group_start[g+1] */
    uint32_t key_mask;
    uint64_t *key;          /* EMPTY_KEY: free slot */
    int32_t *key_group;
    int32_t *group_start, *group_atom, *group_off; /* group_off: where the key's tokens start in the atom */
    /* vocabulary: every token of every atom */
    char *pool;
    Py_ssize_t *tok_off;
    int32_t *tok_len;
    uint64_t *tok_hash;
    int32_t ntok;
    /* atoms: atom_start[a] .. atom_start[a+1] in atom_tids */
    int32_t natoms;
    int32_t *atom_start, *atom_tids;
    uint8_t *atom_indexed;  /* found through its key; the others are looked for when a program asks */
    /* queries anchored per atom */
    int32_t *aq_start, *aq_query;
    /* programs: code_start[q] .. code_start[q+1] pairs in code */
    int32_t nq;
    int32_t *code_start, *code;
    int32_t max_stack;
    int32_t nleaves;
} Matcher;

typedef struct {
    int track;  /* count lines and keep the newest: the context has queries true on its every line */
    int64_t lines, newest;
    PyObject *message;
    uint8_t *values;
    int32_t *per_line;
    int32_t nper_line;
} Context;

typedef struct {       /* one token of the line being matched */
    uint64_t hash;
    Py_ssize_t off, end; /* a token longer than MAX_TOKEN_BYTES (not indexed) has no query token's length */
} Tok;

typedef struct {       /* a token or pair whose bit is set: its key is looked up after the split */
    uint64_t key;
    Py_ssize_t pos;
} Probe;

typedef struct {
    PyObject_HEAD
    Matcher *m;
    uint32_t serial;
    uint32_t *atom_seen;    /* == serial: present in the line */
    uint32_t *atom_known;   /* == serial: an unindexed atom already looked for in the line */
    uint32_t *query_seen;
    int32_t *present;
    Tok *seq;
    Probe *probes;          /* two per token at most */
    Py_ssize_t seq_cap;
    const char *text;       /* the line being matched, for unindexed atoms */
    Py_ssize_t ntokens;
    uint8_t *stack;
    int64_t *hits, *newest;
    PyObject **message;
    int64_t *ts_low, *ts_high;
    int32_t nts;
    Context *contexts;
    Py_ssize_t ncontexts, contexts_cap;
} Run;

typedef struct {
    PyObject_HEAD
    Run **runs;        /* per handle: the run of its context's matcher (a reference each) */
    Py_ssize_t *local; /* per handle: the context within that run */
    Py_ssize_t n, cap;
} Build;

static PyTypeObject MatcherType, RunType, BuildType;

/* A token's hash, from its length and its first and last eight bytes (one
 * multiply, no loop, no branch on its length): two tokens that differ only in
 * the middle share it, which costs a comparison, never a wrong answer, since
 * an atom is only found where its tokens' bytes are compared. first and last
 * are the token's first min(n, 8) bytes (little-endian, zero-padded) and, for
 * n > 8, its last eight bytes (else 0). Collisions only cost comparisons. */
static inline uint64_t mix_token(uint64_t first, uint64_t last, uint64_t n)
{
    /* the bitmaps take its top bits, which the multiply mixes from all of the others */
    return (first ^ ((last << 23) | (last >> 41)) ^ n) * 0xff51afd7ed558ccdULL;
}

/* Up to eight bytes from s (n of them, n < 8), little-endian, zero-padded. */
static inline uint64_t load_short(const char *s, Py_ssize_t n)
{
    uint64_t w = 0;
    for (Py_ssize_t i = 0; i < n; i++) w |= (uint64_t)(unsigned char)s[i] << (8 * i);
    return w;
}

static inline uint64_t load8(const char *s)
{
    uint64_t w;
    memcpy(&w, s, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline uint64_t token_hash(const char *s, Py_ssize_t n)
{
    uint64_t first = n >= 8 ? load8(s) : load_short(s, n);
    uint64_t last = n > 8 ? load8(s + n - 8) : 0;
    return mix_token(first, last, (uint64_t)n);
}

/* The key of two adjacent tokens, from their hashes: the second's top bits
 * with the first's upper-middle ones, which its multiply mixed from all of
 * its lower ones (a rotate, not a multiply). */
static inline uint64_t pair_key(uint64_t first, uint64_t second)
{
    return ((first << 8) | (first >> 56)) ^ second;
}

/* The block of the token whose hash is h: its term word, then its pair word. */
static inline const uint64_t *filter_block(const uint64_t *filter, uint64_t h) { return filter + 2 * (h >> 54); }

/* Bit (key >> 48) & 63 of a block's word. */
static inline int bit_set(uint64_t word, uint64_t key) { return (word >> ((key >> 48) & 63)) & 1; }

static inline void set_bit(uint64_t *word, uint64_t key) { *word |= 1ULL << ((key >> 48) & 63); }

static inline uint64_t slot_key(uint64_t key) { return key == EMPTY_KEY ? EMPTY_KEY - 1 : key; }

static inline uint32_t key_slot(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    return (uint32_t)(key ^ (key >> 33));
}

/* The group of atoms registered under key, or -1. */
static inline int32_t key_lookup(const Matcher *m, uint64_t key)
{
    key = slot_key(key);
    uint32_t i = key_slot(key) & m->key_mask;
    for (;;) {
        uint64_t k = m->key[i];
        if (k == key) return m->key_group[i];
        if (k == EMPTY_KEY) return -1;
        i = (i + 1) & m->key_mask;
    }
}

static inline int same(const char *a, const char *b, Py_ssize_t n)
{
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
    }
    if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        if (x != y) return 0;
        a += 4;
        b += 4;
        n -= 4;
    }
    for (; n; a++, b++, n--)
        if (*a != *b) return 0;
    return 1;
}

/* -- reading the tables from Python lists ---------------------------------- */

static int read_int(PyObject *o, int32_t *out, int32_t low, int32_t high)
{
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < low || v > high) {
        PyErr_Format(PyExc_ValueError, "value %ld out of range [%d, %d]", v, low, high);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

/* A list of lists of ints as CSR arrays (start has n + 1 entries). */
static int read_csr(PyObject *lists, int32_t **start, int32_t **items, Py_ssize_t *count, int32_t high, int pairs)
{
    PyObject *seq = PySequence_Fast(lists, "expected a sequence of sequences");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t k = PySequence_Size(PySequence_Fast_GET_ITEM(seq, i));
        if (k < 0 || (pairs && k % 2)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a program has an odd length");
            Py_DECREF(seq);
            return -1;
        }
        total += k;
    }
    if (n > INT32_MAX - 1 || total > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "tables too large");
        Py_DECREF(seq);
        return -1;
    }
    *start = PyMem_Calloc((size_t)n + 1, sizeof(int32_t));
    *items = PyMem_Calloc((size_t)total + 1, sizeof(int32_t));
    if (!*start || !*items) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        (*start)[i] = (int32_t)(pairs ? at / 2 : at);
        PyObject *inner = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, i), "expected a sequence of ints");
        if (!inner) { Py_DECREF(seq); return -1; }
        Py_ssize_t k = PySequence_Fast_GET_SIZE(inner);
        for (Py_ssize_t j = 0; j < k; j++) {
            if (read_int(PySequence_Fast_GET_ITEM(inner, j), &(*items)[at++], pairs ? INT32_MIN : 0, high) < 0) {
                Py_DECREF(inner);
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(inner);
    }
    (*start)[n] = (int32_t)(pairs ? at / 2 : at);
    *count = n;
    Py_DECREF(seq);
    return 0;
}

static void Matcher_dealloc(Matcher *m)
{
    PyMem_Free(m->key); PyMem_Free(m->key_group); PyMem_Free(m->group_start); PyMem_Free(m->group_atom);
    PyMem_Free(m->group_off); PyMem_Free(m->pool); PyMem_Free(m->tok_off); PyMem_Free(m->tok_len);
    PyMem_Free(m->tok_hash); PyMem_Free(m->atom_start); PyMem_Free(m->atom_tids); PyMem_Free(m->atom_indexed);
    PyMem_Free(m->aq_start); PyMem_Free(m->aq_query); PyMem_Free(m->code_start); PyMem_Free(m->code);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static int check_programs(Matcher *m)
{
    /* Every argument in range and the stack never under- or overflows, so the
     * per-line loop needs no checks. */
    int32_t deepest = 1;
    for (int32_t q = 0; q < m->nq; q++) {
        int32_t depth = 0;
        for (int32_t i = m->code_start[q]; i < m->code_start[q + 1]; i++) {
            int32_t op = m->code[2 * i], arg = m->code[2 * i + 1];
            switch (op) {
            case OP_ATOM: if (arg < 0 || arg >= m->natoms) goto bad; depth++; break;
            case OP_CTX: if (arg < 0 || arg >= m->nleaves) goto bad; depth++; break;
            case OP_TS: if (arg < 0) goto bad; depth++; break;
            case OP_TRUE: case OP_FALSE: depth++; break;
            case OP_NOT: if (depth < 1) goto bad; break;
            case OP_AND: case OP_OR: if (arg < 1 || arg > depth) goto bad; depth -= arg - 1; break;
            default: goto bad;
            }
            if (depth > deepest) deepest = depth;
        }
        if (depth != 1) goto bad;
        continue;
    bad:
        PyErr_Format(PyExc_ValueError, "query %d has an invalid program", q);
        return -1;
    }
    m->max_stack = deepest;
    return 0;
}

/* Register every indexed atom under its key (a term: its token's hash; a
 * phrase: the pair at its anchor offset), in groups of atoms sharing a key. */
static int build_keys(Matcher *m, PyObject *anchor)
{
    int32_t natoms = m->natoms;
    PyObject *offs = PySequence_Fast(anchor, "atom_anchor must be a sequence of ints");
    if (!offs) return -1;
    if (PySequence_Fast_GET_SIZE(offs) != natoms) {
        Py_DECREF(offs);
        PyErr_SetString(PyExc_ValueError, "one anchor per atom");
        return -1;
    }
    int32_t *group_of = PyMem_Calloc((size_t)natoms + 1, sizeof(int32_t));
    int32_t *offset_of = PyMem_Calloc((size_t)natoms + 1, sizeof(int32_t));
    int32_t *fill = PyMem_Calloc((size_t)natoms + 2, sizeof(int32_t));
    uint32_t size = 16;
    while (size < 2 * (uint64_t)natoms + 16) size <<= 1;
    m->key_mask = size - 1;
    m->key = PyMem_Malloc(size * sizeof(uint64_t));
    m->key_group = PyMem_Calloc(size, sizeof(int32_t));
    m->group_start = PyMem_Calloc((size_t)natoms + 2, sizeof(int32_t));
    m->group_atom = PyMem_Calloc((size_t)natoms + 1, sizeof(int32_t));
    m->group_off = PyMem_Calloc((size_t)natoms + 1, sizeof(int32_t));
    int rc = -1;
    if (!group_of || !offset_of || !fill || !m->key || !m->key_group || !m->group_start || !m->group_atom ||
        !m->group_off) {
        PyErr_NoMemory();
        goto done;
    }
    for (uint32_t k = 0; k < size; k++) m->key[k] = EMPTY_KEY;
    int32_t ngroups = 0;
    for (int32_t a = 0; a < natoms; a++) {
        int32_t len = m->atom_start[a + 1] - m->atom_start[a];
        if (read_int(PySequence_Fast_GET_ITEM(offs, a), &offset_of[a], 0, len > 1 ? len - 2 : 0) < 0) goto done;
        group_of[a] = -1;
        if (!m->atom_indexed[a]) continue;
        const int32_t *tids = m->atom_tids + m->atom_start[a] + offset_of[a];
        uint64_t key = len == 1 ? m->tok_hash[tids[0]] : pair_key(m->tok_hash[tids[0]], m->tok_hash[tids[1]]);
        if (len == 1)
            set_bit(m->filter + 2 * (key >> 54), key);
        else /* in the block of the pair's second token */
            set_bit(m->filter + 2 * (m->tok_hash[tids[1]] >> 54) + 1, key);
        int32_t group = key_lookup(m, key);
        if (group < 0) {
            uint64_t stored = slot_key(key);
            uint32_t k = key_slot(stored) & m->key_mask;
            while (m->key[k] != EMPTY_KEY) k = (k + 1) & m->key_mask;
            m->key[k] = stored;
            m->key_group[k] = group = ngroups++;
        }
        group_of[a] = group;
        m->group_start[group + 1]++;
    }
    for (int32_t g = 0; g < ngroups; g++) m->group_start[g + 1] += m->group_start[g];
    for (int32_t a = 0; a < natoms; a++) {
        int32_t g = group_of[a];
        if (g < 0) continue;
        int32_t at = m->group_start[g] + fill[g]++;
        m->group_atom[at] = a;
        m->group_off[at] = offset_of[a];
    }
    rc = 0;
done:
    Py_DECREF(offs);
    PyMem_Free(group_of);
    PyMem_Free(offset_of);
    PyMem_Free(fill);
    return rc;
}

static PyObject *Matcher_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *vocab, *atoms, *anchor, *atom_queries, *code;
    int nleaves;
    static char *kwlist[] = {"vocab", "atoms", "atom_anchor", "atom_queries", "code", "leaves", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOi", kwlist, &vocab, &atoms, &anchor, &atom_queries, &code,
                                     &nleaves))
        return NULL;
    if (nleaves < 0) { PyErr_SetString(PyExc_ValueError, "leaves < 0"); return NULL; }
    Matcher *m = (Matcher *)type->tp_alloc(type, 0);
    if (!m) return NULL;
    m->nleaves = nleaves;
    PyObject *words = PySequence_Fast(vocab, "vocab must be a sequence of str");
    if (!words) goto fail;
    Py_ssize_t ntok = PySequence_Fast_GET_SIZE(words), pool_size = 0;
    if (ntok > INT32_MAX / 4) { Py_DECREF(words); PyErr_SetString(PyExc_OverflowError, "vocabulary too large"); goto fail; }
    m->ntok = (int32_t)ntok;
    m->tok_off = PyMem_Calloc((size_t)ntok + 1, sizeof(Py_ssize_t));
    m->tok_len = PyMem_Calloc((size_t)ntok + 1, sizeof(int32_t));
    m->tok_hash = PyMem_Calloc((size_t)ntok + 1, sizeof(uint64_t));
    if (!m->tok_off || !m->tok_len || !m->tok_hash) { Py_DECREF(words); PyErr_NoMemory(); goto fail; }
    for (Py_ssize_t i = 0; i < ntok; i++) {
        Py_ssize_t n;
        if (!PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(words, i), &n)) { Py_DECREF(words); goto fail; }
        if (n > MAX_TOKEN_BYTES) { Py_DECREF(words); PyErr_SetString(PyExc_ValueError, "token too long"); goto fail; }
        m->tok_off[i] = pool_size;
        m->tok_len[i] = (int32_t)n;
        pool_size += n;
    }
    m->pool = PyMem_Malloc((size_t)pool_size + 1);
    if (!m->pool) { Py_DECREF(words); PyErr_NoMemory(); goto fail; }
    for (Py_ssize_t i = 0; i < ntok; i++) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(words, i), &n);
        memcpy(m->pool + m->tok_off[i], s, (size_t)n);
        m->tok_hash[i] = token_hash(s, n);
    }
    Py_DECREF(words);

    Py_ssize_t natoms, naq, nq;
    if (read_csr(atoms, &m->atom_start, &m->atom_tids, &natoms, ntok ? (int32_t)ntok - 1 : -1, 0) < 0) goto fail;
    m->natoms = (int32_t)natoms;
    for (Py_ssize_t a = 0; a < natoms; a++)
        if (m->atom_start[a + 1] == m->atom_start[a]) { PyErr_SetString(PyExc_ValueError, "empty atom"); goto fail; }
    if (read_csr(code, &m->code_start, &m->code, &nq, INT32_MAX, 1) < 0) goto fail;
    m->nq = (int32_t)nq;
    if (read_csr(atom_queries, &m->aq_start, &m->aq_query, &naq, nq ? (int32_t)nq - 1 : -1, 0) < 0) goto fail;
    if (naq != natoms) { PyErr_SetString(PyExc_ValueError, "one query list per atom"); goto fail; }
    m->atom_indexed = PyMem_Calloc((size_t)natoms + 1, 1);
    if (!m->atom_indexed) { PyErr_NoMemory(); goto fail; }
    for (Py_ssize_t a = 0; a < natoms; a++) m->atom_indexed[a] = m->aq_start[a + 1] > m->aq_start[a];
    if (build_keys(m, anchor) < 0) goto fail;
    if (check_programs(m) < 0) goto fail;
    return (PyObject *)m;
fail:
    Py_DECREF(m);
    return NULL;
}

/* -- a build's run ------------------------------------------------------------ */

static void Run_dealloc(Run *r)
{
    if (r->m) {
        for (int32_t q = 0; q < r->m->nq; q++) Py_XDECREF(r->message ? r->message[q] : NULL);
    }
    for (Py_ssize_t c = 0; c < r->ncontexts; c++) {
        Py_XDECREF(r->contexts[c].message);
        PyMem_Free(r->contexts[c].values);
        PyMem_Free(r->contexts[c].per_line);
    }
    PyMem_Free(r->contexts);
    PyMem_Free(r->atom_seen); PyMem_Free(r->atom_known); PyMem_Free(r->query_seen); PyMem_Free(r->present);
    PyMem_Free(r->seq); PyMem_Free(r->probes);
    PyMem_Free(r->stack); PyMem_Free(r->hits); PyMem_Free(r->newest); PyMem_Free(r->message);
    PyMem_Free(r->ts_low); PyMem_Free(r->ts_high);
    Py_XDECREF(r->m);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyObject *Matcher_start(Matcher *m, PyObject *bounds)
{
    PyObject *seq = PySequence_Fast(bounds, "bounds must be a sequence of (low, high)");
    if (!seq) return NULL;
    Run *r = (Run *)RunType.tp_alloc(&RunType, 0);
    if (!r) { Py_DECREF(seq); return NULL; }
    Py_INCREF(m);
    r->m = m;
    r->serial = 0;
    size_t na = (size_t)m->natoms + 1, nq = (size_t)m->nq + 1;
    r->atom_seen = PyMem_Calloc(na, sizeof(uint32_t));
    r->atom_known = PyMem_Calloc(na, sizeof(uint32_t));
    r->query_seen = PyMem_Calloc(nq, sizeof(uint32_t));
    r->present = PyMem_Calloc(na, sizeof(int32_t));
    r->stack = PyMem_Calloc((size_t)m->max_stack + 1, 1);
    r->hits = PyMem_Calloc(nq, sizeof(int64_t));
    r->newest = PyMem_Calloc(nq, sizeof(int64_t));
    r->message = PyMem_Calloc(nq, sizeof(PyObject *));
    r->nts = (int32_t)PySequence_Fast_GET_SIZE(seq);
    r->ts_low = PyMem_Calloc((size_t)r->nts + 1, sizeof(int64_t));
    r->ts_high = PyMem_Calloc((size_t)r->nts + 1, sizeof(int64_t));
    r->seq_cap = 256;
    r->seq = PyMem_Malloc((size_t)r->seq_cap * sizeof(Tok));
    r->probes = PyMem_Malloc(2 * (size_t)r->seq_cap * sizeof(Probe));
    if (!r->atom_seen || !r->atom_known || !r->query_seen || !r->present || !r->stack || !r->hits || !r->newest ||
        !r->message || !r->ts_low || !r->ts_high || !r->seq || !r->probes) {
        Py_DECREF(seq); Py_DECREF(r); return PyErr_NoMemory();
    }
    for (int32_t i = 0; i < r->nts; i++) {
        long long lo, hi;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "LL", &lo, &hi)) { Py_DECREF(seq); Py_DECREF(r); return NULL; }
        r->ts_low[i] = lo;
        r->ts_high[i] = hi;
    }
    Py_DECREF(seq);
    for (int32_t q = 0; q < m->nq; q++)  /* every OP_TS argument must name a range */
        for (int32_t i = m->code_start[q]; i < m->code_start[q + 1]; i++)
            if (m->code[2 * i] == OP_TS && m->code[2 * i + 1] >= r->nts) {
                Py_DECREF(r);
                return PyErr_Format(PyExc_ValueError, "query %d names time range %d of %d", q, m->code[2 * i + 1], r->nts);
            }
    return (PyObject *)r;
}

static PyObject *Run_add_context(Run *r, PyObject *args)
{
    Py_buffer values;
    PyObject *per_line;
    int track;
    if (!PyArg_ParseTuple(args, "y*Op", &values, &per_line, &track)) return NULL;
    if (values.len != r->m->nleaves) {
        PyBuffer_Release(&values);
        return PyErr_Format(PyExc_ValueError, "%zd context values for %d leaves", values.len, r->m->nleaves);
    }
    if (r->ncontexts == r->contexts_cap) {
        Py_ssize_t cap = r->contexts_cap ? 2 * r->contexts_cap : 16;
        Context *grown = PyMem_Realloc(r->contexts, (size_t)cap * sizeof(Context));
        if (!grown) { PyBuffer_Release(&values); return PyErr_NoMemory(); }
        r->contexts = grown;
        r->contexts_cap = cap;
    }
    Context c = {track, 0, INT64_MIN, NULL, NULL, NULL, 0};
    c.values = PyMem_Malloc((size_t)values.len + 1);
    if (!c.values) { PyBuffer_Release(&values); return PyErr_NoMemory(); }
    memcpy(c.values, values.buf, (size_t)values.len);
    PyBuffer_Release(&values);
    PyObject *seq = PySequence_Fast(per_line, "per_line must be a sequence of query numbers");
    if (!seq) { PyMem_Free(c.values); return NULL; }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    c.per_line = PyMem_Calloc((size_t)n + 1, sizeof(int32_t));
    if (!c.per_line) { Py_DECREF(seq); PyMem_Free(c.values); return PyErr_NoMemory(); }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (read_int(PySequence_Fast_GET_ITEM(seq, i), &c.per_line[i], 0, r->m->nq - 1) < 0) {
            Py_DECREF(seq); PyMem_Free(c.values); PyMem_Free(c.per_line); return NULL;
        }
    }
    Py_DECREF(seq);
    c.nper_line = (int32_t)n;
    r->contexts[r->ncontexts] = c;
    return PyLong_FromSsize_t(r->ncontexts++);
}

/* Whether the atom's tokens are the line's from position from on. */
static inline int atom_at(const Run *r, int32_t atom, Py_ssize_t from)
{
    const Matcher *m = r->m;
    int32_t alen = m->atom_start[atom + 1] - m->atom_start[atom];
    if (from < 0 || from + alen > r->ntokens) return 0;
    const int32_t *want = m->atom_tids + m->atom_start[atom];
    for (int32_t t = 0; t < alen; t++) {
        const Tok *tok = &r->seq[from + t];
        int32_t w = want[t];
        if (tok->hash != m->tok_hash[w] || tok->end - tok->off != m->tok_len[w] ||
            !same(r->text + tok->off, m->pool + m->tok_off[w], m->tok_len[w]))
            return 0;
    }
    return 1;
}

/* Whether an atom no query is anchored by is in the line (asked once per line at most). */
static int atom_in_line(Run *r, int32_t atom)
{
    if (r->atom_known[atom] != r->serial) {
        r->atom_known[atom] = r->serial;
        for (Py_ssize_t from = 0; from < r->ntokens; from++) {
            if (atom_at(r, atom, from)) {
                r->atom_seen[atom] = r->serial;
                break;
            }
        }
    }
    return r->atom_seen[atom] == r->serial;
}

static inline int holds(Run *r, int32_t q, const uint8_t *values, int64_t micros)
{
    const Matcher *m = r->m;
    uint8_t *st = r->stack;
    int32_t sp = 0;
    const int32_t *c = m->code + 2 * (Py_ssize_t)m->code_start[q], *end = m->code + 2 * (Py_ssize_t)m->code_start[q + 1];
    for (; c < end; c += 2) {
        int32_t arg = c[1];
        switch (c[0]) {
        case OP_ATOM:
            st[sp++] = m->atom_indexed[arg] ? r->atom_seen[arg] == r->serial : atom_in_line(r, arg);
            break;
        case OP_CTX: st[sp++] = values[arg] != 0; break;
        case OP_TS: st[sp++] = micros >= r->ts_low[arg] && micros <= r->ts_high[arg]; break;
        case OP_TRUE: st[sp++] = 1; break;
        case OP_FALSE: st[sp++] = 0; break;
        case OP_NOT: st[sp - 1] ^= 1; break;
        case OP_AND: {
            uint8_t v = 1;
            for (int32_t i = 1; i <= arg; i++) v &= st[sp - i];
            sp -= arg;
            st[sp++] = v;
            break;
        }
        default: { /* OP_OR */
            uint8_t v = 0;
            for (int32_t i = 1; i <= arg; i++) v |= st[sp - i];
            sp -= arg;
            st[sp++] = v;
            break;
        }
        }
    }
    return st[0];
}

static inline void record(Run *r, int32_t q, int64_t micros, PyObject *message)
{
    if (r->hits[q]++ == 0 || micros >= r->newest[q]) {
        r->newest[q] = micros;
        Py_INCREF(message);
        Py_XSETREF(r->message[q], message);
    }
}

static int grow_seq(Run *r)
{
    Py_ssize_t cap = 2 * r->seq_cap;
    Tok *seq = PyMem_Realloc(r->seq, (size_t)cap * sizeof(Tok));
    if (!seq) { PyErr_NoMemory(); return -1; }
    r->seq = seq;
    Probe *probes = PyMem_Realloc(r->probes, 2 * (size_t)cap * sizeof(Probe));
    if (!probes) { PyErr_NoMemory(); return -1; }
    r->probes = probes;
    r->seq_cap = cap;
    return 0;
}

/* tantivy's whitespace tokenizer splits on ASCII whitespace only. */
static unsigned char SPACE[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\f'] = 1, ['\r'] = 1};
static inline int is_space(char c) { return SPACE[(unsigned char)c]; }

#ifdef __SSE2__
static inline uint64_t ws16(__m128i c, __m128i sp, __m128i vt, __m128i shift, __m128i below)
{
    __m128i control = _mm_andnot_si128(_mm_cmpeq_epi8(c, vt), _mm_cmplt_epi8(_mm_add_epi8(c, shift), below));
    return (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_or_si128(control, _mm_cmpeq_epi8(c, sp)));
}
#endif

/* A bit per byte of s[0 .. min(left, 64)): set for whitespace, and for every
 * position at or past the end of the line (so a last token ends there).
 * before: how many bytes of the line come before s. */
static inline uint64_t whitespace(const char *s, Py_ssize_t left, Py_ssize_t before)
{
    uint64_t mask = 0;
    int i = 0;
    if (left <= 0) return UINT64_MAX;
#ifdef __SSE2__
    /* ' ', or '\t' .. '\r' (9 .. 13: shifted to -128 .. -124, the only bytes
     * below -123 as signed) but not '\v' (11): five operations, not nine */
    const __m128i sp = _mm_set1_epi8(' '), vt = _mm_set1_epi8('\v'), shift = _mm_set1_epi8((char)(0x80 - 9)),
                  below = _mm_set1_epi8(-123);
#define WS16(p) ws16(_mm_loadu_si128((const __m128i *)(p)), sp, vt, shift, below)
    for (; i + 16 <= 64 && i + 16 <= left; i += 16) mask |= WS16(s + i) << i;
    if (i < 64 && i < left && before + left >= 16) {
        /* the line's last bytes: the 16 ending at its end, none read past it */
        Py_ssize_t rest = left - i; /* < 16 */
        mask |= (WS16(s + left - 16) >> (16 - rest)) << i;
        i = 64;
    }
#undef WS16
#endif
    for (; i < 64 && i < left; i++) mask |= (uint64_t)is_space(s[i]) << i;
    if (left < 64) mask |= UINT64_MAX << left;
    return mask;
}

/* The first min(k, 8) bytes of a token, by its length: KEEP[min(k, 8)]. */
static const uint64_t KEEP[9] = {0, 0xff, 0xffff, 0xffffff, 0xffffffff, 0xffffffffffULL, 0xffffffffffffULL,
                                 0xffffffffffffffULL, UINT64_MAX};

/* What splitting a line keeps: its tokens so far, and the probes of their keys. */
typedef struct {
    const uint64_t *filter;
    const char *s;
    Py_ssize_t n;
    Tok *seq;
    Py_ssize_t len;    /* tokens so far */
    Probe *probe;      /* the next probe's place */
    uint64_t previous; /* the token before's hash */
} Split;

/* One token, s[start .. at): its hash, kept, and its key and that of the
 * pair it ends tested against the bitmaps (a bitmap with no key set is all
 * zeros: no flag to test). */
static inline void split_token(Split *t, Py_ssize_t start, Py_ssize_t at)
{
    Py_ssize_t pos = t->len++;
    const char *s = t->s;
    Py_ssize_t n = t->n, k = at - start;
    uint64_t first, last;
    if (start + 8 <= n) { /* no branch on the token's length: it is unpredictable */
        uint64_t longer = (uint64_t)0 - (uint64_t)(k > 8);
        first = load8(s + start) & KEEP[k < 8 ? k : 8];
        last = load8(s + start + ((at - 8 - start) & (Py_ssize_t)longer)) & longer;
    } else { /* near the end of the line (k < 8): no reading past it */
        first = n >= 8 ? (load8(s + n - 8) >> (8 * (start + 8 - n))) & KEEP[k] : load_short(s + start, k);
        last = 0;
    }
    uint64_t h = mix_token(first, last, (uint64_t)k);
    Tok *tok = &t->seq[pos];
    tok->hash = h;
    tok->off = start;
    tok->end = at;
    const uint64_t *block = filter_block(t->filter, h);
    if (bit_set(block[0], h)) {
        t->probe->key = h;
        t->probe++->pos = pos;
    }
    uint64_t key = pair_key(t->previous, h);
    if (bit_set(block[1], key) && pos) {
        t->probe->key = key;
        t->probe++->pos = pos - 1;
    }
    t->previous = h;
}

/* Split the line s[0 .. n) into r->seq, from the edges of its whitespace, 64
 * bytes at a time, testing each token and each pair of adjacent tokens
 * against the bitmaps; where a bit is set, a probe is kept (*nprobes of them)
 * for match_line to look up. Returns the number of tokens, -1 on no memory.
 * Not inlined, so that its loop's values stay in registers: this loop is
 * what every token of every line costs. */
static Py_ssize_t __attribute__((noinline)) split_line(Run *r, const char *s, Py_ssize_t n, Py_ssize_t *nprobes_out)
{
    Split t = {r->m->filter, s, n, r->seq, 0, r->probes, 0};
    Py_ssize_t pending = -1; /* where a token running into the next block starts */
    uint64_t carry = 1;      /* before the line: whitespace */
    for (Py_ssize_t base = 0; base < n + 1; base += 64) {
        uint64_t ws = whitespace(s + base, n - base, base);
        uint64_t before = (ws << 1) | carry; /* whitespace at the byte before */
        uint64_t starts = ~ws & before, ends = ws & ~before;
        carry = ws >> 63;
        if (t.len + 33 > r->seq_cap) { /* at most 32 tokens end in 64 bytes */
            Py_ssize_t nprobes = t.probe - r->probes;
            if (grow_seq(r) < 0) return -1;
            t.seq = r->seq;
            t.probe = r->probes + nprobes;
        }
        if (pending >= 0 && ends) { /* the token running in from the blocks before ends here */
            split_token(&t, pending, base + __builtin_ctzll(ends));
            ends &= ends - 1;
            pending = -1;
        }
        while (ends) {
            split_token(&t, base + (unsigned)__builtin_ctzll(starts), base + (unsigned)__builtin_ctzll(ends));
            ends &= ends - 1;
            starts &= starts - 1;
        }
        if (starts) pending = base + __builtin_ctzll(starts);
    }
    *nprobes_out = t.probe - r->probes;
    return t.len;
}

static int match_line(Run *r, Py_ssize_t ctx, int64_t micros, PyObject *message, PyObject *tokens)
{
    if (ctx < 0 || ctx >= r->ncontexts) {
        PyErr_Format(PyExc_IndexError, "no context %zd in this build", ctx);
        return -1;
    }
    /* The message is only kept (never read), and only touched when it is kept:
     * a line's objects are cold in the cache by the time a batch is matched. */
    if (!PyUnicode_Check(tokens)) {
        PyErr_SetString(PyExc_TypeError, "tokens must be str");
        return -1;
    }
    const Matcher *m = r->m;
    Context *c = &r->contexts[ctx];
    if (c->track) {
        c->lines++;
        if (micros >= c->newest) {
            c->newest = micros;
            Py_INCREF(message);
            Py_XSETREF(c->message, message);
        }
    }
    Py_ssize_t n;
    PyObject *encoded = NULL;
    const char *s;
    if (PyUnicode_IS_COMPACT_ASCII(tokens)) { /* its bytes are its UTF-8: no call */
        s = (const char *)PyUnicode_DATA(tokens);
        n = PyUnicode_GET_LENGTH(tokens);
    } else {
        s = PyUnicode_AsUTF8AndSize(tokens, &n);
    }
    if (!s) { /* lone surrogates: no query token can equal them, but lengths count */
        PyErr_Clear();
        encoded = PyUnicode_AsEncodedString(tokens, "utf-8", "surrogatepass");
        if (!encoded) return -1;
        s = PyBytes_AS_STRING(encoded);
        n = PyBytes_GET_SIZE(encoded);
    }
    if (++r->serial == 0) { /* wrapped: forget every mark */
        memset(r->atom_seen, 0, ((size_t)m->natoms + 1) * sizeof(uint32_t));
        memset(r->atom_known, 0, ((size_t)m->natoms + 1) * sizeof(uint32_t));
        memset(r->query_seen, 0, ((size_t)m->nq + 1) * sizeof(uint32_t));
        r->serial = 1;
    }
    const uint32_t serial = r->serial;
    Py_ssize_t nprobes = 0, len = split_line(r, s, n, &nprobes);
    if (len < 0) { Py_XDECREF(encoded); return -1; }
    r->text = s;
    r->ntokens = len;
    int32_t npresent = 0;
    for (Py_ssize_t j = 0; j < nprobes; j++) {
        int32_t group = key_lookup(m, r->probes[j].key);
        if (group < 0) continue;
        Py_ssize_t pos = r->probes[j].pos;
        for (int32_t e = m->group_start[group]; e < m->group_start[group + 1]; e++) {
            int32_t atom = m->group_atom[e];
            if (r->atom_seen[atom] == serial) continue;
            if (atom_at(r, atom, pos - m->group_off[e])) {
                r->atom_seen[atom] = serial;
                r->present[npresent++] = atom;
            }
        }
    }
    for (int32_t a = 0; a < npresent; a++) {
        int32_t atom = r->present[a];
        for (int32_t j = m->aq_start[atom]; j < m->aq_start[atom + 1]; j++) {
            int32_t q = m->aq_query[j];
            if (r->query_seen[q] == serial) continue;
            r->query_seen[q] = serial;
            if (holds(r, q, c->values, micros)) record(r, q, micros, message);
        }
    }
    for (int32_t j = 0; j < c->nper_line; j++) {
        int32_t q = c->per_line[j];
        if (r->query_seen[q] == serial) continue;
        r->query_seen[q] = serial;
        if (holds(r, q, c->values, micros)) record(r, q, micros, message);
    }
    r->text = NULL;
    Py_XDECREF(encoded); /* the tokens were read from it until here */
    return 0;
}

static PyObject *Run_results(Run *r, PyObject *unused)
{
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (int32_t q = 0; q < r->m->nq; q++) {
        if (!r->hits[q]) continue;
        PyObject *row = Py_BuildValue("(iLLO)", q, (long long)r->hits[q], (long long)r->newest[q], r->message[q]);
        if (!row || PyList_Append(out, row) < 0) { Py_XDECREF(row); Py_DECREF(out); return NULL; }
        Py_DECREF(row);
    }
    return out;
}

static PyObject *Run_context_stats(Run *r, PyObject *unused)
{
    PyObject *out = PyList_New(r->ncontexts);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < r->ncontexts; i++) {
        Context *c = &r->contexts[i];
        PyObject *row = Py_BuildValue("(LLO)", (long long)c->lines, (long long)c->newest,
                                      c->message ? c->message : Py_None);
        if (!row) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, i, row);
    }
    return out;
}

static PyMethodDef Matcher_methods[] = {
    {"start", (PyCFunction)Matcher_start, METH_O, "A build's run; the argument: each time range's (low, high)."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Run_methods[] = {
    {"add_context", (PyCFunction)Run_add_context, METH_VARARGS, "add_context(values, per_line, track) -> handle"},
    {"results", (PyCFunction)Run_results, METH_NOARGS, "[(query, hits, newest micros, newest message)]"},
    {"context_stats", (PyCFunction)Run_context_stats, METH_NOARGS, "[(lines, newest micros, newest message)]"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "elastic_recheck._percolate.Matcher",
    .tp_basicsize = sizeof(Matcher),
    .tp_dealloc = (destructor)Matcher_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The tables every build's run shares (see percolate_engine.Matcher).",
    .tp_methods = Matcher_methods,
    .tp_new = Matcher_new,
};

static PyTypeObject RunType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "elastic_recheck._percolate.Run",
    .tp_basicsize = sizeof(Run),
    .tp_dealloc = (destructor)Run_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One build's matching state.",
    .tp_methods = Run_methods,
};

/* -- a build: handles over the runs of several matchers --------------------------
 * The percolator compiles one matcher per kind of context (what its context
 * clauses answer), so a line is only checked against the queries that can
 * match in its context; a Build sends each line to its context's run. */

static PyObject *Build_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "Build() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static void Build_dealloc(Build *b)
{
    for (Py_ssize_t i = 0; i < b->n; i++) Py_XDECREF(b->runs[i]);
    PyMem_Free(b->runs);
    PyMem_Free(b->local);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyObject *Build_add(Build *b, PyObject *args)
{
    PyObject *run;
    Py_ssize_t local;
    if (!PyArg_ParseTuple(args, "O!n", &RunType, &run, &local)) return NULL;
    if (local < 0 || local >= ((Run *)run)->ncontexts)
        return PyErr_Format(PyExc_IndexError, "no context %zd in that run", local);
    if (b->n == b->cap) {
        Py_ssize_t cap = b->cap ? 2 * b->cap : 16;
        Run **runs = PyMem_Realloc(b->runs, (size_t)cap * sizeof(Run *));
        if (!runs) return PyErr_NoMemory();
        b->runs = runs;
        Py_ssize_t *locals = PyMem_Realloc(b->local, (size_t)cap * sizeof(Py_ssize_t));
        if (!locals) return PyErr_NoMemory();
        b->local = locals;
        b->cap = cap;
    }
    Py_INCREF(run);
    b->runs[b->n] = (Run *)run;
    b->local[b->n] = local;
    return PyLong_FromSsize_t(b->n++);
}

static int build_handle(Build *b, PyObject *arg, Run **run, Py_ssize_t *local)
{
    Py_ssize_t handle = PyLong_AsSsize_t(arg);
    if (handle == -1 && PyErr_Occurred()) return -1;
    if (handle < 0 || handle >= b->n) {
        PyErr_Format(PyExc_IndexError, "no context %zd in this build", handle);
        return -1;
    }
    *run = b->runs[handle];
    *local = b->local[handle];
    return 0;
}

/* A line's time in microseconds. PyLong_AsLongLong converts an int of more
 * than one 30-bit digit (every time since 1970 in micros) through a byte
 * array, ~200 instructions, as much as reading a dozen tokens costs;
 * PyLong_AsLongLongAndOverflow reads its digits. Same errors. */
static inline int read_micros(PyObject *o, long long *out)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C long long");
        return -1;
    }
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

static PyObject *Build_line(Build *b, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) return PyErr_Format(PyExc_TypeError, "line() takes 4 arguments (%zd given)", nargs);
    Run *run;
    Py_ssize_t local;
    if (build_handle(b, args[0], &run, &local) < 0) return NULL;
    long long micros;
    if (read_micros(args[1], &micros) < 0) return NULL;
    if (match_line(run, local, micros, args[2], args[3]) < 0) return NULL;
    Py_RETURN_NONE;
}

#define PREFETCH_AHEAD 2 /* lines: a line is matched in ~0.4 us, a fetch from memory takes ~0.1 */

static PyObject *Build_lines(Build *b, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) return PyErr_Format(PyExc_TypeError, "lines() takes 4 arguments (%zd given)", nargs);
    Run *run;
    Py_ssize_t local;
    if (build_handle(b, args[0], &run, &local) < 0) return NULL;
    PyObject *when = PySequence_Fast(args[1], "micros must be a sequence");
    PyObject *messages = when ? PySequence_Fast(args[2], "messages must be a sequence") : NULL;
    PyObject *tokens = messages ? PySequence_Fast(args[3], "tokens must be a sequence") : NULL;
    PyObject *result = NULL;
    if (!tokens) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(when);
    if (PySequence_Fast_GET_SIZE(messages) != n || PySequence_Fast_GET_SIZE(tokens) != n) {
        PyErr_SetString(PyExc_ValueError, "micros, messages and tokens differ in length");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n) {
            /* A batch's lines were analysed (and their objects made) before
             * it is matched: by then their text has left the cache, and each
             * line would wait for it. Fetch a later line's text (an ASCII
             * str's bytes follow its header) and time while this one is
             * matched; the message is only read when it is kept. */
            const char *next = (const char *)PySequence_Fast_GET_ITEM(tokens, i + PREFETCH_AHEAD);
            __builtin_prefetch(next);
            __builtin_prefetch(next + 64);
            __builtin_prefetch(next + 128);
            __builtin_prefetch(next + 192);
            __builtin_prefetch(PySequence_Fast_GET_ITEM(when, i + PREFETCH_AHEAD));
        }
        long long micros;
        if (read_micros(PySequence_Fast_GET_ITEM(when, i), &micros) < 0) goto done;
        if (match_line(run, local, micros, PySequence_Fast_GET_ITEM(messages, i), PySequence_Fast_GET_ITEM(tokens, i)) < 0)
            goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(when);
    Py_XDECREF(messages);
    Py_XDECREF(tokens);
    return result;
}

static PyMethodDef Build_methods[] = {
    {"add", (PyCFunction)Build_add, METH_VARARGS, "add(run, context) -> handle"},
    {"line", (PyCFunction)(void (*)(void))Build_line, METH_FASTCALL, "line(handle, micros, message, tokens)"},
    {"lines", (PyCFunction)(void (*)(void))Build_lines, METH_FASTCALL, "lines(handle, micros, messages, tokens)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BuildType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "elastic_recheck._percolate.Build",
    .tp_basicsize = sizeof(Build),
    .tp_dealloc = (destructor)Build_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One build's contexts, each on the run of its matcher.",
    .tp_methods = Build_methods,
    .tp_new = Build_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_percolate", "The percolator's per-line matcher.", -1, NULL,
};

PyMODINIT_FUNC PyInit__percolate(void)
{
    if (PyType_Ready(&MatcherType) < 0 || PyType_Ready(&RunType) < 0 || PyType_Ready(&BuildType) < 0) return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (!mod) return NULL;
    Py_INCREF(&MatcherType);
    if (PyModule_AddObject(mod, "Matcher", (PyObject *)&MatcherType) < 0) {
        Py_DECREF(&MatcherType);
        Py_DECREF(mod);
        return NULL;
    }
    Py_INCREF(&BuildType);
    if (PyModule_AddObject(mod, "Build", (PyObject *)&BuildType) < 0) {
        Py_DECREF(&BuildType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
