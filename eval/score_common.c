/* eval/score_common.c — small pieces every scorer uses: a sorted string index, the id lists of
 * error messages and the errors built around them, warnings, path joining, writing an output
 * file into the report. No benchmark logic. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/score.h"

static int key_cmp(const void *a, const void *b) {
    const vr_score_key *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void vr_score_keys_sort(vr_score_key *keys, size_t n) {
    if (n > 1) qsort(keys, n, sizeof *keys, key_cmp);
}

long vr_score_keys_find(const vr_score_key *keys, size_t n, const char *s) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(keys[mid].s, s) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < n && strcmp(keys[lo].s, s) == 0) return (long)keys[lo].idx;
    return -1;
}

void vr_score_list_ids(vr_strbuf *b, const char *const *ids, size_t n) {
    for (size_t i = 0; i < n && i < 8; i++) {
        if (i) vr_strbuf_append_str(b, ", ");
        vr_strbuf_append_str(b, ids[i]);
    }
    if (n > 8) vr_strbuf_printf(b, " and %zu more", n - 8);
}

vr_status vr_score_ids_error(vr_error *err, const char *oom_msg, const char *const *ids, size_t n, const char *tail,
                             const char *fmt, ...) {
    vr_strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    char *head = NULL;
    if (vasprintf(&head, fmt, ap) < 0) head = NULL;
    va_end(ap);
    if (head) vr_strbuf_append_str(&b, head);
    else b.oom = 1;
    free(head);
    vr_score_list_ids(&b, ids, n);
    if (tail) vr_strbuf_append_str(&b, tail);
    vr_status st = vr_error_set(err, VR_ERR_INVALID, "%s", b.oom ? oom_msg : b.p);
    vr_strbuf_free(&b);
    return st;
}

void vr_score_warning_add(cJSON *warnings, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0) text = NULL;
    va_end(ap);
    cJSON_AddItemToArray(warnings, cJSON_CreateString(text ? text : ""));
    free(text);
}

char *vr_score_join_path(const char *dir, const char *rel) {
    vr_strbuf s = {0};
    vr_strbuf_append_str(&s, dir);
    if (s.n && s.p[s.n - 1] != '/') vr_strbuf_append_char(&s, '/');
    vr_strbuf_append_str(&s, rel);
    return vr_strbuf_take(&s, NULL);
}

vr_status vr_score_write_output(const char *path, const char *data, size_t n, vr_score_report *rep, vr_error *err) {
    vr_status st = vr_score_write_file(path, data, n, err);
    if (st != VR_OK) return st;
    return vr_score_report_add_file(rep, path, err);
}
