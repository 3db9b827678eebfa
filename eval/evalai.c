/* eval/evalai.c — eval_vqa.py's processPunctuation / processDigitArticle and
 * m4c_evaluator.EvalAIAnswerProcessor over UTF-8 with Python str semantics (common/pytext).
 * It must reproduce upstream exactly, quirks included, and must not add normalisation of its
 * own (no Unicode folding, no trimming beyond what upstream does). */
#include "eval/evalai.h"

#include <stdlib.h>
#include <string.h>

/* Whether s has a decimal digit, then one comma (eval_vqa) or a run of commas (m4c), then a
 * decimal digit. */
static int has_comma_digit(const char *s, size_t n, vr_punct_variant v) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp = vr_utf8_decode_next(s, n, &i);
        if (!vr_py_isdecimal(cp)) continue;
        size_t j = i, commas = 0;
        while (j < n && s[j] == ',') {
            j++;
            commas++;
            if (v == VR_PUNCT_EVAL_VQA) break;
        }
        if (commas == 0 || j >= n) continue;
        size_t k = j;
        if (vr_py_isdecimal(vr_utf8_decode_next(s, n, &k))) return 1;
    }
    return 0;
}

static int contains(const char *s, size_t n, const char *pat) {
    return vr_str_find(s, n, 0, pat, strlen(pat)) >= 0;
}

vr_status vr_vqa_process_punctuation(vr_strbuf *out, const char *s, size_t n, vr_punct_variant v) {
    int comma_digit = has_comma_digit(s, n, v);
    vr_strbuf cur = {0}, next = {0};
    vr_strbuf_append(&cur, s, n);
    for (size_t k = 0; k < vr_vqa_punctuations_n; k++) {
        const char *p = vr_vqa_punctuations[k];
        char ps[8], sp[8];
        size_t pl = strlen(p);
        if (pl + 2 > sizeof ps) return VR_ERR_INTERNAL;
        memcpy(ps, p, pl);
        ps[pl] = ' ';
        ps[pl + 1] = 0;
        sp[0] = ' ';
        memcpy(sp + 1, p, pl + 1);
        int del = contains(s, n, ps) || contains(s, n, sp) || comma_digit;
        next.n = 0;
        vr_strbuf_append(&next, "", 0);
        vr_str_replace_all(&next, cur.p, cur.n, p, pl, del ? "" : " ", del ? 0 : 1);
        vr_strbuf tmp = cur;
        cur = next;
        next = tmp;
    }
    /* re.sub(r"(?!<=\d)(\.)(?!\d)", "", text, 32): the lookahead reads the original text. */
    int removed = 0;
    size_t i = 0;
    while (i < cur.n) {
        size_t st = i;
        uint32_t cp = vr_utf8_decode_next(cur.p, cur.n, &i);
        if (cp == '.' && removed < vr_vqa_period_strip_max) {
            int digit_next = 0;
            if (i < cur.n) {
                size_t k = i;
                digit_next = vr_py_isdecimal(vr_utf8_decode_next(cur.p, cur.n, &k));
            }
            if (!digit_next) {
                removed++;
                continue;
            }
        }
        vr_strbuf_append(out, cur.p + st, i - st);
    }
    int oom = cur.oom || next.oom;
    vr_strbuf_free(&cur);
    vr_strbuf_free(&next);
    return (oom || out->oom) ? VR_ERR_NOMEM : VR_OK;
}

static const char *lookup(const char *const (*tab)[2], size_t n, const char *w, size_t wl) {
    for (size_t k = 0; k < n; k++)
        if (strlen(tab[k][0]) == wl && memcmp(tab[k][0], w, wl) == 0) return tab[k][1];
    return NULL;
}

vr_status vr_vqa_process_digit_article(vr_strbuf *out, const char *s, size_t n) {
    size_t ln = 0;
    char *low = vr_py_lower(s, n, &ln);
    if (!low) return VR_ERR_NOMEM;
    vr_span *w = NULL;
    size_t cnt = 0;
    vr_error err = {0};
    if (vr_py_split_ws(low, ln, &w, &cnt, &err) != VR_OK) {
        free(low);
        return VR_ERR_NOMEM;
    }
    int first = 1;
    for (size_t k = 0; k < cnt; k++) {
        const char *word = low + w[k].off;
        size_t wl = w[k].len;
        const char *mapped = lookup(vr_vqa_number_map, vr_vqa_number_map_n, word, wl);
        if (mapped) {
            word = mapped;
            wl = strlen(mapped);
        }
        int article = 0;
        for (size_t a = 0; a < vr_vqa_articles_n; a++)
            if (strlen(vr_vqa_articles[a]) == wl && memcmp(vr_vqa_articles[a], word, wl) == 0) article = 1;
        if (article) continue;
        const char *con = lookup(vr_vqa_contractions, vr_vqa_contractions_n, word, wl);
        if (con) {
            word = con;
            wl = strlen(con);
        }
        if (!first) vr_strbuf_append_char(out, ' ');
        vr_strbuf_append(out, word, wl);
        first = 0;
    }
    free(w);
    free(low);
    return out->oom ? VR_ERR_NOMEM : VR_OK;
}

/* Appends s with '\n' and '\t' replaced by spaces, stripped. */
static void tabs_to_spaces_strip(vr_strbuf *out, const char *s, size_t n) {
    size_t a = 0, b = 0;
    vr_strbuf t = {0};
    vr_strbuf_append(&t, s, n);
    for (size_t i = 0; i < t.n; i++)
        if (t.p[i] == '\n' || t.p[i] == '\t') t.p[i] = ' ';
    if (t.p) {
        vr_py_strip(t.p, t.n, &a, &b);
        vr_strbuf_append(out, t.p + a, b - a);
    }
    if (t.oom) out->oom = 1;
    vr_strbuf_free(&t);
}

vr_status vr_vqa_normalize_prediction(vr_strbuf *out, const char *s, size_t n) {
    vr_strbuf a = {0}, b = {0};
    vr_strbuf_append(&a, "", 0);
    vr_strbuf_append(&b, "", 0);
    tabs_to_spaces_strip(&a, s, n);
    vr_status st = VR_ERR_NOMEM;
    if (!a.oom && vr_vqa_process_punctuation(&b, a.p, a.n, VR_PUNCT_EVAL_VQA) == VR_OK)
        st = vr_vqa_process_digit_article(out, b.p, b.n);
    vr_strbuf_free(&a);
    vr_strbuf_free(&b);
    return st;
}

vr_status vr_evalai_process(vr_strbuf *out, const char *s, size_t n) {
    vr_strbuf a = {0}, b = {0};
    vr_status st = VR_ERR_NOMEM;
    /* word_tokenize: lower; delete ',' and '?'; "'s" -> " 's"; strip */
    if (vr_strbuf_append(&a, "", 0) != VR_OK || vr_py_lower_append(&a, s, n) != VR_OK) goto done;
    vr_strbuf_append(&b, "", 0);
    vr_py_replace_chars(&b, a.p, a.n, ",?", "");
    a.n = 0;
    vr_str_replace_all(&a, b.p, b.n, "'s", 2, " 's", 3);
    if (a.oom || b.oom) goto done;
    size_t x = 0, y = 0;
    vr_py_strip(a.p, a.n, &x, &y);
    /* then \n \t -> ' ', strip */
    b.n = 0;
    tabs_to_spaces_strip(&b, a.p + x, y - x);
    a.n = 0;
    vr_strbuf_append(&a, "", 0);
    if (b.oom || vr_vqa_process_punctuation(&a, b.p ? b.p : "", b.n, VR_PUNCT_M4C) != VR_OK) goto done;
    st = vr_vqa_process_digit_article(out, a.p, a.n);
done:
    vr_strbuf_free(&a);
    vr_strbuf_free(&b);
    return st;
}

char *vr_evalai_answer(const char *s, size_t n) {
    vr_strbuf b = {0};
    if (vr_strbuf_append(&b, "", 0) != VR_OK || vr_evalai_process(&b, s, n) != VR_OK) {
        vr_strbuf_free(&b);
        return NULL;
    }
    return vr_strbuf_take(&b, NULL);
}
