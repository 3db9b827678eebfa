/* model/engine.c — model loading, sessions, prefill, batched decode and the turn loop.
 * Owns the device buffers of one model; one engine is driven by one thread at a time. */
#include "model/engine.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

vr_status vr_engine_open(const vr_engine_options *opt, vr_engine **out, vr_error *err) {
    *out = NULL;
    vr_engine *e = calloc(1, sizeof *e);
    if (!e) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    vr_status st = vr_checkpoint_open(opt->model_path, &e->ck, err);
    if (st == VR_OK) st = vr_config_load(e->ck, opt->config_path, &e->cfg, err);
    if (st == VR_OK) {
        int cuda = opt->backend && !strcmp(opt->backend, "cuda");
        st = vr_backend_create(opt->backend, cuda ? 0 : opt->threads, &e->be, err);
    }
    if (st == VR_OK) {
        vr_weights_select all = {0, e->cfg.n_layer, 1, 1, e->cfg.has_vision};
        st = vr_weights_create(e->be, e->ck, &e->cfg, opt->select ? opt->select : &all, &e->w, err);
    }
    if (st == VR_OK && opt->vocab_path) st = vr_tokenizer_load(opt->vocab_path, &e->tok, err);
    if (st == VR_OK && !(e->ws = vr_workspace_create(e->be))) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    const char *graphs = getenv("VRWKV_CUDA_GRAPHS");
    e->graphs = !(graphs && !strcmp(graphs, "0"));
    if (st != VR_OK) {
        vr_engine_free(e);
        return st;
    }
    *out = e;
    return VR_OK;
}

void vr_engine_free(vr_engine *e) {
    if (!e) return;
    if (e->be) {
        if (e->x) e->be->ops->free(e->be, e->x);
        if (e->logits) e->be->ops->free(e->be, e->logits);
    }
    vr_workspace_free(e->ws);
    vr_weights_free(e->w);
    vr_tokenizer_free(e->tok);
    vr_backend_free(e->be);
    vr_checkpoint_free(e->ck);
    free(e);
}

/* Reports a device backend's recorded failure (its ops return nothing). After a failure that is
 * already in st, the backend's record is cleared all the same, so it is charged to this call
 * and not to the next. */
static vr_status backend_check(vr_engine *e, vr_status st, vr_error *err) {
    if (!e->be->ops->sync) return st;
    if (st == VR_OK) return e->be->ops->sync(e->be, err);
    vr_error ignored = {0};
    e->be->ops->sync(e->be, &ignored);
    return st;
}

float *vr_engine_buffer(vr_engine *e, float **buf, size_t *cap, size_t n) {
    if (*cap < n) {
        if (e->be->ops->graph_drop) e->be->ops->graph_drop(e->be); /* recordings refer to the old buffer */
        if (*buf) e->be->ops->free(e->be, *buf);
        /* with room to spare: a batch that keeps growing by a session re-records every CUDA graph
         * only now and then, not at each new size */
        size_t want = *cap ? n + n / 4 : n;
        *buf = e->be->ops->alloc(e->be, want * sizeof(float));
        if (!*buf && want > n) *buf = e->be->ops->alloc(e->be, (want = n) * sizeof(float));
        *cap = *buf ? want : 0;
    }
    return *buf;
}

void vr_engine_buffer_free(vr_engine *e, float **buf, size_t *cap) {
    if (*buf) e->be->ops->free(e->be, *buf);
    *buf = NULL;
    *cap = 0;
}

vr_status vr_engine_check(vr_engine *e, vr_error *err) { return backend_check(e, VR_OK, err); }

vr_status vr_engine_encode_pixels(vr_engine *e, const float *pixels, float **features, vr_vision_trace *trace,
                                  vr_error *err) {
    *features = NULL;
    const vr_model_config *c = &e->cfg;
    if (!c->has_vision) return vr_error_set(err, VR_ERR_INVALID, "this model has no vision tower");
    size_t npix = (size_t)3 * c->image_size * c->image_size;
    size_t nfeat = (size_t)c->num_image_tokens * c->n_embd;
    float *dpix = e->be->ops->alloc(e->be, npix * sizeof(float));
    float *dfeat = e->be->ops->alloc(e->be, nfeat * sizeof(float));
    float *host = malloc(nfeat * sizeof(float));
    vr_status st = VR_OK;
    if (!dpix || !dfeat || !host) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory encoding an image");
    if (st == VR_OK) {
        e->be->ops->upload(e->be, dpix, pixels, npix * sizeof(float));
        st = vr_vision_encode(e->w, e->ws, dpix, dfeat, trace, err);
    }
    if (st == VR_OK) e->be->ops->download(e->be, host, dfeat, nfeat * sizeof(float));
    st = backend_check(e, st, err);
    if (dpix) e->be->ops->free(e->be, dpix);
    if (dfeat) e->be->ops->free(e->be, dfeat);
    if (st != VR_OK) {
        free(host);
        return st;
    }
    *features = host;
    return VR_OK;
}

vr_status vr_engine_encode_image(vr_engine *e, const uint8_t *data, size_t size, const char *name, float **features,
                                 vr_error *err) {
    *features = NULL;
    if (!e->cfg.has_vision) return vr_error_set(err, VR_ERR_INVALID, "this model has no vision tower");
    vr_image img = {0};
    vr_status st = vr_image_decode(data, size, name, &img, err);
    if (st != VR_OK) return st;
    vr_clip_preprocess pp;
    vr_clip_preprocess_default(&pp, e->cfg.image_size);
    memcpy(pp.mean, e->cfg.image_mean, sizeof pp.mean);
    memcpy(pp.std, e->cfg.image_std, sizeof pp.std);
    float *pixels = malloc((size_t)3 * pp.size * pp.size * sizeof(float));
    if (!pixels) {
        vr_image_free(&img);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    st = vr_clip_preprocess_image(&pp, &img, pixels, NULL, err);
    vr_image_free(&img);
    if (st == VR_OK) st = vr_engine_encode_pixels(e, pixels, features, NULL, err);
    free(pixels);
    return st;
}

vr_status vr_session_create(vr_engine *e, vr_scan_mode scan, vr_session **out, vr_error *err) {
    *out = NULL;
    vr_session *s = calloc(1, sizeof *s);
    if (!s) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    vr_status st = vr_state_create(e->be, &e->cfg, 0, e->cfg.n_layer, &s->state, err);
    if (st != VR_OK) {
        free(s);
        return st;
    }
    s->scan = scan;
    *out = s;
    return VR_OK;
}

void vr_session_free(vr_session *s) {
    if (!s) return;
    vr_state_free(s->state);
    free(s->transcript);
    free(s);
}

void vr_session_reset(vr_session *s) {
    vr_state_reset(s->state);
    s->n_transcript = 0;
    s->n_rows = 0;
}

static vr_status transcript_append(vr_session *s, const int32_t *ids, int n, vr_error *err) {
    if (s->n_transcript + n > s->cap_transcript) {
        int cap = s->cap_transcript ? s->cap_transcript : 64;
        while (cap < s->n_transcript + n) cap *= 2;
        int32_t *t = realloc(s->transcript, (size_t)cap * sizeof *t);
        if (!t) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        s->transcript = t;
        s->cap_transcript = cap;
    }
    memcpy(s->transcript + s->n_transcript, ids, (size_t)n * sizeof *ids);
    s->n_transcript += n;
    return VR_OK;
}

vr_status vr_session_prefill(vr_engine *e, vr_session *s, const int32_t *ids, int n, const float *features, int n_img,
                             float *logits, float *hidden, vr_error *err) {
    if (n <= 0) return vr_error_set(err, VR_ERR_INVALID, "nothing to prefill");
    const int C = e->cfg.n_embd, V = e->cfg.vocab_size, NL = e->cfg.n_layer;
    int img_at = -1;
    for (int i = 0; i < n; i++)
        if (ids[i] == VR_IMAGE_TOKEN_ID) img_at = i;
    if (img_at >= 0 && !features) return vr_error_set(err, VR_ERR_INVALID, "the prompt has an image but no features");
    int rows = vr_rwkv_embed_rows(ids, n, img_at >= 0 ? n_img : 0);
    float *x = vr_engine_buffer(e, &e->x, &e->x_cap, (size_t)rows * C);
    float *dfeat = NULL;
    if (!x) return vr_error_set(err, VR_ERR_NOMEM, "out of memory for %d prompt rows", rows);
    if (img_at >= 0) {
        dfeat = e->be->ops->alloc(e->be, (size_t)n_img * C * sizeof(float));
        if (!dfeat) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        e->be->ops->upload(e->be, dfeat, features, (size_t)n_img * C * sizeof(float));
    }
    vr_status st = vr_rwkv_embed(e->w, ids, n, dfeat, n_img, x, err);
    if (dfeat) e->be->ops->free(e->be, dfeat);
    if (st != VR_OK) return backend_check(e, st, err);
    vr_run run = {0, rows};
    vr_scan_plan plan = {s->scan, -1, -1};
    if (img_at >= 0) {
        /* the patch segment excludes the trailing cls row */
        plan.img_start = img_at;
        plan.img_end = img_at + n_img - 1;
    }
    vr_state *st_ptr = s->state;
    if (hidden) {
        e->be->ops->download(e->be, hidden, x, (size_t)rows * C * sizeof(float));
        for (int li = 0; li < NL && st == VR_OK; li++) {
            st = vr_rwkv_layers(e->w, e->ws, x, &run, 1, &st_ptr, &plan, li, li + 1, err);
            if (st == VR_OK)
                e->be->ops->download(e->be, hidden + (size_t)(li + 1) * rows * C, x, (size_t)rows * C * sizeof(float));
        }
    } else {
        st = vr_rwkv_layers(e->w, e->ws, x, &run, 1, &st_ptr, &plan, 0, NL, err);
    }
    if (st != VR_OK) return backend_check(e, st, err);
    if (logits) {
        float *dl = vr_engine_buffer(e, &e->logits, &e->logits_cap, (size_t)V);
        if (!dl) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        st = vr_rwkv_head(e->w, e->ws, x + (size_t)(rows - 1) * C, 1, dl, err);
        if (st != VR_OK) return backend_check(e, st, err);
        e->be->ops->download(e->be, logits, dl, (size_t)V * sizeof(float));
    }
    if ((st = backend_check(e, st, err)) != VR_OK) return st;
    s->n_rows += rows;
    return transcript_append(s, ids, n, err);
}

/* The ops of a decode step: embed, every layer, head (x, dl: device buffers of n rows). */
static vr_status step_forward(vr_engine *e, vr_state *const *states, const vr_run *runs, const int32_t *tokens, int n,
                              float *x, float *dl, vr_error *err) {
    vr_status st = vr_rwkv_embed(e->w, tokens, n, NULL, 0, x, err);
    if (st == VR_OK) st = vr_rwkv_layers(e->w, e->ws, x, runs, n, states, NULL, 0, e->cfg.n_layer, err);
    if (st == VR_OK) st = vr_rwkv_head(e->w, e->ws, x, n, dl, err);
    return st;
}

/* How a step of `key` sessions runs: eagerly, recorded (after an eager step at this key has
 * succeeded: it grew every buffer to size, so the recording allocates nothing), or replayed. */
enum { STEP_EAGER, STEP_RECORD, STEP_REPLAY };
static int graph_key(int key) { return key >= 1 && key <= VR_ENGINE_GRAPH_MAX_BATCH; }
static int step_mode(vr_engine *e, int key) {
    const vr_backend_ops *op = e->be->ops;
    if (!e->graphs || !op->graph_begin || !graph_key(key) || e->graph_fail[key] >= 3) return STEP_EAGER;
    if (op->graph_ready(e->be, key)) return STEP_REPLAY;
    return e->graph_seen[key] ? STEP_RECORD : STEP_EAGER;
}

vr_status vr_engine_run_step(vr_engine *e, int key, vr_status (*fn)(void *ctx, vr_error *err), void *ctx,
                             vr_error *err) {
    int mode = step_mode(e, key);
    vr_error gerr = {0};
    int graph_failed = 0;
    if (mode != STEP_EAGER) {
        const vr_backend_ops *op = e->be->ops;
        /* a refusal to begin (a device failure still on record, say) is no fault of recording */
        vr_status gs = op->graph_begin(e->be, key, mode == STEP_REPLAY, &gerr);
        if (gs == VR_OK) {
            vr_status st = fn(ctx, &gerr);
            vr_status ge = op->graph_end(e->be, st == VR_OK, &gerr);
            if (st == VR_OK && ge == VR_OK) {
                if (mode == STEP_REPLAY) e->graph_fail[key] = 0; /* a recording alone proves nothing */
                return VR_OK;
            }
            if (st == VR_OK && ge != VR_ERR_UNAVAILABLE) { /* the launch itself failed */
                if (err) *err = gerr;
                return ge;
            }
            graph_failed = 1;
        }
    }
    /* eagerly; after a failed recording or replay too (nothing of it has run) */
    vr_status st = fn(ctx, err);
    if (st != VR_OK) return st; /* the step itself fails: no fault of recording */
    if (graph_failed) {
        /* the step runs, but not as a graph: recorded again next time; three in a row: never at
         * this key */
        e->graph_fail[key]++;
        vr_log(VR_LOG_WARN, "step_not_recorded", "sessions=%d failure=%d/3 error=%s", key, e->graph_fail[key],
               gerr.msg);
    }
    if (graph_key(key)) e->graph_seen[key] = 1;
    return st;
}

typedef struct step_args {
    vr_engine *e;
    vr_state *const *states;
    const vr_run *runs;
    const int32_t *tokens;
    int n;
    float *x, *dl;
} step_args;

static vr_status step_forward_fn(void *ctx, vr_error *err) {
    step_args *a = ctx;
    return step_forward(a->e, a->states, a->runs, a->tokens, a->n, a->x, a->dl, err);
}

/* The decode step; the logits stay in e->logits (device) and are downloaded when logits != NULL. */
static vr_status step_device(vr_engine *e, vr_session *const *sessions, const int32_t *tokens, int n, float *logits,
                             vr_error *err) {
    if (n <= 0) return VR_OK;
    const int C = e->cfg.n_embd, V = e->cfg.vocab_size;
    float *x = vr_engine_buffer(e, &e->x, &e->x_cap, (size_t)n * C);
    float *dl = vr_engine_buffer(e, &e->logits, &e->logits_cap, (size_t)n * V);
    vr_run *runs = malloc((size_t)n * sizeof *runs);
    vr_state **states = malloc((size_t)n * sizeof *states);
    vr_status st = VR_OK;
    if (!x || !dl || !runs || !states) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory for a batch of %d", n);
    for (int i = 0; st == VR_OK && i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            st = vr_error_set(err, VR_ERR_INVALID, "token id %d is outside the vocabulary", tokens[i]);
        runs[i] = (vr_run){i, 1};
        states[i] = sessions[i]->state;
    }
    if (st == VR_OK) {
        step_args a = {e, states, runs, tokens, n, x, dl};
        st = vr_engine_run_step(e, n, step_forward_fn, &a, err);
    }
    if (st == VR_OK && logits) e->be->ops->download(e->be, logits, dl, (size_t)n * V * sizeof(float));
    for (int i = 0; st == VR_OK && i < n; i++) {
        sessions[i]->n_rows += 1;
        st = transcript_append(sessions[i], &tokens[i], 1, err);
    }
    free(runs);
    free(states);
    return backend_check(e, st, err);
}

vr_status vr_sessions_step(vr_engine *e, vr_session *const *sessions, const int32_t *tokens, int n, float *logits,
                           vr_error *err) {
    return step_device(e, sessions, tokens, n, logits, err);
}

vr_status vr_engine_sample(vr_engine *e, const float *logits, int m, vr_sampler *const *samplers, int32_t *next,
                           float *next_logit, float *next_logprob, vr_error *err) {
    if (m <= 0) return VR_OK;
    const vr_backend_ops *op = e->be->ops;
    const int V = e->cfg.vocab_size;
    int all_greedy = 1;
    for (int i = 0; i < m; i++) all_greedy &= vr_sampler_is_greedy(samplers[i]);
    vr_status st = VR_OK;
    if ((all_greedy && op->argmax_rows) || op->sample_rows) {
        if (all_greedy && op->argmax_rows) {
            st = op->argmax_rows(e->be, logits, m, V, next, next_logit, next_logprob, err);
        } else {
            vr_sample_row *rows = malloc((size_t)m * sizeof *rows);
            int32_t *start = malloc((size_t)(m + 1) * sizeof *start);
            const int32_t **pid = malloc((size_t)m * sizeof *pid);
            const float **psub = malloc((size_t)m * sizeof *psub);
            int total = 0;
            if (start && pid && psub) /* each row's penalties, once: start[i + 1] holds its count for now */
                for (int i = 0; i < m; i++) total += start[i + 1] = vr_sampler_penalties(samplers[i], &pid[i], &psub[i]);
            int32_t *ids = malloc((size_t)(total ? total : 1) * sizeof *ids);
            float *sub = malloc((size_t)(total ? total : 1) * sizeof *sub);
            if (!rows || !start || !pid || !psub || !ids || !sub)
                st = vr_error_set(err, VR_ERR_NOMEM, "out of memory sampling %d rows", m);
            int at = 0;
            for (int i = 0; st == VR_OK && i < m; i++) {
                int k = start[i + 1];
                start[i] = at;
                memcpy(ids + at, pid[i], (size_t)k * sizeof *ids);
                memcpy(sub + at, psub[i], (size_t)k * sizeof *sub);
                at += k;
                vr_sampler_row(samplers[i], &rows[i]);
            }
            if (st == VR_OK) {
                start[m] = at;
                st = op->sample_rows(e->be, logits, m, V, rows, start, ids, sub, next, next_logit, next_logprob, err);
            }
            free(rows);
            free(start);
            free(pid);
            free(psub);
            free(ids);
            free(sub);
        }
        for (int i = 0; st == VR_OK && i < m; i++) vr_sampler_accept(samplers[i], next[i]);
        return backend_check(e, st, err);
    }
    /* on the host: the cpu backend's logits are host memory already; others download a row */
    int in_place = e->be->device == VR_DEVICE_CPU;
    float *host = in_place ? NULL : malloc((size_t)V * sizeof(float));
    if (!in_place && !host) return vr_error_set(err, VR_ERR_NOMEM, "out of memory for a row of logits");
    for (int i = 0; st == VR_OK && i < m; i++) {
        const float *row = logits + (size_t)i * V;
        if (!in_place) {
            op->download(e->be, host, row, (size_t)V * sizeof(float));
            if ((st = backend_check(e, VR_OK, err)) != VR_OK) break;
            row = host;
        }
        next[i] = vr_sampler_sample(samplers[i], row);
        if (next_logit) next_logit[i] = row[next[i]];
        if (next_logprob) next_logprob[i] = (float)vr_logprob(row, V, next[i]);
    }
    free(host);
    return st;
}

vr_status vr_sessions_step_sample(vr_engine *e, vr_session *const *sessions, const int32_t *tokens, int n,
                                  vr_sampler *const *samplers, int32_t *next, float *next_logit, float *next_logprob,
                                  vr_error *err) {
    vr_status st = step_device(e, sessions, tokens, n, NULL, err);
    if (st != VR_OK) return st;
    return vr_engine_sample(e, e->logits, n, samplers, next, next_logit, next_logprob, err);
}

vr_status vr_sessions_step_greedy(vr_engine *e, vr_session *const *sessions, const int32_t *tokens, int n,
                                  int32_t *next, float *next_logit, float *next_logprob, vr_error *err) {
    if (n <= 0) return VR_OK;
    const int V = e->cfg.vocab_size;
    if (e->be->ops->argmax_rows) {
        vr_status st = step_device(e, sessions, tokens, n, NULL, err);
        if (st != VR_OK) return st;
        return e->be->ops->argmax_rows(e->be, e->logits, n, V, next, next_logit, next_logprob, err);
    }
    /* host-memory backends (cpu) read their logits in place; others download them */
    int in_place = e->be->device == VR_DEVICE_CPU;
    float *host = in_place ? NULL : malloc((size_t)n * V * sizeof(float));
    if (!in_place && !host) return vr_error_set(err, VR_ERR_NOMEM, "out of memory for %d rows of logits", n);
    vr_status st = step_device(e, sessions, tokens, n, host, err);
    if (in_place) host = e->logits;
    for (int i = 0; st == VR_OK && i < n; i++) {
        const float *row = host + (size_t)i * V;
        next[i] = vr_argmax(row, V);
        if (next_logit) next_logit[i] = row[next[i]];
        if (next_logprob) next_logprob[i] = (float)vr_logprob(row, V, next[i]);
    }
    if (!in_place) free(host);
    return st;
}

static int is_stop(const vr_turn_options *opt, int32_t t) {
    if (opt->n_stop_tokens <= 0) return t == VR_STOP_TOKEN_DEFAULT;
    for (int i = 0; i < opt->n_stop_tokens; i++)
        if (opt->stop_tokens[i] == t) return 1;
    return 0;
}

vr_status vr_session_turn(vr_engine *e, vr_session *s, vr_sampler *sampler, const int32_t *ids, int n,
                          const float *features, int n_img, const vr_turn_options *opt, vr_token_callback cb, void *ctx,
                          vr_turn_result *res, vr_error *err) {
    memset(res, 0, sizeof *res);
    if (opt->max_tokens <= 0) return vr_error_set(err, VR_ERR_INVALID, "max tokens must be positive");
    const int V = e->cfg.vocab_size;
    float *logits = malloc((size_t)V * sizeof(float));
    res->tokens = malloc((size_t)opt->max_tokens * sizeof(int32_t));
    res->first_logits = malloc((size_t)V * sizeof(float));
    res->logits = malloc((size_t)(opt->max_tokens + 1) * sizeof(float));
    res->logprobs = malloc((size_t)(opt->max_tokens + 1) * sizeof(float));
    if (!logits || !res->tokens || !res->first_logits || !res->logits || !res->logprobs) {
        free(logits);
        vr_turn_result_free(res);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    vr_status st = vr_session_prefill(e, s, ids, n, features, n_img, logits, NULL, err);
    if (st == VR_OK) memcpy(res->first_logits, logits, (size_t)V * sizeof(float));
    int32_t pending[2];
    int n_pending = 0;
    /* on a device that chooses tokens itself (argmax for greedy, or sample_rows), the logits
     * stay there after the first token */
    int on_device = e->be->ops->sample_rows || (e->be->ops->argmax_rows && vr_sampler_is_greedy(sampler));
    int32_t dev_tok = -1;
    float dev_logit = 0.0f, dev_logprob = 0.0f;
    while (st == VR_OK) {
        int32_t t;
        if (dev_tok >= 0) {
            t = dev_tok; /* already recorded by the sampler (vr_engine_sample) */
            res->logits[res->n_tokens] = dev_logit;
            res->logprobs[res->n_tokens] = dev_logprob;
        } else {
            t = vr_sampler_sample(sampler, logits);
            res->logits[res->n_tokens] = logits[t];
            res->logprobs[res->n_tokens] = (float)vr_logprob(logits, V, t);
        }
        if (is_stop(opt, t)) {
            res->stopped = 1;
            res->stop_token = t;
            pending[n_pending++] = t;
            break;
        }
        res->tokens[res->n_tokens++] = t;
        int halt = 0;
        if (cb) {
            size_t len = 0;
            const char *bytes = e->tok ? vr_tokenizer_token_bytes(e->tok, t, &len) : NULL;
            halt = cb(ctx, t, bytes ? bytes : "", bytes ? len : 0);
        }
        if (halt || res->n_tokens >= opt->max_tokens) {
            pending[n_pending++] = t;
            break;
        }
        vr_session *one = s;
        if (on_device) st = vr_sessions_step_sample(e, &one, &t, 1, &sampler, &dev_tok, &dev_logit, &dev_logprob, err);
        else st = vr_sessions_step(e, &one, &t, 1, logits, err);
    }
    /* leave the turn's end in the state: the stop token, or the last token and 261 */
    if (st == VR_OK) {
        if (pending[n_pending - 1] != VR_STOP_TOKEN_DEFAULT) {
            if (!res->stopped) vr_sampler_accept(sampler, VR_STOP_TOKEN_DEFAULT);
            pending[n_pending++] = VR_STOP_TOKEN_DEFAULT;
        }
        st = vr_session_prefill(e, s, pending, n_pending, NULL, 0, NULL, NULL, err);
    }
    free(logits);
    if (st != VR_OK) vr_turn_result_free(res);
    return st;
}

void vr_turn_result_free(vr_turn_result *r) {
    free(r->tokens);
    free(r->logits);
    free(r->logprobs);
    free(r->first_logits);
    memset(r, 0, sizeof *r);
}
