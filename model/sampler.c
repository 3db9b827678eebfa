/* model/sampler.c — picks the next token from host f32 logits: penalties as upstream RWKV chat
 * (logit -= presence + count * frequency for every token seen so far; all counts *= decay after
 * each token, then count[token] += 1), then greedy or softmax(logits / T) in double, top-k,
 * top-p (nucleus), and a draw from a seeded xoshiro256** generator. Top-k and top-p use
 * quickselect (expected O(n)), never a full sort. Must not know the model or the tokenizer. */
#include "model/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A candidate token: its unnormalised probability, penalised logit (the rank key) and id. Kept
 * together so that quickselect works on contiguous memory. */
typedef struct {
    double p;
    float v;
    int32_t id;
} vr_cand;

struct vr_sampler {
    vr_sampling_params p;
    int n;             /* vocab size */
    double *count;     /* [n] decayed occurrence counts */
    uint8_t *seen;     /* [n] 1 once a token was accepted (upstream keeps it in its dict forever) */
    int32_t *seen_list;/* [n_seen] the tokens with seen = 1 */
    int n_seen;
    float *adj;        /* [n] penalised logits (scratch) */
    vr_cand *cand;     /* [n] candidates with a positive probability (scratch) */
    uint64_t rng[4];
};

/* ---------------------------------------------------------------- params */

void vr_sampling_params_default(vr_sampling_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 0.0f;
    p->top_p = 1.0f;
    p->top_k = 0;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->penalty_decay = 0.996f;
    p->seed = 0;
}

vr_status vr_sampling_params_check(const vr_sampling_params *p, vr_error *err) {
    if (!isfinite(p->temperature) || p->temperature < 0)
        return vr_error_set(err, VR_ERR_INVALID, "temperature %g is invalid: use a finite value >= 0 (0 = greedy)",
                            (double)p->temperature);
    if (!isfinite(p->top_p) || p->top_p <= 0 || p->top_p > 1)
        return vr_error_set(err, VR_ERR_INVALID, "top_p %g is invalid: use a value in (0, 1] (1 = off)", (double)p->top_p);
    if (p->top_k < 0)
        return vr_error_set(err, VR_ERR_INVALID, "top_k %d is invalid: use a value >= 0 (0 = off)", p->top_k);
    if (!isfinite(p->presence_penalty))
        return vr_error_set(err, VR_ERR_INVALID, "presence_penalty %g is invalid: use a finite value (0 = off)",
                            (double)p->presence_penalty);
    if (!isfinite(p->frequency_penalty))
        return vr_error_set(err, VR_ERR_INVALID, "frequency_penalty %g is invalid: use a finite value (0 = off)",
                            (double)p->frequency_penalty);
    if (!isfinite(p->penalty_decay) || p->penalty_decay < 0 || p->penalty_decay > 1)
        return vr_error_set(err, VR_ERR_INVALID, "penalty_decay %g is invalid: use a value in [0, 1] (0.996 upstream)",
                            (double)p->penalty_decay);
    return VR_OK;
}

/* ---------------------------------------------------------------- RNG */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void rng_seed(vr_sampler *s) {
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

/* uniform in [0, 1) with 53 random bits */
static double rng_uniform(vr_sampler *s) { return (double)(xoshiro_next(s->rng) >> 11) * (1.0 / 9007199254740992.0); }

/* ---------------------------------------------------------------- lifecycle */

void vr_sampler_free(vr_sampler *s) {
    if (!s) return;
    free(s->count);
    free(s->seen);
    free(s->seen_list);
    free(s->adj);
    free(s->cand);
    free(s);
}

vr_status vr_sampler_create(const vr_sampling_params *p, int n_vocab, vr_sampler **out, vr_error *err) {
    *out = NULL;
    vr_status st = vr_sampling_params_check(p, err);
    if (st != VR_OK) return st;
    if (n_vocab <= 0) return vr_error_set(err, VR_ERR_INVALID, "sampler vocab size %d must be positive", n_vocab);
    vr_sampler *s = calloc(1, sizeof *s);
    if (!s) return vr_error_set(err, VR_ERR_NOMEM, "out of memory creating the sampler");
    size_t n = (size_t)n_vocab;
    s->p = *p;
    s->n = n_vocab;
    s->count = calloc(n, sizeof(double));
    s->seen = calloc(n, 1);
    s->seen_list = malloc(n * sizeof(int32_t));
    s->adj = malloc(n * sizeof(float));
    s->cand = malloc(n * sizeof(vr_cand));
    if (!s->count || !s->seen || !s->seen_list || !s->adj || !s->cand) {
        vr_sampler_free(s);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory creating a sampler for %d tokens", n_vocab);
    }
    rng_seed(s);
    *out = s;
    return VR_OK;
}

void vr_sampler_reset(vr_sampler *s) {
    for (int i = 0; i < s->n_seen; i++) {
        s->count[s->seen_list[i]] = 0;
        s->seen[s->seen_list[i]] = 0;
    }
    s->n_seen = 0;
    rng_seed(s);
}

void vr_sampler_accept(vr_sampler *s, int32_t token) {
    double decay = s->p.penalty_decay;
    for (int i = 0; i < s->n_seen; i++) s->count[s->seen_list[i]] *= decay;
    if (token < 0 || token >= s->n) return; /* e.g. an image placeholder: nothing to count */
    if (!s->seen[token]) {
        s->seen[token] = 1;
        s->seen_list[s->n_seen++] = token;
    }
    s->count[token] += 1.0;
}

/* ---------------------------------------------------------------- selection */

int32_t vr_argmax(const float *x, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
    return best < 0 ? 0 : best;
}

/* Rank order: a before b when its logit is larger, ties by the smaller id. */
static int ranks_before(const vr_cand *a, const vr_cand *b) { return a->v > b->v || (a->v == b->v && a->id < b->id); }

static void swap_cand(vr_cand *x, int i, int j) {
    vr_cand t = x[i];
    x[i] = x[j];
    x[j] = t;
}

/* Partitions c[lo,hi) (hi - lo >= 2) around a median-of-three pivot: c[lo,p) rank before the
 * pivot, c[p] is the pivot, c(p,hi) rank after it. Returns p. */
static int partition(vr_cand *c, int lo, int hi) {
    int mid = lo + (hi - lo) / 2, last = hi - 1;
    if (ranks_before(&c[mid], &c[lo])) swap_cand(c, mid, lo);
    if (ranks_before(&c[last], &c[lo])) swap_cand(c, last, lo);
    if (ranks_before(&c[last], &c[mid])) swap_cand(c, last, mid);
    swap_cand(c, mid, last); /* the median is the pivot, parked at the end */
    vr_cand pivot = c[last];
    int p = lo;
    for (int i = lo; i < last; i++)
        if (ranks_before(&c[i], &pivot)) swap_cand(c, i, p++);
    swap_cand(c, p, last);
    return p;
}

/* Rearranges c[0,n) so that c[0,k) are the k best-ranked (in no particular order). */
static void select_top_k(vr_cand *c, int n, int k) {
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
static int select_nucleus(vr_cand *c, int n, double target) {
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

int vr_sampler_is_greedy(const vr_sampler *s) {
    const vr_sampling_params *p = &s->p;
    return (p->temperature <= 0 || p->top_k == 1) && p->presence_penalty == 0 && p->frequency_penalty == 0;
}

int32_t vr_sampler_sample(vr_sampler *s, const float *logits) {
    const vr_sampling_params *p = &s->p;
    int n = s->n;
    float *adj = s->adj;
    memcpy(adj, logits, sizeof(float) * (size_t)n);
    if (p->presence_penalty != 0 || p->frequency_penalty != 0) {
        for (int i = 0; i < s->n_seen; i++) {
            int32_t t = s->seen_list[i];
            adj[t] -= (float)((double)p->presence_penalty + s->count[t] * (double)p->frequency_penalty);
        }
    }
    int32_t tok;
    if (p->temperature <= 0 || p->top_k == 1) {
        tok = vr_argmax(adj, n);
        goto done;
    }
    float mx = -INFINITY;
    int any = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(adj[i]) && (!any || adj[i] > mx)) {
            mx = adj[i];
            any = 1;
        }
    if (!any || mx == -INFINITY) { /* nothing has positive probability: fall back to greedy */
        tok = vr_argmax(adj, n);
        goto done;
    }
    /* softmax numerators in double; candidates are the tokens with a positive probability */
    double inv_t = 1.0 / (double)p->temperature;
    vr_cand *c = s->cand;
    int nc = 0;
    for (int i = 0; i < n; i++) {
        double e;
        if (isnan(adj[i])) e = 0;
        else if (mx == INFINITY) e = adj[i] == INFINITY ? 1.0 : 0.0;
        else e = exp(((double)adj[i] - (double)mx) * inv_t);
        if (e > 0) {
            c[nc].p = e;
            c[nc].v = adj[i];
            c[nc].id = i;
            nc++;
        }
    }
    if (p->top_k > 0 && p->top_k < nc) {
        select_top_k(c, nc, p->top_k);
        nc = p->top_k;
    }
    if (p->top_p < 1.0f && nc > 1) {
        double total = 0;
        for (int i = 0; i < nc; i++) total += c[i].p;
        nc = select_nucleus(c, nc, (double)p->top_p * total);
    }
    double total = 0;
    for (int i = 0; i < nc; i++) total += c[i].p;
    double r = rng_uniform(s) * total, acc = 0;
    tok = c[nc - 1].id;
    for (int i = 0; i < nc; i++) {
        acc += c[i].p;
        if (r < acc) {
            tok = c[i].id;
            break;
        }
    }
done:
    vr_sampler_accept(s, tok);
    return tok;
}

double vr_logprob(const float *logits, int n, int32_t token) {
    if (token < 0 || token >= n) return -INFINITY;
    double mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[token] - mx - log(sum);
}
