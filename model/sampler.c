/* model/sampler.c — picks the next token from host f32 logits: penalties as upstream RWKV chat
 * (logit -= presence + count * frequency for every token seen so far; all counts *= decay after
 * each token, then count[token] += 1), a draw from a seeded xoshiro256** generator, and the
 * choice rule of kernels/sample.c (greedy or softmax(logits / T) in double, top-k, top-p), the
 * same a device backend applies. Must not know the model or the tokenizer. */
#include "model/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


struct vr_sampler {
    vr_sampling_params p;
    int n;             /* vocab size */
    double *count;     /* [n] decayed occurrence counts */
    uint8_t *seen;     /* [n] 1 once a token was accepted (upstream keeps it in its dict forever) */
    int32_t *seen_list;/* [n_seen] the tokens with seen = 1 */
    int n_seen;
    float *adj;        /* [n] penalised logits (scratch) */
    vr_sample_cand *cand; /* [n] candidates (scratch for vr_sample_pick) */
    uint8_t *kept;     /* [n] (scratch for vr_sample_pick) */
    float *pen_sub;    /* [n] what each seen token's logit loses (vr_sampler_penalties) */
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
    free(s->kept);
    free(s->pen_sub);
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
    s->cand = malloc(n * sizeof(vr_sample_cand));
    s->kept = calloc(n, 1);
    s->pen_sub = malloc(n * sizeof(float));
    if (!s->count || !s->seen || !s->seen_list || !s->adj || !s->cand || !s->kept || !s->pen_sub) {
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

int vr_sampler_is_greedy(const vr_sampler *s) {
    const vr_sampling_params *p = &s->p;
    return (p->temperature <= 0 || p->top_k == 1) && p->presence_penalty == 0 && p->frequency_penalty == 0;
}

int32_t vr_sampler_sample(vr_sampler *s, const float *logits) {
    float *adj = s->adj;
    memcpy(adj, logits, sizeof(float) * (size_t)s->n);
    const int32_t *ids = NULL;
    const float *sub = NULL;
    int n_pen = vr_sampler_penalties(s, &ids, &sub);
    for (int i = 0; i < n_pen; i++) adj[ids[i]] -= sub[i];
    vr_sample_row row;
    vr_sampler_row(s, &row);
    int32_t tok = vr_sample_pick(adj, s->n, &row, s->cand, s->kept);
    vr_sampler_accept(s, tok);
    return tok;
}

void vr_sampler_row(vr_sampler *s, vr_sample_row *row) {
    const vr_sampling_params *p = &s->p;
    row->temperature = p->temperature;
    row->top_p = p->top_p;
    row->top_k = p->top_k;
    /* a draw for every non-greedy choice, whatever the logits: the host and a device see the
     * same sequence of draws */
    row->u = p->temperature <= 0 || p->top_k == 1 ? 0.0 : rng_uniform(s);
}

int vr_sampler_penalties(vr_sampler *s, const int32_t **ids, const float **sub) {
    const vr_sampling_params *p = &s->p;
    *ids = s->seen_list;
    *sub = s->pen_sub;
    if (p->presence_penalty == 0 && p->frequency_penalty == 0) return 0;
    for (int i = 0; i < s->n_seen; i++) {
        int32_t t = s->seen_list[i];
        s->pen_sub[i] = (float)((double)p->presence_penalty + s->count[t] * (double)p->frequency_penalty);
    }
    return s->n_seen;
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
