/* eval/runner_engine.c — the in-process generation backend of `vrwkv eval`: up to `capacity`
 * questions at once on one engine, each prefilled alone (its image encoded, or the all-zero
 * image upstream uses for a question without one), then decoded together one greedy token per
 * batched step (vr_sessions_step), each stopping at 261 or max_tokens. It must stay exactly
 * the engine's turn loop (argmax, vr_logprob) so that answers equal `vrwkv run`. */
#include <stdlib.h>
#include <string.h>

#include "eval/runner.h"

typedef struct engine_backend {
    vr_engine *e;
    int capacity;
    vr_eval_job **pending; /* submitted, not yet prefilled (FIFO, at most capacity) */
    int n_pending;
    vr_eval_job **active;
    vr_session **sessions;
    int32_t *next_tokens;
    int n_active;
    vr_eval_job **done; /* finished, not yet returned (FIFO) */
    int n_done;
    float *logits;        /* [capacity, V] */
    int32_t *dev_next;    /* [capacity]: the device's choices (backends with argmax_rows) */
    float *dev_logit, *dev_logprob;
    float *zero_features; /* the all-zero image's features, computed once */
} engine_backend;

vr_status vr_eval_job_add_token(vr_eval_job *j, int32_t token, const void *bytes, size_t len, float logit,
                                float logprob, vr_error *err) {
    if (j->n_tokens == j->cap_tokens) {
        int cap = j->cap_tokens ? j->cap_tokens * 2 : 64;
        int32_t *t = realloc(j->tokens, (size_t)cap * sizeof *t);
        if (t) j->tokens = t;
        float *l = realloc(j->logits, (size_t)cap * sizeof *l);
        if (l) j->logits = l;
        float *p = realloc(j->logprobs, (size_t)cap * sizeof *p);
        if (p) j->logprobs = p;
        if (!t || !l || !p) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        j->cap_tokens = cap;
    }
    j->tokens[j->n_tokens] = token;
    j->logits[j->n_tokens] = logit;
    j->logprobs[j->n_tokens] = logprob;
    j->n_tokens++;
    if (j->n_bytes + len + 1 > j->cap_bytes) {
        size_t cap = j->cap_bytes ? j->cap_bytes * 2 : 256;
        while (cap < j->n_bytes + len + 1) cap *= 2;
        char *b = realloc(j->bytes, cap);
        if (!b) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        j->bytes = b;
        j->cap_bytes = cap;
    }
    if (len) memcpy(j->bytes + j->n_bytes, bytes, len);
    j->n_bytes += len;
    j->bytes[j->n_bytes] = 0;
    return VR_OK;
}

static vr_status engine_submit(void *ctx, vr_eval_job *job, vr_error *err) {
    engine_backend *b = ctx;
    if (b->n_pending + b->n_active + b->n_done >= 2 * b->capacity)
        return vr_error_set(err, VR_ERR_INTERNAL, "eval: more questions submitted than the engine backend holds");
    b->pending[b->n_pending++] = job;
    return VR_OK;
}

/* Records a chosen token with its logit and log-probability; *finished when the answer is
 * complete. */
static vr_status record(engine_backend *b, vr_eval_job *j, int32_t t, float logit, float logprob, int *finished,
                        vr_error *err) {
    size_t len = 0;
    const char *bytes = b->e->tok ? vr_tokenizer_token_bytes(b->e->tok, t, &len) : NULL;
    vr_status st = vr_eval_job_add_token(j, t, bytes ? bytes : "", bytes ? len : 0, logit, logprob, err);
    /* the stop token counts as generated (upstream's avg_logit/avg_prob include it) */
    *finished = t == VR_STOP_TOKEN_DEFAULT || j->n_tokens >= j->max_tokens;
    return st;
}

/* Records the greedy choice from one row of host logits. */
static vr_status choose(engine_backend *b, vr_eval_job *j, const float *logits, int32_t *token, int *finished,
                        vr_error *err) {
    const int V = b->e->cfg.vocab_size;
    int32_t t = vr_argmax(logits, V);
    *token = t;
    return record(b, j, t, logits[t], (float)vr_logprob(logits, V, t), finished, err);
}

static void finish(engine_backend *b, vr_eval_job *j, vr_status st) {
    j->status = st;
    b->done[b->n_done++] = j;
}

/* Prefills one pending job and chooses its first token; it joins the active batch unless it
 * is already finished or failed. Only errors that end the run are returned. */
static vr_status start_job(engine_backend *b, vr_eval_job *j, vr_error *err) {
    vr_engine *e = b->e;
    const float *features = NULL;
    float *own = NULL;
    vr_status st = VR_OK;
    if (!j->has_image_token) {
        /* no <image> in the prompt: upstream never inserts the image (ScienceQA without one) */
    } else if (j->image) {
        st = vr_engine_encode_image(e, j->image, j->image_len, j->id_text, &own, &j->err);
        features = own;
    } else {
        if (!b->zero_features) {
            float *zeros = calloc((size_t)3 * e->cfg.image_size * e->cfg.image_size, sizeof(float));
            st = zeros ? vr_engine_encode_pixels(e, zeros, &b->zero_features, NULL, &j->err)
                       : vr_error_set(&j->err, VR_ERR_NOMEM, "out of memory");
            free(zeros);
        }
        features = b->zero_features;
    }
    if (st != VR_OK) { /* an unreadable image, or a model without a vision tower */
        if (st == VR_ERR_NOMEM || st == VR_ERR_INTERNAL) {
            *err = j->err;
            return st;
        }
        finish(b, j, st);
        return VR_OK;
    }
    vr_session *s = NULL;
    float *row = b->logits + (size_t)b->n_active * e->cfg.vocab_size;
    st = vr_session_create(e, j->scan, &s, err);
    if (st == VR_OK) st = vr_session_prefill(e, s, j->ids, j->n_ids, features, features ? e->cfg.num_image_tokens : 0, row, NULL, err);
    free(own);
    if (st != VR_OK) {
        vr_session_free(s);
        if (st == VR_ERR_INVALID) { /* e.g. a prompt id outside the vocabulary */
            j->err = *err;
            finish(b, j, st);
            return VR_OK;
        }
        return st;
    }
    int32_t t;
    int finished;
    st = choose(b, j, row, &t, &finished, err);
    if (st != VR_OK || finished) {
        vr_session_free(s);
        if (st == VR_OK) finish(b, j, VR_OK);
        return st;
    }
    b->active[b->n_active] = j;
    b->sessions[b->n_active] = s;
    b->next_tokens[b->n_active] = t;
    b->n_active++;
    return VR_OK;
}

static vr_status engine_next(void *ctx, vr_eval_job **out, vr_error *err) {
    engine_backend *b = ctx;
    *out = NULL;
    const int V = b->e->cfg.vocab_size;
    for (;;) {
        if (b->n_done) {
            *out = b->done[0];
            memmove(b->done, b->done + 1, (size_t)(--b->n_done) * sizeof *b->done);
            return VR_OK;
        }
        /* fill the batch: prefill waiting questions while there is room */
        while (b->n_pending && b->n_active < b->capacity) {
            vr_eval_job *j = b->pending[0];
            memmove(b->pending, b->pending + 1, (size_t)(--b->n_pending) * sizeof *b->pending);
            vr_status st = start_job(b, j, err);
            if (st != VR_OK) return st;
        }
        if (b->n_done) continue;
        if (!b->n_active) return vr_error_set(err, VR_ERR_INTERNAL, "eval: waiting for an answer with none in flight");
        /* a device that chooses tokens itself keeps the logits: only ids and two floats come back */
        int on_device = b->e->be->ops->argmax_rows != NULL;
        vr_status st = on_device ? vr_sessions_step_greedy(b->e, b->sessions, b->next_tokens, b->n_active, b->dev_next,
                                                           b->dev_logit, b->dev_logprob, err)
                                 : vr_sessions_step(b->e, b->sessions, b->next_tokens, b->n_active, b->logits, err);
        if (st != VR_OK) return st;
        int keep = 0;
        for (int i = 0; i < b->n_active; i++) {
            int32_t t;
            int finished;
            if (on_device) {
                t = b->dev_next[i];
                st = record(b, b->active[i], t, b->dev_logit[i], b->dev_logprob[i], &finished, err);
            } else {
                st = choose(b, b->active[i], b->logits + (size_t)i * V, &t, &finished, err);
            }
            if (st != VR_OK) return st;
            if (finished) {
                vr_session_free(b->sessions[i]);
                finish(b, b->active[i], VR_OK);
                continue;
            }
            b->active[keep] = b->active[i];
            b->sessions[keep] = b->sessions[i];
            b->next_tokens[keep] = t;
            keep++;
        }
        b->n_active = keep;
    }
}

vr_status vr_eval_engine_backend_create(vr_engine *e, int capacity, vr_eval_backend *out, vr_error *err) {
    memset(out, 0, sizeof *out);
    if (!e->tok) return vr_error_set(err, VR_ERR_INVALID, "eval needs the tokenizer: give --vocab");
    if (capacity < 1) capacity = 1;
    engine_backend *b = calloc(1, sizeof *b);
    if (!b) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    b->e = e;
    b->capacity = capacity;
    size_t n = (size_t)capacity * 2;
    b->pending = calloc(n, sizeof *b->pending);
    b->done = calloc(n, sizeof *b->done);
    b->active = calloc((size_t)capacity, sizeof *b->active);
    b->sessions = calloc((size_t)capacity, sizeof *b->sessions);
    b->next_tokens = calloc((size_t)capacity, sizeof *b->next_tokens);
    b->logits = malloc((size_t)capacity * e->cfg.vocab_size * sizeof(float));
    b->dev_next = malloc((size_t)capacity * sizeof *b->dev_next);
    b->dev_logit = malloc((size_t)capacity * sizeof *b->dev_logit);
    b->dev_logprob = malloc((size_t)capacity * sizeof *b->dev_logprob);
    out->ctx = b;
    out->capacity = capacity;
    out->needs_ids = 1;
    out->tok = e->tok;
    out->submit = engine_submit;
    out->next = engine_next;
    if (!b->pending || !b->done || !b->active || !b->sessions || !b->next_tokens || !b->logits || !b->dev_next ||
        !b->dev_logit || !b->dev_logprob) {
        vr_eval_engine_backend_free(out);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory for %d questions in flight", capacity);
    }
    return VR_OK;
}

void vr_eval_engine_backend_free(vr_eval_backend *bk) {
    engine_backend *b = bk->ctx;
    if (!b) return;
    for (int i = 0; i < b->n_active; i++) vr_session_free(b->sessions[i]);
    free(b->pending);
    free(b->done);
    free(b->active);
    free(b->sessions);
    free(b->next_tokens);
    free(b->logits);
    free(b->dev_next);
    free(b->dev_logit);
    free(b->dev_logprob);
    free(b->zero_features);
    free(b);
    memset(bk, 0, sizeof *bk);
}
