/* kernels/sample.h — the token-choice rule, shared by the host sampler (model/sampler.c) and a
 * device backend's sample_rows op, so that a GPU and the host choose the same token for the same
 * logits and draw. Knows nothing of penalties' bookkeeping or the RNG: it takes penalised
 * logits and one uniform draw. */
#ifndef VR_SAMPLE_H
#define VR_SAMPLE_H

#include <stdint.h>

/* One row's choice. temperature <= 0 or top_k == 1: argmax. */
typedef struct vr_sample_row {
    float temperature;
    float top_p; /* 1 = off */
    int top_k;   /* 0 = off */
    double u;    /* the row's uniform draw in [0, 1) */
} vr_sample_row;

/* A candidate token: unnormalised probability, logit (the rank key) and id. */
typedef struct vr_sample_cand {
    double p;
    float v;
    int32_t id;
} vr_sample_cand;

/* The rule. Greedy rows, and rows where no logit is finite-or-+inf, take vr_argmax. Otherwise
 * p_i = exp((adj_i - max) / T) in double (0 for NaN; with a +inf logit, 1 for the +inf ones);
 * candidates are the tokens with p_i > 0; top-k keeps the k best by rank (larger logit first,
 * ties by the smaller id); top-p then keeps the smallest best-ranked set whose probability
 * reaches top_p times that of all kept; the token is the first kept id, in increasing id order,
 * at which the running sum of p exceeds u times the kept total (the last kept id if rounding
 * never lets it). cand holds n entries and kept n bytes (scratch, caller-owned). */
int32_t vr_sample_pick(const float *adj, int n, const vr_sample_row *row, vr_sample_cand *cand, uint8_t *kept);

/* The first index of the maximum (NaN never wins; all NaN: 0). */
int32_t vr_argmax(const float *x, int n);

#endif
