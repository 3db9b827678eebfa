/* model/engine.h — one loaded VisualRWKV model ready to serve: checkpoint, config, weights on
 * a backend, tokenizer; sessions with their recurrent state; prefill, batched decode step and
 * the turn loop (prefill, sample, stream, finish the turn with 261 in the state).
 * This is what the CLI and the workers drive. No networking, no prompt policy beyond
 * model/prompt. */
#ifndef VR_ENGINE_H
#define VR_ENGINE_H

#include <stdint.h>

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/image.h"
#include "model/prompt.h"
#include "model/rwkv.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "model/vision.h"
#include "model/weights.h"

typedef struct vr_engine_options {
    const char *model_path;  /* .pth or .safetensors */
    const char *config_path; /* optional model.json */
    const char *vocab_path;  /* optional: no tokenizer without it */
    int threads;             /* CPU threads, <= 0 default */
    const vr_weights_select *select; /* which parts to load (a shard, a vision worker); NULL: all */
    const char *backend;     /* "cpu" | "cuda" (GPU 0; CUDA_VISIBLE_DEVICES picks); NULL: "cpu" */
} vr_engine_options;

/* Decode steps of at most this many sessions are recorded and replayed (CUDA graphs). */
#define VR_ENGINE_GRAPH_MAX_BATCH 256

typedef struct vr_engine {
    vr_checkpoint *ck;
    vr_model_config cfg;
    vr_backend *be;
    vr_weights *w;
    vr_tokenizer *tok; /* may be NULL */
    vr_workspace *ws;
    float *x;          /* device activations, grow-only */
    size_t x_cap;
    float *logits;     /* device logits, grow-only */
    size_t logits_cap;
    /* decode steps recorded per batch size (backends with graph_begin; VRWKV_CUDA_GRAPHS=0 turns
     * them off): seen once eagerly, consecutive recording failures */
    int graphs;
    unsigned char graph_seen[VR_ENGINE_GRAPH_MAX_BATCH + 1];
    unsigned char graph_fail[VR_ENGINE_GRAPH_MAX_BATCH + 1];
} vr_engine;

vr_status vr_engine_open(const vr_engine_options *opt, vr_engine **out, vr_error *err);
void vr_engine_free(vr_engine *e);

/* A grow-only buffer of at least n floats on the engine's device, owned by the caller (*buf,
 * *cap start NULL, 0; vr_engine_buffer_free releases it). NULL when out of memory. */
float *vr_engine_buffer(vr_engine *e, float **buf, size_t *cap, size_t n);
void vr_engine_buffer_free(vr_engine *e, float **buf, size_t *cap);
/* Runs fn(ctx, err), the ops of one decode step of `key` sessions (1..VR_ENGINE_GRAPH_MAX_BATCH),
 * recorded as a CUDA graph on its second run at that key and replayed after, where the backend
 * records (graph_begin) and e->graphs is on; eagerly otherwise, or when recording fails. fn
 * must issue ops only (no upload, download or sync), on buffers that stay where they are, and
 * see host data only through the ops' own tables (ids, runs, state pointers). */
vr_status vr_engine_run_step(vr_engine *e, int key, vr_status (*fn)(void *ctx, vr_error *err), void *ctx,
                             vr_error *err);
/* Waits for the engine's device and reports its first failure since the last check. */
vr_status vr_engine_check(vr_engine *e, vr_error *err);

/* Image bytes (JPEG/PNG) → projected features, host [num_image_tokens * n_embd] (malloc'd). */
vr_status vr_engine_encode_image(vr_engine *e, const uint8_t *data, size_t size, const char *name, float **features,
                                 vr_error *err);
/* Preprocessed pixels (host [3, S, S]) → features (host, malloc'd). trace optional. */
vr_status vr_engine_encode_pixels(vr_engine *e, const float *pixels, float **features, vr_vision_trace *trace,
                                  vr_error *err);

typedef struct vr_session {
    vr_state *state;
    vr_scan_mode scan;
    int32_t *transcript; /* every id the state has consumed, -200 for the image */
    int n_transcript, cap_transcript;
    int n_rows;          /* rows consumed (image counts n_img) */
} vr_session;

vr_status vr_session_create(vr_engine *e, vr_scan_mode scan, vr_session **out, vr_error *err);
void vr_session_free(vr_session *s);
/* Back to a fresh state with an empty transcript (the allocation is kept). */
void vr_session_reset(vr_session *s);

/* Consumes ids (at most one -200, then features host [n_img, C] are used) and writes the logits
 * after the last id into logits (host [V], may be NULL). hidden (optional, host) receives
 * [n_layer + 1][rows][C] in original row order: the input and the output of every block. */
vr_status vr_session_prefill(vr_engine *e, vr_session *s, const int32_t *ids, int n, const float *features, int n_img,
                             float *logits, float *hidden, vr_error *err);
/* One decode step for n sessions at once: sessions[i] consumes tokens[i]; logits host [n, V]. */
vr_status vr_sessions_step(vr_engine *e, vr_session *const *sessions, const int32_t *tokens, int n, float *logits,
                           vr_error *err);

/* A decode step that picks each session's next token greedily where the logits are (on the GPU
 * for the cuda backend, so they never cross to the host): next[i] = argmax (first index of the
 * max), next_logit / next_logprob (may be NULL) its logit and log-probability. */
vr_status vr_sessions_step_greedy(vr_engine *e, vr_session *const *sessions, const int32_t *tokens, int n,
                                  int32_t *next, float *next_logit, float *next_logprob, vr_error *err);

/* The next token for each of m rows of logits (device memory, [m, V]), each by its sampler,
 * which records the choice as vr_sampler_sample does: on the device where the backend can
 * (argmax_rows for all-greedy rows, else sample_rows: only ids and two floats per row come
 * back), else on the host. next_logit / next_logprob (may be NULL): the raw logit and log
 * softmax of the choice. */
vr_status vr_engine_sample(vr_engine *e, const float *logits, int m, vr_sampler *const *samplers, int32_t *next,
                           float *next_logit, float *next_logprob, vr_error *err);
/* A decode step, then vr_engine_sample on its logits. */
vr_status vr_sessions_step_sample(vr_engine *e, vr_session *const *sessions, const int32_t *tokens, int n,
                                  vr_sampler *const *samplers, int32_t *next, float *next_logit, float *next_logprob,
                                  vr_error *err);

typedef struct vr_turn_options {
    int max_tokens;          /* > 0 */
    const int32_t *stop_tokens;
    int n_stop_tokens;       /* 0: {261} */
} vr_turn_options;

/* Called for each generated token (stop token excluded) with the bytes it adds. Return
 * non-zero to end the turn early (as at max tokens). */
typedef int (*vr_token_callback)(void *ctx, int32_t token, const char *bytes, size_t len);

typedef struct vr_turn_result {
    int32_t *tokens; /* generated ids, stop excluded (malloc'd) */
    int n_tokens;
    int stopped;     /* 1 when a stop token ended the turn, 0 at max tokens or callback stop */
    int32_t stop_token;  /* when stopped */
    float *logits;   /* [n_tokens + stopped]: the chosen tokens' logits, the stop token's last */
    float *logprobs; /* their log-probabilities under softmax(logits) */
    float *first_logits; /* host [V]: the logits that chose the first token (malloc'd) */
} vr_turn_result;

/* Prefills ids (+ image), generates, streams, then leaves the stop token (or, at max tokens,
 * the last token and 261) in the state so the next turn continues from it. */
vr_status vr_session_turn(vr_engine *e, vr_session *s, vr_sampler *sampler, const int32_t *ids, int n,
                          const float *features, int n_img, const vr_turn_options *opt, vr_token_callback cb, void *ctx,
                          vr_turn_result *res, vr_error *err);
void vr_turn_result_free(vr_turn_result *r);

#endif
