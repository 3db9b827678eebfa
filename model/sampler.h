/* model/sampler.h — choosing the next token from logits: greedy, temperature, top-k, top-p,
 * presence and frequency penalties (subtracted from the logits; the per-token counts decay by
 * 0.996 each generated token, as upstream RWKV chat does), a seeded RNG, stop tokens.
 * Runs on host f32 logits; knows nothing of the model. */
#ifndef VR_SAMPLER_H
#define VR_SAMPLER_H

#include <stdint.h>

#include "common/error.h"
#include "kernels/sample.h"

typedef struct vr_sampling_params {
    float temperature;       /* <= 0: greedy (argmax, the first index of the max) */
    float top_p;             /* 1.0 = off */
    int top_k;               /* 0 = off */
    float presence_penalty;  /* 0 = off */
    float frequency_penalty; /* 0 = off */
    float penalty_decay;     /* 0.996 */
    uint64_t seed;
} vr_sampling_params;

void vr_sampling_params_default(vr_sampling_params *p); /* greedy, top_p 1, decay 0.996, seed 0 */
vr_status vr_sampling_params_check(const vr_sampling_params *p, vr_error *err);

typedef struct vr_sampler vr_sampler;

vr_status vr_sampler_create(const vr_sampling_params *p, int n_vocab, vr_sampler **out, vr_error *err);
void vr_sampler_free(vr_sampler *s);
/* Picks a token from logits[n_vocab] (not modified) applying penalties from the tokens
 * accepted so far; then records the choice (decays counts, adds 1 for the token). */
int32_t vr_sampler_sample(vr_sampler *s, const float *logits);
/* Records a token without sampling it (e.g. a forced stop token), same bookkeeping. */
void vr_sampler_accept(vr_sampler *s, int32_t token);
void vr_sampler_reset(vr_sampler *s);
/* For a device choice (a backend's sample_rows): the row's parameters with its draw (advances
 * the RNG exactly as vr_sampler_sample would), and the penalties to subtract: ids[i] loses
 * sub[i] (float subtraction); returns how many (pointers into the sampler, valid until its
 * next call). Then vr_sampler_accept the device's choice. */
void vr_sampler_row(vr_sampler *s, vr_sample_row *row);
int vr_sampler_penalties(vr_sampler *s, const int32_t **ids, const float **sub);
/* 1 when sampling is a plain argmax of the logits (greedy or top-k 1, no penalties), so a
 * device argmax plus vr_sampler_accept gives the same choice and bookkeeping. */
int vr_sampler_is_greedy(const vr_sampler *s);

/* log softmax(logits)[token], computed in double (what upstream's avg_prob is made of). */
double vr_logprob(const float *logits, int n, int32_t token);


#endif
