/* common/pytext.h — Python 3 str semantics over UTF-8 byte strings, for code that must
 * reproduce upstream Python text handling byte for byte (prompts, benchmark scorers):
 * code points, str.isspace / regex \s, regex \d, str.lower(), strip/split, the blank-line
 * collapse regex, Python float formatting (repr, round, %.Nf), Python repr() of str and
 * json.dumps-style output, and a growable byte buffer.
 * It must not hold policy (no benchmark rules) and must not depend on locale: every table is
 * generated from shared/eval-fixtures/tables.json (common/pytext_tables.c).
 *
 * Strings are (pointer, byte length) pairs and need not be NUL-terminated. Bytes that are not
 * valid UTF-8 decode as one "invalid unit" each (VR_UTF8_BAD(byte), above U+10FFFF): it is
 * never whitespace, a digit or a cased letter, and is copied through unchanged. */
#ifndef VR_PYTEXT_H
#define VR_PYTEXT_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "common/error.h"

/* ---- byte buffer -------------------------------------------------------------------- */

/* A growable byte buffer, always NUL-terminated after the first append. Zero-initialise
 * (`vr_strbuf b = {0};`). An allocation failure sets `oom` (sticky): later appends do nothing,
 * and the caller can check once at the end. */
typedef struct vr_strbuf {
    char *p;
    size_t n, cap;
    int oom;
} vr_strbuf;

vr_status vr_strbuf_append(vr_strbuf *b, const void *s, size_t n);
vr_status vr_strbuf_append_str(vr_strbuf *b, const char *s);
vr_status vr_strbuf_append_char(vr_strbuf *b, char c);
/* Appends a code point as UTF-8; an invalid unit (VR_UTF8_BAD) appends its original byte. */
vr_status vr_strbuf_append_cp(vr_strbuf *b, uint32_t cp);
vr_status vr_strbuf_printf(vr_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the malloc'd NUL-terminated contents (an empty string if nothing was appended; NULL
 * after an allocation failure) and resets b to empty. *n (optional) gets the byte length. */
char *vr_strbuf_take(vr_strbuf *b, size_t *n);
void vr_strbuf_free(vr_strbuf *b);

/* ---- code points ------------------------------------------------------------------- */

#define VR_UTF8_BAD(byte) (0x110000u + (uint32_t)(uint8_t)(byte))
#define VR_UTF8_IS_BAD(cp) ((cp) >= 0x110000u)

/* Decodes the code point at byte *i of s[0,n) (strict UTF-8: no overlongs, surrogates or
 * values above U+10FFFF) and advances *i past it. An invalid byte gives VR_UTF8_BAD(byte)
 * and advances by one. Requires *i < n. */
uint32_t vr_utf8_decode_next(const char *s, size_t n, size_t *i);
/* Writes cp as UTF-8 into out (up to 4 bytes) and returns the byte count (an invalid unit
 * writes its original byte). */
size_t vr_utf8_encode(uint32_t cp, char out[4]);
/* Number of code points in s[0,n) (invalid bytes count one each). */
size_t vr_utf8_count(const char *s, size_t n);

int vr_py_isspace(uint32_t cp);     /* str.isspace() == regex \s */
int vr_py_isdecimal(uint32_t cp);   /* regex \d (Unicode category Nd) */
int vr_py_isprintable(uint32_t cp); /* str.isprintable() for one code point */
/* str.lower() of one code point: writes 1..3 code points to out, returns the count. U+03A3
 * gives U+03C3 here; vr_py_lower / vr_py_lower_append apply the Final_Sigma context (U+03C2). */
size_t vr_py_lower_cp(uint32_t cp, uint32_t out[3]);

/* ---- str methods ------------------------------------------------------------------- */

/* A piece of a string: bytes [off, off+len). */
typedef struct vr_span {
    size_t off, len;
} vr_span;

/* s[0,n).lower() as a malloc'd NUL-terminated string (*out_n optional); NULL when out of memory. */
char *vr_py_lower(const char *s, size_t n, size_t *out_n);
/* Appends s[0,n).lower() to out. */
vr_status vr_py_lower_append(vr_strbuf *out, const char *s, size_t n);
/* s.strip(): the kept bytes are [*a, *b) of s[0,n). */
void vr_py_strip(const char *s, size_t n, size_t *a, size_t *b);
/* s.rstrip(chars): returns the new byte length. chars is a NUL-terminated UTF-8 set of code
 * points (e.g. "." for rstrip('.')); NULL means whitespace (plain rstrip()). */
size_t vr_py_rstrip_chars(const char *s, size_t n, const char *chars);
/* s.lstrip(chars) likewise: returns the byte offset of the first kept byte. */
size_t vr_py_lstrip_chars(const char *s, size_t n, const char *chars);
/* s.split() (no argument): the words, as a malloc'd span array in *out (NULL when there are
 * none) and their count in *count. */
vr_status vr_py_split_ws(const char *s, size_t n, vr_span **out, size_t *count, vr_error *err);
/* s.split(sep) for a one-byte ASCII separator (e.g. ' ' or '\n'): keeps empty pieces; always
 * at least one piece. */
vr_status vr_py_split_char(const char *s, size_t n, char sep, vr_span **out, size_t *count,
                           vr_error *err);
/* Appends re.sub(r"\n(\s*\n)+", "\n", s[0,n)) to out. */
vr_status vr_py_collapse_newlines(vr_strbuf *out, const char *s, size_t n);
/* The byte offset of the first occurrence of pat[0,pn) in s[0,n) at or after byte `from`, or
 * -1. (On valid UTF-8 a byte match is a code-point match.) pn == 0 matches at `from`. */
long vr_str_find(const char *s, size_t n, size_t from, const char *pat, size_t pn);
/* Appends s.replace(pat, rep) (every non-overlapping occurrence, left to right) to out.
 * pn must be > 0 (an empty pattern appends s unchanged). */
vr_status vr_str_replace_all(vr_strbuf *out, const char *s, size_t n, const char *pat, size_t pn,
                             const char *rep, size_t rn);
/* Appends s with every occurrence of each code point of `chars` (NUL-terminated UTF-8)
 * replaced by rep (NUL-terminated; "" deletes): str.translate-like single pass. */
vr_status vr_py_replace_chars(vr_strbuf *out, const char *s, size_t n, const char *chars,
                              const char *rep);

/* ---- Python float formatting --------------------------------------------------------- */

/* Enough for any vr_py_float_repr output, NUL included. */
#define VR_PY_REPR_MAX 32

/* repr(x) / str(x) / print(x) of a Python float: the shortest digits that round-trip,
 * "1.0", "0.6000000000000001", "1e-07", "1e+16", "123.0", "inf", "-inf", "nan", "-0.0".
 * Returns the length. */
int vr_py_float_repr(double x, char buf[VR_PY_REPR_MAX]);
/* round(x, ndigits) for a float: the double nearest to x correctly rounded (half-even on the
 * exact binary value) to ndigits decimals. Non-finite x is returned unchanged. */
double vr_py_round(double x, int ndigits);
/* "%.{prec}f" % x (Python: correctly rounded; "inf", "-inf", "nan" — never "-nan").
 * Returns the length snprintf reports (output truncated to cap like snprintf). A double with
 * prec decimals needs at most 311 + prec bytes. */
int vr_py_format_fixed(double x, int prec, char *buf, size_t cap);
/* Appends "%.{prec}f" % x to out. */
vr_status vr_py_append_fixed(vr_strbuf *out, double x, int prec);
/* Appends repr(x) to out. */
vr_status vr_py_append_float_repr(vr_strbuf *out, double x);

/* ---- Python repr() and json.dumps ---------------------------------------------------- */

/* Appends repr(s) of a Python str: quotes chosen like Python (' unless s has ' and no "),
 * \\ \n \r \t escaped, other non-printable code points as \xNN, \uNNNN or \UNNNNNNNN. */
vr_status vr_py_repr_str(vr_strbuf *out, const char *s, size_t n);
/* Appends Python's repr() of the value a cJSON tree stands for (as json.loads would build it):
 * None / True / False, ints, float repr, str repr, [a, b] lists, {'k': v} dicts. Raw items
 * print verbatim. */
vr_status vr_py_repr_json(vr_strbuf *out, const cJSON *item);
/* Appends a JSON string literal as Python's json.dumps writes it: ensure_ascii != 0 escapes
 * everything outside ' '..'~' as \uXXXX (lower-case hex, surrogate pairs for astral code
 * points); ensure_ascii == 0 escapes only " \ and control characters below 0x20.
 * Invalid units are written as \ufffd (ascii) or raw (not ascii). */
vr_status vr_py_json_str(vr_strbuf *out, const char *s, size_t n, int ensure_ascii);
/* Appends json.dumps(item) of a cJSON tree in Python's format: `, ` and `: ` separators
 * (indent < 0), or with indent >= 0 json.dump(..., indent=indent) layout (newline + indent
 * per level, "," at line ends, ": " after keys, empty containers as [] / {}).
 * Numbers: an integral value with |x| < 2^53 prints as an integer, others as float repr
 * (NaN / Infinity / -Infinity like Python). To force a Python float such as 100.0, put a raw
 * item (cJSON_CreateRaw with the text from vr_py_float_repr): raw items print verbatim. */
vr_status vr_py_json_dump(vr_strbuf *out, const cJSON *item, int indent, int ensure_ascii);

#endif
