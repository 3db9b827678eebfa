/* model/prompt.c — the prompt text and token ids exactly as upstream evaluate.py builds them,
 * one implementation for `vrwkv run` and `vrwkv eval`: process_image_tokens_in_conversations
 * (Python str.strip(), re.sub(r"\n(\s*\n)+", "\n") with Python's Unicode \s, via common/pytext;
 * image placement first/middle/last; "Too many images") then preprocess ("User: …\n\n" and
 * "Assistant:" tokenised separately, each turn split at <image> into separately tokenised chunks
 * joined by -200). Must not know model math, images' pixels, sampling or benchmark rules. */
#include "model/prompt.h"

#include <stdlib.h>
#include <string.h>

#include "common/pytext.h"

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

/* ---------------------------------------------------------------- image token placement */

/* Appends re.sub(r"\n(\s*\n)+", "\n", s[0,n).strip()) to out. */
static void strip_collapse_append(vr_strbuf *out, const char *s, size_t n) {
    size_t a, b;
    vr_py_strip(s, n, &a, &b);
    vr_py_collapse_newlines(out, s + a, b - a);
}

/* Appends s[0,n) with every "<image>" removed, stripped and blank-line collapsed. */
static void unmarked_append(vr_strbuf *out, const char *s, size_t n) {
    vr_strbuf r = {0};
    vr_str_replace_all(&r, s, n, IMAGE_MARK, IMAGE_MARK_LEN, "", 0);
    if (r.oom) out->oom = 1;
    else strip_collapse_append(out, r.p ? r.p : "", r.n);
    vr_strbuf_free(&r);
}

/* Number of "<image>" markers in s. */
static size_t count_marks(const char *s, size_t n) {
    size_t k = 0, i = 0;
    long f;
    while ((f = vr_str_find(s, n, i, IMAGE_MARK, IMAGE_MARK_LEN)) >= 0) {
        k++;
        i = (size_t)f + IMAGE_MARK_LEN;
    }
    return k;
}

vr_status vr_prompt_process_message(const char *message, vr_image_position pos, char **out, vr_error *err) {
    *out = NULL;
    if (!message) return vr_error_set(err, VR_ERR_INVALID, "no prompt text given");
    size_t n = strlen(message);
    if (!vr_utf8_valid(message, n)) return vr_error_set(err, VR_ERR_INVALID, "the prompt text is not valid UTF-8");
    if (pos != VR_IMAGE_FIRST && pos != VR_IMAGE_MIDDLE && pos != VR_IMAGE_LAST)
        return vr_error_set(err, VR_ERR_INVALID, "unknown image position %d", (int)pos);
    size_t marks = count_marks(message, n);
    if (marks > 1)
        return vr_error_set(err, VR_ERR_INVALID,
                            "the prompt text holds %zu \"<image>\" markers; one image per question is supported "
                            "(upstream fails with \"Too many images\")",
                            marks);
    vr_strbuf v = {0};
    vr_strbuf_append(&v, "", 0);
    if (marks == 0) {
        /* sentence['value'] = re.sub(r"\n(\s*\n)+", '\n', value.strip()) */
        strip_collapse_append(&v, message, n);
    } else {
        vr_strbuf q = {0}; /* the message without its marker, stripped, collapsed */
        unmarked_append(&q, message, n);
        switch (pos) {
        case VR_IMAGE_FIRST:
            vr_strbuf_append_str(&v, IMAGE_MARK "\n");
            if (q.p) vr_strbuf_append(&v, q.p, q.n);
            break;
        case VR_IMAGE_MIDDLE: {
            /* H: the original message without marker, stripped, without the single-word
             * instruction, stripped, collapsed */
            vr_strbuf r = {0}, h = {0};
            vr_str_replace_all(&r, message, n, IMAGE_MARK, IMAGE_MARK_LEN, "", 0);
            size_t a = 0, b = 0;
            if (r.p) vr_py_strip(r.p, r.n, &a, &b);
            vr_strbuf r2 = {0};
            vr_str_replace_all(&r2, r.p ? r.p + a : "", b - a, SINGLE_WORD_INSTR, strlen(SINGLE_WORD_INSTR), "", 0);
            strip_collapse_append(&h, r2.p ? r2.p : "", r2.n);
            if (h.p) vr_strbuf_append(&v, h.p, h.n);
            vr_strbuf_append_str(&v, "\n" IMAGE_MARK "\n");
            if (q.p) vr_strbuf_append(&v, q.p, q.n);
            if (r.oom || r2.oom || h.oom) v.oom = 1;
            vr_strbuf_free(&r);
            vr_strbuf_free(&r2);
            vr_strbuf_free(&h);
            break;
        }
        case VR_IMAGE_LAST:
            if (q.p) vr_strbuf_append(&v, q.p, q.n);
            vr_strbuf_append_str(&v, "\n" IMAGE_MARK);
            break;
        }
        if (q.oom) v.oom = 1;
        vr_strbuf_free(&q);
        /* final .strip() */
        if (!v.oom) {
            size_t a, b;
            vr_py_strip(v.p, v.n, &a, &b);
            memmove(v.p, v.p + a, b - a);
            v.n = b - a;
            v.p[v.n] = 0;
        }
    }
    char *res = vr_strbuf_take(&v, NULL);
    if (!res) return vr_error_set(err, VR_ERR_NOMEM, "out of memory building the prompt");
    *out = res;
    return VR_OK;
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

/* The raw human message of a typed question: "<image>\n" + question, or the question alone. */
static char *typed_message(const char *question, int with_image) {
    vr_strbuf m = {0};
    if (with_image) vr_strbuf_append_str(&m, IMAGE_MARK "\n");
    vr_strbuf_append_str(&m, question);
    return vr_strbuf_take(&m, NULL);
}

vr_status vr_prompt_human_value(const char *question, int with_image, vr_image_position pos, char **out,
                                vr_error *err) {
    *out = NULL;
    vr_status st = check_question(question, err);
    if (st != VR_OK) return st;
    char *msg = typed_message(question, with_image);
    if (!msg) return vr_error_set(err, VR_ERR_NOMEM, "out of memory building the prompt");
    st = vr_prompt_process_message(msg, pos, out, err);
    free(msg);
    return st;
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
    vr_strbuf s = {0};
    vr_strbuf_append_str(&s, "User: ");
    vr_strbuf_append_str(&s, value);
    vr_strbuf_append_str(&s, "\n\n");
    if (s.oom) {
        vr_strbuf_free(&s);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory building the prompt");
    }
    ibuf out = {0};
    vr_status st = tokenize_sentence(tok, s.p, s.n, &out, err);
    if (st == VR_OK) st = tokenize_sentence(tok, "Assistant:", 10, &out, err);
    vr_strbuf_free(&s);
    if (st != VR_OK) {
        free(out.p);
        return st;
    }
    *ids = out.p;
    *n = out.n;
    return VR_OK;
}

void vr_prompt_built_free(vr_prompt_built *p) {
    if (!p) return;
    free(p->human_value);
    free(p->text);
    free(p->ids);
    memset(p, 0, sizeof *p);
}

vr_status vr_prompt_build(const vr_tokenizer *tok, const char *message, vr_image_position pos, vr_prompt_built *out,
                          vr_error *err) {
    memset(out, 0, sizeof *out);
    vr_status st = vr_prompt_process_message(message, pos, &out->human_value, err);
    if (st != VR_OK) return st;
    vr_strbuf t = {0};
    vr_strbuf_append_str(&t, "User: ");
    vr_strbuf_append_str(&t, out->human_value);
    vr_strbuf_append_str(&t, "\n\nAssistant:");
    out->text = vr_strbuf_take(&t, NULL);
    if (!out->text) {
        vr_prompt_built_free(out);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory building the prompt");
    }
    if (tok) {
        st = turn_ids(tok, out->human_value, &out->ids, &out->n_ids, err);
        if (st != VR_OK) {
            vr_prompt_built_free(out);
            return st;
        }
    }
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
