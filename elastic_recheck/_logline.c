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
    return PyModule_Create(&module);
}
