/* model/prompt.c — the prompt token ids exactly as upstream evaluate.py builds them:
 * process_image_tokens_in_conversations (Python str.strip(), re.sub(r"\n(\s*\n)+", "\n") with
 * Python's Unicode \s, image placement first/middle/last) then preprocess ("User: …\n\n" and
 * "Assistant:" tokenised separately, each turn split at <image> into separately tokenised chunks
 * joined by -200). Must not know model math, images' pixels or sampling. */
#include "model/prompt.h"

#include <stdlib.h>
#include <string.h>

#define IMAGE_MARK "<image>"
#define IMAGE_MARK_LEN 7
#define SINGLE_WORD_INSTR "Answer the question using a single word or phrase."

/* ---------------------------------------------------------------- image position */

vr_status vr_image_position_parse(const char *s, vr_image_position *out, vr_error *err) {
    if (s && strcmp(s, "first") == 0) *out = VR_IMAGE_FIRST;
    else if (s && (strcmp(s, "middle") == 0 || strcmp(s, "sandwich") == 0)) *out = VR_IMAGE_MIDDLE;
    else if (s && strcmp(s, "last") == 0) *out = VR_IMAGE_LAST;
    else
        return vr_error_set(err, VR_ERR_INVALID, "unknown image position \"%s\": use first, middle (or sandwich) or last",
                            s ? s : "(null)");
    return VR_OK;
}

const char *vr_image_position_name(vr_image_position p) {
    switch (p) {
    case VR_IMAGE_FIRST: return "first";
    case VR_IMAGE_MIDDLE: return "middle";
    case VR_IMAGE_LAST: return "last";
    }
    return "unknown";
}

/* ---------------------------------------------------------------- Python str semantics */

/* A growable byte string. */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Decodes the code point at s[i] of valid UTF-8; sets *w to its byte width. */
static uint32_t cp_at(const char *str, size_t i, size_t *w) {
    const uint8_t *s = (const uint8_t *)str + i;
    if (s[0] < 0x80) {
        *w = 1;
        return s[0];
    }
    if (s[0] < 0xE0) {
        *w = 2;
        return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if (s[0] < 0xF0) {
        *w = 3;
        return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    *w = 4;
    return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}

/* Python str.isspace() == re's \s for str patterns (Py_UNICODE_ISSPACE). */
static int py_isspace(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The start of the code point that ends just before byte i (i > 0) of valid UTF-8. */
static size_t prev_cp(const char *s, size_t i) {
    do i--;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
    return i;
}

/* Python s.strip(): [*a, *b) of s[0,n). */
static void py_strip(const char *s, size_t n, size_t *a, size_t *b) {
    size_t i = 0, w = 0;
    while (i < n && py_isspace(cp_at(s, i, &w))) i += w;
    size_t j = n;
    while (j > i) {
        size_t p = prev_cp(s, j);
        if (!py_isspace(cp_at(s, p, &w))) break;
        j = p;
    }
    *a = i;
    *b = j;
}

/* Appends re.sub(r"\n(\s*\n)+", "\n", s[0,n)) to out. At each '\n' the greedy match runs to the
 * last '\n' inside the whitespace run that follows it. */
static void py_collapse_newlines(sbuf *out, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] != '\n') {
            size_t st = i;
            while (i < n && s[i] != '\n') i++;
            sb_put(out, s + st, i - st);
            continue;
        }
        size_t j = i + 1, last_nl = 0, w = 0;
        int found = 0;
        while (j < n) {
            uint32_t c = cp_at(s, j, &w);
            if (!py_isspace(c)) break;
            if (c == '\n') {
                last_nl = j;
                found = 1;
            }
            j += w;
        }
        sb_put(out, "\n", 1);
        i = found ? last_nl + 1 : i + 1;
    }
}

/* Appends s[0,n) with every (non-overlapping, left to right) occurrence of pat removed. */
static void py_remove(sbuf *out, const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat), i = 0, st = 0;
    while (i + m <= n) {
        if (memcmp(s + i, pat, m) == 0) {
            sb_put(out, s + st, i - st);
            i += m;
            st = i;
        } else {
            i++;
        }
    }
    sb_put(out, s + st, n - st);
}

/* re.sub(r"\n(\s*\n)+", "\n", s.strip()) as a new malloc'd string in *out (NULL on OOM). */
static char *strip_collapse(const char *s, size_t n) {
    size_t a, b;
    py_strip(s, n, &a, &b);
    sbuf out = {0};
    sb_put(&out, "", 0);
    py_collapse_newlines(&out, s + a, b - a);
    if (out.oom) {
        free(out.p);
        return NULL;
    }
    return out.p;
}

static vr_status check_question(const char *question, vr_error *err) {
    if (!question) return vr_error_set(err, VR_ERR_INVALID, "no question given");
    if (!vr_utf8_valid(question, strlen(question)))
        return vr_error_set(err, VR_ERR_INVALID, "the question is not valid UTF-8 text");
    if (strstr(question, IMAGE_MARK))
        return vr_error_set(err, VR_ERR_INVALID,
                            "the question contains the literal text \"<image>\", which the model reserves for the "
                            "image placeholder (upstream would fail with \"Too many images\"); remove or reword it");
    return VR_OK;
}

vr_status vr_prompt_human_value(const char *question, int with_image, vr_image_position pos, char **out,
                                vr_error *err) {
    *out = NULL;
    vr_status st = check_question(question, err);
    if (st != VR_OK) return st;
    size_t qn = strlen(question);
    if (!with_image) {
        /* text-only turn: sentence['value'] = re.sub(r"\n(\s*\n)+", '\n', value.strip()) */
        *out = strip_collapse(question, qn);
        return *out ? VR_OK : vr_error_set(err, VR_ERR_NOMEM, "out of memory building the prompt");
    }
    /* The human message is "<image>\n" + question. Removing <image> and stripping leaves
     * question.strip() (the question holds no <image>: checked above). */
    char *q = strip_collapse(question, qn); /* Q */
    char *a = NULL;                          /* A: the instruction removed (middle mode) */
    sbuf v = {0};
    sb_put(&v, "", 0);
    if (!q) goto oom;
    switch (pos) {
    case VR_IMAGE_FIRST:
        sb_str(&v, IMAGE_MARK "\n");
        sb_str(&v, q);
        break;
    case VR_IMAGE_MIDDLE: {
        size_t s0, s1;
        py_strip(question, qn, &s0, &s1);
        sbuf r = {0};
        sb_put(&r, "", 0);
        py_remove(&r, question + s0, s1 - s0, SINGLE_WORD_INSTR);
        if (r.oom) {
            free(r.p);
            goto oom;
        }
        a = strip_collapse(r.p, r.n);
        free(r.p);
        if (!a) goto oom;
        sb_str(&v, a);
        sb_str(&v, "\n" IMAGE_MARK "\n");
        sb_str(&v, q);
        break;
    }
    case VR_IMAGE_LAST:
        sb_str(&v, q);
        sb_str(&v, "\n" IMAGE_MARK);
        break;
    default:
        free(q);
        free(v.p);
        return vr_error_set(err, VR_ERR_INVALID, "unknown image position %d", (int)pos);
    }
    if (v.oom) goto oom;
    /* final .strip() */
    size_t s0, s1;
    py_strip(v.p, v.n, &s0, &s1);
    memmove(v.p, v.p + s0, s1 - s0);
    v.p[s1 - s0] = 0;
    free(q);
    free(a);
    *out = v.p;
    return VR_OK;
oom:
    free(q);
    free(a);
    free(v.p);
    return vr_error_set(err, VR_ERR_NOMEM, "out of memory building the prompt");
}

/* ---------------------------------------------------------------- tokenisation */

typedef struct {
    int32_t *p;
    int n, cap;
} ibuf;

static vr_status ib_put(ibuf *b, const int32_t *ids, int n, vr_error *err) {
    if (b->n + n > b->cap) {
        int cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap *= 2;
        int32_t *np = realloc(b->p, sizeof(int32_t) * (size_t)cap);
        if (!np) return vr_error_set(err, VR_ERR_NOMEM, "out of memory building the prompt ids");
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, ids, sizeof(int32_t) * (size_t)n);
    b->n += n;
    return VR_OK;
}

/* upstream tokenizer_image_token: split at <image>, tokenise each chunk, join with -200. */
static vr_status tokenize_sentence(const vr_tokenizer *tok, const char *s, size_t n, ibuf *out, vr_error *err) {
    size_t st = 0, i = 0;
    for (;;) {
        int at_mark = i + IMAGE_MARK_LEN <= n && memcmp(s + i, IMAGE_MARK, IMAGE_MARK_LEN) == 0;
        if (at_mark || i >= n) {
            int32_t *ids = NULL;
            int k = 0;
            vr_status r = vr_tokenizer_encode(tok, s + st, i - st, &ids, &k, err);
            if (r == VR_OK) r = ib_put(out, ids, k, err);
            free(ids);
            if (r != VR_OK) return r;
            if (!at_mark) return VR_OK;
            static const int32_t image = VR_IMAGE_TOKEN_ID;
            r = ib_put(out, &image, 1, err);
            if (r != VR_OK) return r;
            i += IMAGE_MARK_LEN;
            st = i;
        } else {
            i++;
        }
    }
}

/* "User: " + value + "\n\n" and "Assistant:" as two separately tokenised sentences. */
static vr_status turn_ids(const vr_tokenizer *tok, const char *value, int32_t **ids, int *n, vr_error *err) {
    sbuf s = {0};
    sb_str(&s, "User: ");
    sb_str(&s, value);
    sb_str(&s, "\n\n");
    if (s.oom) {
        free(s.p);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory building the prompt");
    }
    ibuf out = {0};
    vr_status st = tokenize_sentence(tok, s.p, s.n, &out, err);
    if (st == VR_OK) st = tokenize_sentence(tok, "Assistant:", 10, &out, err);
    free(s.p);
    if (st != VR_OK) {
        free(out.p);
        return st;
    }
    *ids = out.p;
    *n = out.n;
    return VR_OK;
}

vr_status vr_prompt_first_turn(const vr_tokenizer *tok, const char *question, int with_image,
                               vr_image_position pos, int32_t **ids, int *n, vr_error *err) {
    *ids = NULL;
    *n = 0;
    char *value = NULL;
    vr_status st = vr_prompt_human_value(question, with_image, pos, &value, err);
    if (st != VR_OK) return st;
    st = turn_ids(tok, value, ids, n, err);
    free(value);
    return st;
}

vr_status vr_prompt_next_turn(const vr_tokenizer *tok, const char *question, int32_t **ids, int *n, vr_error *err) {
    return vr_prompt_first_turn(tok, question, 0, VR_IMAGE_FIRST, ids, n, err);
}
