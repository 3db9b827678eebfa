/* common/pytext.c — Python 3 str semantics over UTF-8 byte strings (see common/pytext.h):
 * code-point decoding, the generated Unicode tables, strip/split/lower, the blank-line
 * collapse, Python float formatting, repr() of str and json.dumps-style output.
 * It must not encode benchmark rules and must not depend on the C locale (no <ctype.h>
 * classification, no locale-dependent printf flags). */
#include "common/pytext.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pytext_tables.h"

/* ---- byte buffer -------------------------------------------------------------------- */

static vr_status sb_reserve(vr_strbuf *b, size_t extra) {
    if (b->oom) return VR_ERR_NOMEM;
    if (extra > SIZE_MAX / 2 - b->n) {
        b->oom = 1;
        return VR_ERR_NOMEM;
    }
    size_t need = b->n + extra + 1;
    if (need <= b->cap) return VR_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return VR_ERR_NOMEM;
    }
    b->p = p;
    b->cap = cap;
    return VR_OK;
}

vr_status vr_strbuf_append(vr_strbuf *b, const void *s, size_t n) {
    if (sb_reserve(b, n) != VR_OK) return VR_ERR_NOMEM;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return VR_OK;
}

vr_status vr_strbuf_append_str(vr_strbuf *b, const char *s) { return vr_strbuf_append(b, s, strlen(s)); }

vr_status vr_strbuf_append_char(vr_strbuf *b, char c) { return vr_strbuf_append(b, &c, 1); }

vr_status vr_strbuf_append_cp(vr_strbuf *b, uint32_t cp) {
    char tmp[4];
    size_t k = vr_utf8_encode(cp, tmp);
    return vr_strbuf_append(b, tmp, k);
}

vr_status vr_strbuf_printf(vr_strbuf *b, const char *fmt, ...) {
    if (b->oom) return VR_ERR_NOMEM;
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (k < 0) return VR_ERR_INTERNAL;
    if ((size_t)k < sizeof small) return vr_strbuf_append(b, small, (size_t)k);
    if (sb_reserve(b, (size_t)k) != VR_OK) return VR_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
    return VR_OK;
}

char *vr_strbuf_take(vr_strbuf *b, size_t *n) {
    char *p = NULL;
    size_t len = 0;
    if (!b->oom) {
        if (!b->p) {
            p = calloc(1, 1);
        } else {
            p = b->p;
            len = b->n;
            b->p = NULL;
        }
    }
    vr_strbuf_free(b);
    if (n) *n = p ? len : 0;
    return p;
}

void vr_strbuf_free(vr_strbuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
    b->oom = 0;
}

/* ---- code points ------------------------------------------------------------------- */

uint32_t vr_utf8_decode_next(const char *str, size_t n, size_t *i) {
    const uint8_t *s = (const uint8_t *)str;
    size_t p = *i;
    uint8_t c = s[p];
    if (c < 0x80) {
        *i = p + 1;
        return c;
    }
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1Fu;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0Fu;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07u;
        min = 0x10000;
    }
    if (len == 0 || p + len > n) {
        *i = p + 1;
        return VR_UTF8_BAD(c);
    }
    for (size_t k = 1; k < len; k++) {
        uint8_t d = s[p + k];
        if ((d & 0xC0) != 0x80) {
            *i = p + 1;
            return VR_UTF8_BAD(c);
        }
        cp = cp << 6 | (d & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        *i = p + 1;
        return VR_UTF8_BAD(c);
    }
    *i = p + len;
    return cp;
}

size_t vr_utf8_encode(uint32_t cp, char out[4]) {
    if (VR_UTF8_IS_BAD(cp)) {
        out[0] = (char)(uint8_t)(cp - 0x110000u);
        return 1;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t vr_utf8_count(const char *s, size_t n) {
    size_t i = 0, k = 0;
    while (i < n) {
        vr_utf8_decode_next(s, n, &i);
        k++;
    }
    return k;
}

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int vr_py_isspace(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    for (size_t k = 0; k < vr_pyt_space_n; k++)
        if (vr_pyt_space[k] == cp) return 1;
    return 0;
}

int vr_py_isdecimal(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(vr_pyt_decimal, vr_pyt_decimal_n, cp);
}

int vr_py_isprintable(uint32_t cp) {
    if (VR_UTF8_IS_BAD(cp)) return 0;
    return !in_ranges(vr_pyt_nonprint, vr_pyt_nonprint_n, cp);
}

size_t vr_py_lower_cp(uint32_t cp, uint32_t out[3]) {
    if (cp < 0x80) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        return 1;
    }
    size_t lo = 0, hi = vr_pyt_lower_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const vr_pyt_lower_entry *e = &vr_pyt_lower[mid];
        if (cp < e->cp) hi = mid;
        else if (cp > e->cp) lo = mid + 1;
        else {
            for (uint32_t k = 0; k < e->n; k++) out[k] = e->out[k];
            return e->n;
        }
    }
    out[0] = cp;
    return 1;
}

/* ---- str methods ------------------------------------------------------------------- */

/* str.lower() of U+03A3 at index i of cps[0,n): U+03C2 in the Final_Sigma context
 * (\p{cased}\p{case-ignorable}* before, and not \p{case-ignorable}*\p{cased} after), as
 * CPython's handle_capital_sigma decides it. */
static uint32_t lower_sigma(const uint32_t *cps, size_t n, size_t i) {
    size_t j = i;
    uint32_t c = 0;
    int found = 0;
    while (j > 0) {
        c = cps[--j];
        if (!in_ranges(vr_pyt_case_ignorable, vr_pyt_case_ignorable_n, c)) {
            found = 1;
            break;
        }
    }
    int fin = found && in_ranges(vr_pyt_cased, vr_pyt_cased_n, c);
    if (fin && i + 1 < n) {
        size_t k = i + 1;
        for (; k < n; k++) {
            c = cps[k];
            if (!in_ranges(vr_pyt_case_ignorable, vr_pyt_case_ignorable_n, c)) break;
        }
        fin = k == n || !in_ranges(vr_pyt_cased, vr_pyt_cased_n, c);
    }
    return fin ? 0x3C2 : 0x3C3;
}

/* Lower-cases a string holding U+03A3 (needs its context): decodes it whole first. */
static vr_status lower_with_sigma(vr_strbuf *out, const char *s, size_t n) {
    uint32_t *cps = malloc((n + 1) * sizeof *cps);
    if (!cps) {
        out->oom = 1;
        return VR_ERR_NOMEM;
    }
    size_t m = 0, i = 0;
    while (i < n) cps[m++] = vr_utf8_decode_next(s, n, &i);
    for (size_t k = 0; k < m; k++) {
        if (cps[k] == 0x3A3) {
            vr_strbuf_append_cp(out, lower_sigma(cps, m, k));
            continue;
        }
        uint32_t lc[3];
        size_t c = VR_UTF8_IS_BAD(cps[k]) ? (lc[0] = cps[k], 1) : vr_py_lower_cp(cps[k], lc);
        for (size_t j = 0; j < c; j++) vr_strbuf_append_cp(out, lc[j]);
    }
    free(cps);
    return out->oom ? VR_ERR_NOMEM : VR_OK;
}

vr_status vr_py_lower_append(vr_strbuf *out, const char *s, size_t n) {
    if (vr_str_find(s, n, 0, "\xCE\xA3", 2) >= 0) return lower_with_sigma(out, s, n);
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        uint32_t cp = vr_utf8_decode_next(s, n, &i);
        if (cp < 0x80 || VR_UTF8_IS_BAD(cp)) {
            char c = s[st];
            if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
            if (vr_strbuf_append(out, &c, 1) != VR_OK) return VR_ERR_NOMEM;
            continue;
        }
        uint32_t lc[3];
        size_t k = vr_py_lower_cp(cp, lc);
        for (size_t j = 0; j < k; j++)
            if (vr_strbuf_append_cp(out, lc[j]) != VR_OK) return VR_ERR_NOMEM;
    }
    return out->oom ? VR_ERR_NOMEM : VR_OK;
}

char *vr_py_lower(const char *s, size_t n, size_t *out_n) {
    vr_strbuf b = {0};
    if (vr_strbuf_append(&b, "", 0) != VR_OK || vr_py_lower_append(&b, s, n) != VR_OK) {
        vr_strbuf_free(&b);
        if (out_n) *out_n = 0;
        return NULL;
    }
    return vr_strbuf_take(&b, out_n);
}

void vr_py_strip(const char *s, size_t n, size_t *a, size_t *b) {
    size_t i = 0, first = n, end = 0;
    while (i < n) {
        size_t st = i;
        uint32_t cp = vr_utf8_decode_next(s, n, &i);
        if (!vr_py_isspace(cp)) {
            if (first == n) first = st;
            end = i;
        }
    }
    if (first == n) {
        *a = *b = n;
        return;
    }
    *a = first;
    *b = end;
}

/* Whether cp is one of the code points of the NUL-terminated UTF-8 set (NULL = whitespace). */
static int in_set(uint32_t cp, const char *chars) {
    if (!chars) return vr_py_isspace(cp);
    size_t n = strlen(chars), i = 0;
    while (i < n)
        if (vr_utf8_decode_next(chars, n, &i) == cp) return 1;
    return 0;
}

size_t vr_py_rstrip_chars(const char *s, size_t n, const char *chars) {
    size_t i = 0, end = 0;
    while (i < n) {
        uint32_t cp = vr_utf8_decode_next(s, n, &i);
        if (!in_set(cp, chars)) end = i;
    }
    return end;
}

size_t vr_py_lstrip_chars(const char *s, size_t n, const char *chars) {
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        uint32_t cp = vr_utf8_decode_next(s, n, &i);
        if (!in_set(cp, chars)) return st;
    }
    return n;
}

static vr_status span_push(vr_span **arr, size_t *count, size_t *cap, size_t off, size_t len,
                           vr_error *err) {
    if (*count == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        vr_span *p = realloc(*arr, nc * sizeof *p);
        if (!p) return vr_error_set(err, VR_ERR_NOMEM, "out of memory splitting a string");
        *arr = p;
        *cap = nc;
    }
    (*arr)[*count].off = off;
    (*arr)[*count].len = len;
    (*count)++;
    return VR_OK;
}

vr_status vr_py_split_ws(const char *s, size_t n, vr_span **out, size_t *count, vr_error *err) {
    vr_span *arr = NULL;
    size_t cnt = 0, cap = 0, i = 0;
    size_t word = 0;
    int in_word = 0;
    while (i < n) {
        size_t st = i;
        uint32_t cp = vr_utf8_decode_next(s, n, &i);
        if (vr_py_isspace(cp)) {
            if (in_word && span_push(&arr, &cnt, &cap, word, st - word, err) != VR_OK) goto fail;
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            word = st;
        }
    }
    if (in_word && span_push(&arr, &cnt, &cap, word, n - word, err) != VR_OK) goto fail;
    *out = arr;
    *count = cnt;
    return VR_OK;
fail:
    free(arr);
    *out = NULL;
    *count = 0;
    return err ? err->code : VR_ERR_NOMEM;
}

vr_status vr_py_split_char(const char *s, size_t n, char sep, vr_span **out, size_t *count,
                           vr_error *err) {
    vr_span *arr = NULL;
    size_t cnt = 0, cap = 0, st = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == sep) {
            if (span_push(&arr, &cnt, &cap, st, i - st, err) != VR_OK) {
                free(arr);
                *out = NULL;
                *count = 0;
                return VR_ERR_NOMEM;
            }
            st = i + 1;
        }
    }
    *out = arr;
    *count = cnt;
    return VR_OK;
}

vr_status vr_py_collapse_newlines(vr_strbuf *out, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] != '\n') {
            size_t st = i;
            while (i < n && s[i] != '\n') i++;
            vr_strbuf_append(out, s + st, i - st);
            continue;
        }
        /* The greedy match runs to the last '\n' of the whitespace run after this one. */
        size_t j = i + 1, last_nl = 0;
        int found = 0;
        while (j < n) {
            size_t st = j;
            uint32_t c = vr_utf8_decode_next(s, n, &j);
            if (!vr_py_isspace(c)) break;
            if (c == '\n') {
                last_nl = st;
                found = 1;
            }
        }
        vr_strbuf_append(out, "\n", 1);
        i = found ? last_nl + 1 : i + 1;
    }
    return out->oom ? VR_ERR_NOMEM : VR_OK;
}

long vr_str_find(const char *s, size_t n, size_t from, const char *pat, size_t pn) {
    if (from > n) return -1;
    if (pn == 0) return (long)from;
    if (pn > n - from) return -1;
    for (size_t i = from; i + pn <= n; i++)
        if (s[i] == pat[0] && memcmp(s + i, pat, pn) == 0) return (long)i;
    return -1;
}

vr_status vr_str_replace_all(vr_strbuf *out, const char *s, size_t n, const char *pat, size_t pn,
                             const char *rep, size_t rn) {
    if (pn == 0) return vr_strbuf_append(out, s, n);
    size_t i = 0;
    for (;;) {
        long f = vr_str_find(s, n, i, pat, pn);
        if (f < 0) break;
        vr_strbuf_append(out, s + i, (size_t)f - i);
        vr_strbuf_append(out, rep, rn);
        i = (size_t)f + pn;
    }
    vr_strbuf_append(out, s + i, n - i);
    return out->oom ? VR_ERR_NOMEM : VR_OK;
}

vr_status vr_py_replace_chars(vr_strbuf *out, const char *s, size_t n, const char *chars,
                              const char *rep) {
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        uint32_t cp = vr_utf8_decode_next(s, n, &i);
        if (!VR_UTF8_IS_BAD(cp) && in_set(cp, chars)) vr_strbuf_append_str(out, rep);
        else vr_strbuf_append(out, s + st, i - st);
    }
    return out->oom ? VR_ERR_NOMEM : VR_OK;
}

/* ---- Python float formatting --------------------------------------------------------- */

int vr_py_float_repr(double x, char buf[VR_PY_REPR_MAX]) {
    if (isnan(x)) return snprintf(buf, VR_PY_REPR_MAX, "nan");
    if (isinf(x)) return snprintf(buf, VR_PY_REPR_MAX, x < 0 ? "-inf" : "inf");
    if (x == 0) return snprintf(buf, VR_PY_REPR_MAX, signbit(x) ? "-0.0" : "0.0");
    /* The shortest correctly rounded digit string that reads back as x. */
    char tmp[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
        if (strtod(tmp, NULL) == x) break;
    }
    if (prec > 17) prec = 17;
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
    /* tmp = [-]d[.ddd]e(+|-)XX */
    const char *p = tmp;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    char digits[20];
    int nd = 0;
    while (*p && *p != 'e') {
        if (*p >= '0' && *p <= '9' && nd < 19) digits[nd++] = *p;
        p++;
    }
    int e10 = (*p == 'e') ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--; /* %.*e may keep trailing zeros */
    digits[nd] = 0;
    int o = 0;
    char *b = buf;
    if (neg) b[o++] = '-';
    if (e10 < -4 || e10 >= 16) {
        b[o++] = digits[0];
        if (nd > 1) {
            b[o++] = '.';
            for (int k = 1; k < nd; k++) b[o++] = digits[k];
        }
        o += snprintf(b + o, (size_t)(VR_PY_REPR_MAX - o), "e%c%02d", e10 < 0 ? '-' : '+', e10 < 0 ? -e10 : e10);
        return o;
    }
    int decpt = e10 + 1; /* digits before the point */
    if (decpt <= 0) {
        b[o++] = '0';
        b[o++] = '.';
        for (int k = 0; k < -decpt; k++) b[o++] = '0';
        for (int k = 0; k < nd; k++) b[o++] = digits[k];
    } else if (decpt < nd) {
        for (int k = 0; k < nd; k++) {
            if (k == decpt) b[o++] = '.';
            b[o++] = digits[k];
        }
    } else {
        for (int k = 0; k < nd; k++) b[o++] = digits[k];
        for (int k = nd; k < decpt; k++) b[o++] = '0';
        b[o++] = '.';
        b[o++] = '0';
    }
    b[o] = 0;
    return o;
}

double vr_py_round(double x, int ndigits) {
    if (!isfinite(x) || x == 0) return x;
    if (ndigits > 323) return x;
    if (ndigits < -308) return 0.0 * x;
    if (ndigits >= 0) {
        /* glibc's %.Nf rounds the exact binary value half-to-even, as Python's dtoa mode 3. */
        char buf[700];
        snprintf(buf, sizeof buf, "%.*f", ndigits, x);
        return strtod(buf, NULL);
    }
    /* Negative ndigits: round the exact integer part at 10^k, the fraction as a sticky bit. */
    int k = -ndigits;
    double ip = trunc(fabs(x));
    int sticky = fabs(x) != ip;
    char d[400];
    int len = snprintf(d, sizeof d, "%.0f", ip);
    if (len <= 0 || len >= (int)sizeof d) return x; /* cannot happen for a finite double */
    char r[400];
    /* r = the last k digits (zero-padded), q = the rest */
    int qlen = len > k ? len - k : 0;
    for (int j = 0; j < k; j++) {
        int src = len - k + j;
        r[j] = src >= 0 ? d[src] : '0';
    }
    int cmp = 0; /* r vs 5000... */
    if (r[0] != '5') cmp = r[0] > '5' ? 1 : -1;
    else {
        for (int j = 1; j < k && !cmp; j++)
            if (r[j] != '0') cmp = 1;
        if (!cmp && sticky) cmp = 1;
    }
    int up = cmp > 0 || (cmp == 0 && qlen > 0 && ((d[qlen - 1] - '0') & 1));
    char out[800];
    int o = 0;
    if (x < 0) out[o++] = '-';
    if (qlen > 0 && qlen < 400) {
        memcpy(out + o, d, (size_t)qlen);
        o += qlen;
    } else {
        out[o++] = '0';
    }
    if (up) {
        int j = o - 1;
        while (j >= 0 && out[j] == '9') out[j--] = '0';
        if (j < 0 || out[j] == '-') {
            memmove(out + j + 2, out + j + 1, (size_t)(o - j - 1));
            out[j + 1] = '1';
            o++;
        } else {
            out[j]++;
        }
    }
    o += snprintf(out + o, sizeof out - (size_t)o, "e%d", k);
    return strtod(out, NULL);
}

int vr_py_format_fixed(double x, int prec, char *buf, size_t cap) {
    if (isnan(x)) return snprintf(buf, cap, "nan");
    return snprintf(buf, cap, "%.*f", prec, x);
}

vr_status vr_py_append_fixed(vr_strbuf *out, double x, int prec) {
    if (isnan(x)) return vr_strbuf_append_str(out, "nan");
    return vr_strbuf_printf(out, "%.*f", prec, x);
}

vr_status vr_py_append_float_repr(vr_strbuf *out, double x) {
    char buf[VR_PY_REPR_MAX];
    int k = vr_py_float_repr(x, buf);
    return vr_strbuf_append(out, buf, (size_t)k);
}

/* ---- Python repr() and json.dumps ---------------------------------------------------- */

vr_status vr_py_repr_str(vr_strbuf *out, const char *s, size_t n) {
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    vr_strbuf_append(out, &q, 1);
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        uint32_t cp = vr_utf8_decode_next(s, n, &i);
        if (VR_UTF8_IS_BAD(cp)) {
            vr_strbuf_append_cp(out, 0xFFFD);
        } else if (cp == (uint32_t)q || cp == '\\') {
            vr_strbuf_append_char(out, '\\');
            vr_strbuf_append_char(out, (char)cp);
        } else if (cp == '\t') {
            vr_strbuf_append_str(out, "\\t");
        } else if (cp == '\n') {
            vr_strbuf_append_str(out, "\\n");
        } else if (cp == '\r') {
            vr_strbuf_append_str(out, "\\r");
        } else if (cp < 0x20 || cp == 0x7F) {
            vr_strbuf_printf(out, "\\x%02x", (unsigned)cp);
        } else if (cp < 0x7F) {
            vr_strbuf_append_char(out, (char)cp);
        } else if (!vr_py_isprintable(cp)) {
            if (cp <= 0xFF) vr_strbuf_printf(out, "\\x%02x", (unsigned)cp);
            else if (cp <= 0xFFFF) vr_strbuf_printf(out, "\\u%04x", (unsigned)cp);
            else vr_strbuf_printf(out, "\\U%08x", (unsigned)cp);
        } else {
            vr_strbuf_append(out, s + st, i - st);
        }
    }
    vr_strbuf_append(out, &q, 1);
    return out->oom ? VR_ERR_NOMEM : VR_OK;
}

vr_status vr_py_json_str(vr_strbuf *out, const char *s, size_t n, int ensure_ascii) {
    vr_strbuf_append_char(out, '"');
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        uint32_t cp = vr_utf8_decode_next(s, n, &i);
        switch (cp) {
        case '"': vr_strbuf_append_str(out, "\\\""); continue;
        case '\\': vr_strbuf_append_str(out, "\\\\"); continue;
        case '\n': vr_strbuf_append_str(out, "\\n"); continue;
        case '\r': vr_strbuf_append_str(out, "\\r"); continue;
        case '\t': vr_strbuf_append_str(out, "\\t"); continue;
        case '\b': vr_strbuf_append_str(out, "\\b"); continue;
        case '\f': vr_strbuf_append_str(out, "\\f"); continue;
        default: break;
        }
        if (cp < 0x20) {
            vr_strbuf_printf(out, "\\u%04x", (unsigned)cp);
        } else if (!ensure_ascii) {
            vr_strbuf_append(out, s + st, i - st);
        } else if (cp < 0x7F) {
            vr_strbuf_append_char(out, (char)cp);
        } else {
            if (VR_UTF8_IS_BAD(cp)) cp = 0xFFFD;
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                vr_strbuf_printf(out, "\\u%04x\\u%04x", (unsigned)(0xD800 | (v >> 10)),
                                 (unsigned)(0xDC00 | (v & 0x3FF)));
            } else {
                vr_strbuf_printf(out, "\\u%04x", (unsigned)cp);
            }
        }
    }
    vr_strbuf_append_char(out, '"');
    return out->oom ? VR_ERR_NOMEM : VR_OK;
}

static void json_newline(vr_strbuf *out, int indent, int level) {
    vr_strbuf_append_char(out, '\n');
    for (int k = 0; k < indent * level; k++) vr_strbuf_append_char(out, ' ');
}

static void json_dump_rec(vr_strbuf *out, const cJSON *it, int indent, int ascii, int level) {
    if (cJSON_IsRaw(it)) {
        vr_strbuf_append_str(out, it->valuestring ? it->valuestring : "null");
    } else if (cJSON_IsNull(it)) {
        vr_strbuf_append_str(out, "null");
    } else if (cJSON_IsTrue(it)) {
        vr_strbuf_append_str(out, "true");
    } else if (cJSON_IsFalse(it)) {
        vr_strbuf_append_str(out, "false");
    } else if (cJSON_IsNumber(it)) {
        double v = it->valuedouble;
        if (isnan(v)) vr_strbuf_append_str(out, "NaN");
        else if (isinf(v)) vr_strbuf_append_str(out, v < 0 ? "-Infinity" : "Infinity");
        else if (v == trunc(v) && fabs(v) < 9007199254740992.0) vr_strbuf_printf(out, "%.0f", v == 0 ? 0.0 : v);
        else vr_py_append_float_repr(out, v);
    } else if (cJSON_IsString(it)) {
        const char *s = it->valuestring ? it->valuestring : "";
        vr_py_json_str(out, s, strlen(s), ascii);
    } else if (cJSON_IsArray(it) || cJSON_IsObject(it)) {
        int obj = cJSON_IsObject(it);
        vr_strbuf_append_char(out, obj ? '{' : '[');
        const cJSON *c = it->child;
        if (!c) {
            vr_strbuf_append_char(out, obj ? '}' : ']');
            return;
        }
        for (int first = 1; c; c = c->next, first = 0) {
            if (!first) vr_strbuf_append_str(out, indent >= 0 ? "," : ", ");
            if (indent >= 0) json_newline(out, indent, level + 1);
            if (obj) {
                const char *k = c->string ? c->string : "";
                vr_py_json_str(out, k, strlen(k), ascii);
                vr_strbuf_append_str(out, ": ");
            }
            json_dump_rec(out, c, indent, ascii, level + 1);
        }
        if (indent >= 0) json_newline(out, indent, level);
        vr_strbuf_append_char(out, obj ? '}' : ']');
    } else {
        vr_strbuf_append_str(out, "null");
    }
}

vr_status vr_py_json_dump(vr_strbuf *out, const cJSON *item, int indent, int ensure_ascii) {
    json_dump_rec(out, item, indent, ensure_ascii, 0);
    return out->oom ? VR_ERR_NOMEM : VR_OK;
}

/* A cJSON number as Python would have parsed it: an int when integral and exact, else a float. */
static void py_number(vr_strbuf *out, double v) {
    if (v == trunc(v) && fabs(v) < 9007199254740992.0) vr_strbuf_printf(out, "%.0f", v == 0 ? 0.0 : v);
    else vr_py_append_float_repr(out, v);
}

vr_status vr_py_repr_json(vr_strbuf *out, const cJSON *it) {
    if (cJSON_IsRaw(it)) {
        vr_strbuf_append_str(out, it->valuestring ? it->valuestring : "None");
    } else if (cJSON_IsNull(it) || !it) {
        vr_strbuf_append_str(out, "None");
    } else if (cJSON_IsTrue(it)) {
        vr_strbuf_append_str(out, "True");
    } else if (cJSON_IsFalse(it)) {
        vr_strbuf_append_str(out, "False");
    } else if (cJSON_IsNumber(it)) {
        py_number(out, it->valuedouble);
    } else if (cJSON_IsString(it)) {
        const char *s = it->valuestring ? it->valuestring : "";
        vr_py_repr_str(out, s, strlen(s));
    } else if (cJSON_IsArray(it) || cJSON_IsObject(it)) {
        int obj = cJSON_IsObject(it);
        vr_strbuf_append_char(out, obj ? '{' : '[');
        for (const cJSON *c = it->child; c; c = c->next) {
            if (c != it->child) vr_strbuf_append_str(out, ", ");
            if (obj) {
                const char *k = c->string ? c->string : "";
                vr_py_repr_str(out, k, strlen(k));
                vr_strbuf_append_str(out, ": ");
            }
            vr_py_repr_json(out, c);
        }
        vr_strbuf_append_char(out, obj ? '}' : ']');
    } else {
        vr_strbuf_append_str(out, "None");
    }
    return out->oom ? VR_ERR_NOMEM : VR_OK;
}
