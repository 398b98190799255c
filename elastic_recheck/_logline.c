/* The head of a log line: its timestamp (as microseconds since the epoch) and,
 * within 80 bytes after it, its log level.
 *
 * Why C: ingest reads every line of every log file, and the regular
 * expressions plus a datetime per line were the largest Python cost of ingest
 * after tokenising (~3 us a line; this is ~0.2 us). The Python reading it
 * replaces is kept in tests/logline_reference.py, and tests/test_ingest.py
 * holds the two to the same answers on generated lines:
 *
 *   ISO     ^\s?(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)?
 *   syslog  ^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?   (then one space)
 *   level   (?:^|[\s\]:|])(DEBUG|INFO|AUDIT|WARNING|WARN|ERROR|CRITICAL|TRACE|FATAL)(?=[\s:])
 *           searched from the end of the timestamp to 80 bytes after it
 *
 * A timestamp that names no real moment (month 13, 25:00, an offset of a day
 * or more) is no timestamp: the line is a continuation line.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
/* Python's \s for bytes: [ \t\n\r\f\v] */
static inline int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* The value of n digits at s; the caller has checked they are digits. */
static int digits(const unsigned char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

static int all_digits(const unsigned char *s, Py_ssize_t at, Py_ssize_t n, Py_ssize_t len)
{
    if (at + n > len) return 0;
    for (Py_ssize_t i = at; i < at + n; i++)
        if (!is_digit(s[i])) return 0;
    return 1;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))) return 29;
    return days[month - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Microseconds since the epoch, or -1 (with *ok = 0) when datetime would refuse the moment. */
static long long moment(int year, int month, int day, int hour, int minute, int second, int micro, int *ok)
{
    *ok = year >= 1 && year <= 9999 && month >= 1 && month <= 12 && day >= 1 &&
          day <= days_in_month(year, month) && hour <= 23 && minute <= 59 && second <= 59;
    if (!*ok) return -1;
    long long seconds = days_from_civil(year, month, day) * 86400LL + hour * 3600LL + minute * 60LL + second;
    return seconds * 1000000LL + micro;
}

/* Up to 9 fraction digits at s[at..]: the microseconds of the first six; *end after the last. */
static int fraction(const unsigned char *s, Py_ssize_t at, Py_ssize_t len, Py_ssize_t *end)
{
    int micro = 0, n = 0;
    while (n < 9 && at + n < len && is_digit(s[at + n])) {
        if (n < 6) micro = micro * 10 + (s[at + n] - '0');
        n++;
    }
    for (int k = n; k < 6; k++) micro *= 10;
    *end = at + n;
    return n ? micro : -1;
}

/* The ISO reading; returns 1 and sets *ts and *end, 0 when it does not apply. */
static int iso_head(const unsigned char *s, Py_ssize_t len, long long *ts, Py_ssize_t *end)
{
    Py_ssize_t i = (len > 0 && is_space(s[0])) ? 1 : 0;
    /* YYYY-MM-DD[ T]HH:MM:SS is 19 bytes */
    if (i + 19 > len) return 0;
    const unsigned char *p = s + i;
    if (!all_digits(p, 0, 4, 4) || p[4] != '-' || !all_digits(p, 5, 2, 7) || p[7] != '-' ||
        !all_digits(p, 8, 2, 10) || (p[10] != ' ' && p[10] != 'T') || !all_digits(p, 11, 2, 13) ||
        p[13] != ':' || !all_digits(p, 14, 2, 16) || p[16] != ':' || !all_digits(p, 17, 2, 19))
        return 0;
    i += 19;
    int micro = 0;
    if (i + 1 < len && (s[i] == '.' || s[i] == ',') && is_digit(s[i + 1])) {
        Py_ssize_t after;
        micro = fraction(s, i + 1, len, &after);
        i = after;
    }
    long long offset_minutes = 0;
    if (i < len && s[i] == 'Z') {
        i += 1;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        Py_ssize_t j = i + 1;
        if (all_digits(s, j, 2, len)) {
            Py_ssize_t k = j + 2;
            if (k < len && s[k] == ':') k++;
            if (all_digits(s, k, 2, len)) {
                offset_minutes = digits(s + j, 2) * 60 + digits(s + k, 2);
                if (offset_minutes >= 24 * 60) return 0;  /* datetime.timezone refuses it */
                if (s[i] == '-') offset_minutes = -offset_minutes;
                i = k + 2;
            }
        }
    }
    int ok;
    long long value = moment(digits(p, 4), digits(p + 5, 2), digits(p + 8, 2), digits(p + 11, 2),
                             digits(p + 14, 2), digits(p + 17, 2), micro, &ok);
    if (!ok) return 0;
    *ts = value - offset_minutes * 60 * 1000000LL;
    *end = i;
    return 1;
}

static const char *const MONTHS[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* The syslog reading (no year in the line: ``year`` is given). */
static int syslog_head(const unsigned char *s, Py_ssize_t len, int year, long long *ts, Py_ssize_t *end)
{
    if (len < 4 || !(s[0] >= 'A' && s[0] <= 'Z') || !(s[1] >= 'a' && s[1] <= 'z') ||
        !(s[2] >= 'a' && s[2] <= 'z') || s[3] != ' ')
        return 0;
    int month = 0;
    for (int m = 0; m < 12; m++)
        if (memcmp(s, MONTHS[m], 3) == 0) month = m + 1;
    if (!month) return 0;
    Py_ssize_t i = 4;
    if (i < len && s[i] == ' ') i++;
    Py_ssize_t day_at = i;
    while (i < len && i - day_at < 2 && is_digit(s[i])) i++;
    int day_digits = (int)(i - day_at);
    if (day_digits == 0 || i >= len || s[i] != ' ') return 0;
    i++;
    if (!all_digits(s, i, 2, len) || i + 8 > len || s[i + 2] != ':' || !all_digits(s, i + 3, 2, len) ||
        s[i + 5] != ':' || !all_digits(s, i + 6, 2, len))
        return 0;
    const unsigned char *t = s + i;
    i += 8;
    int micro = 0;
    if (i + 1 < len && s[i] == '.' && is_digit(s[i + 1])) {
        Py_ssize_t after;
        int value = fraction(s, i + 1, len, &after);
        if (after < len && s[after] == ' ') {  /* else the fraction does not fit and only a space can follow */
            micro = value;
            i = after;
        }
    }
    if (i >= len || s[i] != ' ') return 0;
    int ok;
    long long value = moment(year, month, digits(s + day_at, day_digits), digits(t, 2), digits(t + 3, 2),
                             digits(t + 6, 2), micro, &ok);
    if (!ok) return 0;
    *ts = value;
    *end = i + 1;
    return 1;
}

static const char *const LEVELS[] = {"DEBUG", "INFO", "AUDIT", "WARNING", "WARN", "ERROR", "CRITICAL", "TRACE", "FATAL"};
static PyObject *level_names[9];  /* what each is reported as: WARN is WARNING, FATAL is CRITICAL */

static int level_boundary(unsigned char c) { return is_space(c) || c == ']' || c == ':' || c == '|'; }

/* The level named after ``start`` (within 80 bytes of it), or NULL. Borrowed reference. */
static PyObject *level_after(const unsigned char *s, Py_ssize_t len, Py_ssize_t start)
{
    Py_ssize_t stop = start + 80 < len ? start + 80 : len;
    for (Py_ssize_t p = start; p < stop; p++) {
        if (!level_boundary(s[p])) continue;
        for (int k = 0; k < 9; k++) {
            Py_ssize_t n = (Py_ssize_t)strlen(LEVELS[k]);
            Py_ssize_t after = p + 1 + n;
            if (after < stop && memcmp(s + p + 1, LEVELS[k], (size_t)n) == 0 && (is_space(s[after]) || s[after] == ':'))
                return level_names[k];
        }
    }
    return NULL;
}

static PyObject *line_head(PyObject *self, PyObject *args)
{
    Py_buffer line;
    int year, detect_level;
    if (!PyArg_ParseTuple(args, "y*ip", &line, &year, &detect_level)) return NULL;
    const unsigned char *s = line.buf;
    Py_ssize_t len = line.len, end = 0;
    long long ts;
    PyObject *result;
    if (iso_head(s, len, &ts, &end) || syslog_head(s, len, year, &ts, &end)) {
        PyObject *level = detect_level ? level_after(s, len, end) : NULL;
        result = Py_BuildValue("(LO)", ts, level ? level : Py_None);
    } else {
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&line);
    return result;
}

/* The head of one line (its end past "\r\n" already cut), with parse_lines'
 * New Year rule: a syslog line read as later than ``future`` is of the year
 * before. Returns 1 with *ts and *level (borrowed, or NULL) set, 0 for none. */
static int read_head(const unsigned char *s, Py_ssize_t len, int year, long long future, int detect_level,
                     long long *ts, PyObject **level)
{
    Py_ssize_t end = 0;
    if (iso_head(s, len, ts, &end)) {
        /* an ISO line has its own year: reading it again gives the same */
    } else if (syslog_head(s, len, year, ts, &end)) {
        long long before;
        Py_ssize_t end_before;
        if (*ts > future && syslog_head(s, len, year - 1, &before, &end_before)) {
            *ts = before;
            end = end_before;
        }
    } else {
        return 0;
    }
    *level = detect_level ? level_after(s, len, end) : NULL;
    return 1;
}

/* -- EventParser: parse_lines over batches of lines, in C -------------------
 *
 * Why: ingest reads every line of every log; parse_lines' Python loop, a
 * LogEvent per line and the generators around it were half the writer's
 * Python time (measured). logparse.PyEventParser is the same reading in
 * Python (no compiler), and tests/test_logline.py holds the two to the same
 * events as parse_lines. */

#define MAX_FOLDED_LINES 500
#define MAX_MESSAGE_CHARS (256 * 1024)

typedef struct {
    PyObject_HEAD
    int year, detect_level, keep_debug;
    long long future;
    long long last_time;   /* the time of the latest line with a timestamp */
    long long last;        /* the time of the latest event finished, kept or not */
    Py_ssize_t skipped;    /* DEBUG events dropped */
    int has_current;
    long long cur_micros;
    PyObject *cur_level;   /* borrowed from level_names, or NULL */
    PyObject *cur_message; /* owned */
    PyObject *folded;      /* list of str */
    PyObject *out_micros, *out_levels, *out_messages;  /* the events finished in this call */
} EventParser;

static int is_blank(const unsigned char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (!is_space(s[i])) return 0;
    return 1;
}

static PyObject *decode(const unsigned char *s, Py_ssize_t n)
{
    return PyUnicode_DecodeUTF8((const char *)s, n, "replace");
}

/* The current event, folded lines joined in, onto the output (or counted as a dropped DEBUG). */
static int finish_event(EventParser *p)
{
    PyObject *message = p->cur_message;
    p->cur_message = NULL;
    p->has_current = 0;
    if (PyList_GET_SIZE(p->folded)) {
        PyObject *parts = PyList_New(0), *joined = NULL, *sep = NULL;
        int ok = parts && PyList_Append(parts, message) == 0 &&
                 PyList_SetSlice(parts, 1, 1, p->folded) == 0 && (sep = PyUnicode_FromString("\n")) != NULL &&
                 (joined = PyUnicode_Join(sep, parts)) != NULL;
        Py_XDECREF(parts);
        Py_XDECREF(sep);
        Py_DECREF(message);
        if (!ok) { Py_XDECREF(joined); return -1; }
        message = joined;
        if (PyList_SetSlice(p->folded, 0, PyList_GET_SIZE(p->folded), NULL) < 0) { Py_DECREF(message); return -1; }
        if (PyUnicode_GET_LENGTH(message) > MAX_MESSAGE_CHARS) {
            PyObject *head = PyUnicode_Substring(message, 0, MAX_MESSAGE_CHARS);
            Py_DECREF(message);
            if (!head) return -1;
            PyObject *marker = PyUnicode_FromString(" [... truncated]");
            message = marker ? PyUnicode_Concat(head, marker) : NULL;
            Py_DECREF(head);
            Py_XDECREF(marker);
            if (!message) return -1;
        }
    }
    p->last = p->cur_micros;
    if (p->cur_level == level_names[0] && !p->keep_debug) {
        p->skipped++;
        Py_DECREF(message);
        return 0;
    }
    PyObject *when = PyLong_FromLongLong(p->cur_micros);
    int failed = !when || PyList_Append(p->out_micros, when) < 0 ||
                 PyList_Append(p->out_levels, p->cur_level ? p->cur_level : Py_None) < 0 ||
                 PyList_Append(p->out_messages, message) < 0;
    Py_XDECREF(when);
    Py_DECREF(message);
    return failed ? -1 : 0;
}

static int start_output(EventParser *p)
{
    Py_CLEAR(p->out_micros);
    Py_CLEAR(p->out_levels);
    Py_CLEAR(p->out_messages);
    p->out_micros = PyList_New(0);
    p->out_levels = PyList_New(0);
    p->out_messages = PyList_New(0);
    return p->out_micros && p->out_levels && p->out_messages ? 0 : -1;
}

static PyObject *take_output(EventParser *p)
{
    PyObject *out = PyTuple_Pack(3, p->out_micros, p->out_levels, p->out_messages);
    Py_CLEAR(p->out_micros);
    Py_CLEAR(p->out_levels);
    Py_CLEAR(p->out_messages);
    return out;
}

static int read_line(EventParser *p, PyObject *item)
{
    if (!PyBytes_Check(item)) {
        PyErr_SetString(PyExc_TypeError, "EventParser.feed takes bytes lines");
        return -1;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(item);
    Py_ssize_t n = PyBytes_GET_SIZE(item);
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n')) n--;
    long long ts = 0;
    PyObject *level = NULL;
    int head = read_head(s, n, p->year, p->future, p->detect_level, &ts, &level);
    int blank = is_blank(s, n);
    if (!head && p->has_current && PyList_GET_SIZE(p->folded) < MAX_FOLDED_LINES) {
        if (blank) return 0;
        PyObject *text = decode(s, n);
        if (!text) return -1;
        int failed = PyList_Append(p->folded, text);
        Py_DECREF(text);
        return failed;
    }
    if (p->has_current && finish_event(p) < 0) return -1;
    if (blank) return 0;
    if (head) p->last_time = ts;
    p->cur_micros = p->last_time;
    p->cur_level = head ? level : NULL;
    p->cur_message = decode(s, n);
    if (!p->cur_message) return -1;
    p->has_current = 1;
    if (!head) return finish_event(p);  /* a file without timestamps: every line stands alone */
    return 0;
}

static PyObject *EventParser_feed(EventParser *p, PyObject *lines)
{
    PyObject *seq = PySequence_Fast(lines, "EventParser.feed takes a sequence of bytes");
    if (!seq || start_output(p) < 0) { Py_XDECREF(seq); return NULL; }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (read_line(p, items[i]) < 0) { Py_DECREF(seq); return NULL; }
    }
    Py_DECREF(seq);
    return take_output(p);
}

static PyObject *EventParser_finish(EventParser *p, PyObject *unused)
{
    if (start_output(p) < 0) return NULL;
    if (p->has_current && finish_event(p) < 0) return NULL;
    return take_output(p);
}

static int EventParser_init(EventParser *p, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"start_micros", "year", "detect_level", "keep_debug", NULL};
    long long start;
    int year, detect_level, keep_debug;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Lipp", names, &start, &year, &detect_level, &keep_debug))
        return -1;
    p->year = year;
    p->detect_level = detect_level;
    p->keep_debug = keep_debug;
    p->last_time = p->last = start;
    p->future = start + 86400LL * 1000000LL;
    p->skipped = 0;
    p->has_current = 0;
    Py_CLEAR(p->cur_message);
    Py_XSETREF(p->folded, PyList_New(0));
    return p->folded ? 0 : -1;
}

static void EventParser_dealloc(EventParser *p)
{
    Py_XDECREF(p->cur_message);
    Py_XDECREF(p->folded);
    Py_XDECREF(p->out_micros);
    Py_XDECREF(p->out_levels);
    Py_XDECREF(p->out_messages);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyObject *EventParser_last(EventParser *p, void *closure) { return PyLong_FromLongLong(p->last); }
static PyObject *EventParser_skipped(EventParser *p, void *closure) { return PyLong_FromSsize_t(p->skipped); }

static PyMethodDef EventParser_methods[] = {
    {"feed", (PyCFunction)EventParser_feed, METH_O,
     "feed(lines) -> (micros, levels, messages) of the events these lines finished"},
    {"finish", (PyCFunction)EventParser_finish, METH_NOARGS, "finish() -> the last event, as feed gives events"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef EventParser_getset[] = {
    {"last", (getter)EventParser_last, NULL, "the time of the latest event read, DEBUG ones included", NULL},
    {"skipped_debug", (getter)EventParser_skipped, NULL, "DEBUG events dropped", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject EventParserType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "elastic_recheck._logline.EventParser",
    .tp_basicsize = sizeof(EventParser),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "EventParser(start_micros, year, detect_level, keep_debug): parse_lines, a batch of lines at a time",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)EventParser_init,
    .tp_dealloc = (destructor)EventParser_dealloc,
    .tp_methods = EventParser_methods,
    .tp_getset = EventParser_getset,
};

static PyMethodDef methods[] = {
    {"line_head", line_head, METH_VARARGS,
     "line_head(line: bytes, syslog_year: int, detect_level: bool) -> (epoch micros, level | None) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_logline", NULL, -1, methods};

PyMODINIT_FUNC PyInit__logline(void)
{
    static const char *const reported[] = {"DEBUG", "INFO", "AUDIT", "WARNING", "WARNING", "ERROR", "CRITICAL", "TRACE", "CRITICAL"};
    for (int k = 0; k < 9; k++) {
        level_names[k] = PyUnicode_InternFromString(reported[k]);
        if (level_names[k] == NULL) return NULL;
    }
    if (PyType_Ready(&EventParserType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&EventParserType);
    if (PyModule_AddObject(m, "EventParser", (PyObject *)&EventParserType) < 0) {
        Py_DECREF(&EventParserType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
