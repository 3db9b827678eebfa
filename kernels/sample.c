/* kernels/sample.c — the token-choice rule (see sample.h): argmax, and softmax(logits / T) with
 * top-k and top-p by quickselect (expected O(n), never a full sort), then one draw walked in
 * increasing id order. Plain host C: the CUDA backend's sample_rows follows the same rule and
 * tests/gpu compares the two. Must not keep state. */
#include "kernels/sample.h"

#include <math.h>
#include <string.h>

int32_t vr_argmax(const float *x, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
    return best < 0 ? 0 : best;
}

/* Rank order: a before b when its logit is larger, ties by the smaller id. */
static int ranks_before(const vr_sample_cand *a, const vr_sample_cand *b) { return a->v > b->v || (a->v == b->v && a->id < b->id); }

static void swap_cand(vr_sample_cand *x, int i, int j) {
    vr_sample_cand t = x[i];
    x[i] = x[j];
    x[j] = t;
}

/* Partitions c[lo,hi) (hi - lo >= 2) around a median-of-three pivot: c[lo,p) rank before the
 * pivot, c[p] is the pivot, c(p,hi) rank after it. Returns p. */
static int partition(vr_sample_cand *c, int lo, int hi) {
    int mid = lo + (hi - lo) / 2, last = hi - 1;
    if (ranks_before(&c[mid], &c[lo])) swap_cand(c, mid, lo);
    if (ranks_before(&c[last], &c[lo])) swap_cand(c, last, lo);
    if (ranks_before(&c[last], &c[mid])) swap_cand(c, last, mid);
    swap_cand(c, mid, last); /* the median is the pivot, parked at the end */
    vr_sample_cand pivot = c[last];
    int p = lo;
    for (int i = lo; i < last; i++)
        if (ranks_before(&c[i], &pivot)) swap_cand(c, i, p++);
    swap_cand(c, p, last);
    return p;
}

/* Rearranges c[0,n) so that c[0,k) are the k best-ranked (in no particular order). */
static void select_top_k(vr_sample_cand *c, int n, int k) {
    int lo = 0, hi = n;
    while (hi - lo > 1) {
        int p = partition(c, lo, hi);
        if (p == k || p + 1 == k) return;
        if (p > k) hi = p;
        else lo = p + 1;
    }
}

/* Rearranges c[0,n) so that c[0,m) is the smallest best-ranked set whose probability reaches
 * target; returns m (>= 1; n when rounding keeps the sum below target). */
static int select_nucleus(vr_sample_cand *c, int n, double target) {
    int lo = 0, hi = n;
    double acc = 0; /* probability of c[0,lo), all kept; acc < target */
    while (hi - lo > 1) {
        int p = partition(c, lo, hi);
        double s = 0;
        for (int i = lo; i < p; i++) s += c[i].p;
        if (acc + s >= target) {
            hi = p; /* the answer lies in (lo, p] */
        } else if (acc + s + c[p].p >= target) {
            return p + 1;
        } else {
            acc += s + c[p].p;
            lo = p + 1;
        }
    }
    return hi > 0 ? hi : 1;
}

/* p for one logit, as the candidates are made (recomputed the same way when walking ids) */
static double prob_of(float v, float mx, double inv_t) {
    if (isnan(v)) return 0.0;
    if (mx == INFINITY) return v == INFINITY ? 1.0 : 0.0;
    return exp(((double)v - (double)mx) * inv_t);
}

/* the sum of p over the kept ids, in increasing id order */
static double kept_total(const float *adj, int n, const uint8_t *kept, float mx, double inv_t) {
    double total = 0;
    for (int i = 0; i < n; i++)
        if (kept[i]) total += prob_of(adj[i], mx, inv_t);
    return total;
}

int32_t vr_sample_pick(const float *adj, int n, const vr_sample_row *row, vr_sample_cand *c, uint8_t *kept) {
    if (row->temperature <= 0 || row->top_k == 1) return vr_argmax(adj, n);
    float mx = -INFINITY;
    int any = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(adj[i]) && (!any || adj[i] > mx)) {
            mx = adj[i];
            any = 1;
        }
    if (!any || mx == -INFINITY) return vr_argmax(adj, n); /* nothing has a positive probability */
    double inv_t = 1.0 / (double)row->temperature;
    int nc = 0;
    for (int i = 0; i < n; i++) {
        double e = prob_of(adj[i], mx, inv_t);
        if (e > 0) {
            c[nc].p = e;
            c[nc].v = adj[i];
            c[nc].id = i;
            nc++;
        }
    }
    if (row->top_k > 0 && row->top_k < nc) {
        select_top_k(c, nc, row->top_k);
        nc = row->top_k;
    }
    memset(kept, 0, (size_t)n);
    for (int i = 0; i < nc; i++) kept[c[i].id] = 1;
    if (row->top_p < 1.0f && nc > 1) {
        double total = kept_total(adj, n, kept, mx, inv_t);
        int m = select_nucleus(c, nc, (double)row->top_p * total);
        for (int i = m; i < nc; i++) kept[c[i].id] = 0;
        nc = m;
    }
    double r = row->u * kept_total(adj, n, kept, mx, inv_t), acc = 0;
    int32_t last = -1;
    for (int i = 0; i < n; i++) {
        if (!kept[i]) continue;
        acc += prob_of(adj[i], mx, inv_t);
        if (r < acc) return i;
        last = i;
    }
    return last >= 0 ? last : vr_argmax(adj, n);
}
