/* eval/score_common.c — small pieces every scorer uses: a sorted string index and the id lists
 * of error messages. No benchmark logic. */
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
