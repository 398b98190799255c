/* The ASCII scanner of analysis.index_text, shared by _tokens.c (which
 * writes the tokens) and _templates.c (which counts a line prefix's tokens
 * to find where its body's tokens start). Included, not linked: each
 * extension module is built on its own.
 *
 * It is the greedy reading of analysis._ASCII_TOKEN, which Python's re takes
 * too, so both give the same tokens (tests/test_analysis.py checks it):
 *
 *     (?:_*(?:[a-z]+(?:[:.'][a-z]+)*|[0-9]+(?:[,;.'][0-9]+)*))+_*
 *
 * A token is a run of units; a unit is optional underscores and then a word
 * (letters joined by : . ') or a number (digits joined by , ; . '); trailing
 * underscores belong to the token. A token is never directly followed by a
 * letter, digit or underscore, except where a word over MAX_TOKEN_LENGTH is
 * cut: Lucene's scanner sees at most that many characters from a token's
 * start, so the token is the longest one within them, and the next starts
 * where it ends (analysis.MAX_TOKEN_LENGTH; a piece loses at most one joining
 * character at its end, so the output grows by under one space in 250).
 */
#ifndef ER_ASCII_TOKENS_H
#define ER_ASCII_TOKENS_H

#define MAX_TOKEN_LENGTH 255

static inline int is_letter(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_alnum(unsigned char c) { return is_letter(c) || is_digit(c); }

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

/* The next token of s[0:n] at or after *at: 1 and its bounds [*start, *end),
 * *at moved past it; 0 when there is none. */
static inline int next_ascii_token(const unsigned char *s, Py_ssize_t n, Py_ssize_t *at,
                                   Py_ssize_t *start, Py_ssize_t *end)
{
    Py_ssize_t i = *at;
    while (i < n) {
        Py_ssize_t stop = n - i > MAX_TOKEN_LENGTH ? i + MAX_TOKEN_LENGTH : n;  /* what the scanner sees */
        Py_ssize_t j = i;
        while (j < stop && s[j] == '_') j++;
        if (j == stop && stop < n) {  /* underscores fill the window: a token may start one further on */
            i++;
            continue;
        }
        if (j >= stop || !is_alnum(s[j])) {  /* no token starts here: skip the underscores and the breaker */
            i = j + 1;
            continue;
        }
        Py_ssize_t k = j;
        for (;;) {
            k = unit_end(s, k, stop);
            Py_ssize_t m = k;
            while (m < stop && s[m] == '_') m++;
            k = m;
            if (m >= stop || !is_alnum(s[m])) break;
        }
        *start = i;
        *end = k;
        *at = k;
        return 1;
    }
    *at = i;
    return 0;
}

#endif
