/* coordinator/scheduler.c — continuous batching. One thread owns every turn in flight and
 * drives the pipeline one step at a time: each step carries, as separate runs, the prefills of
 * turns that just joined, one decode token for every turn already generating, and the end of
 * turns that just finished (their stop token, or the last token and 261, fed into the state).
 * New prefills therefore join without pausing the others. After a turn's end is in the state,
 * every shard checkpoints its layers to the store and the session record is committed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "coordinator/internal.h"
#include "model/prompt.h"
#include "proto/control.pb-c.h"

void vr_request_push(vr_request *r, vr_event_kind kind, int32_t token, int rpc_code, const char *message) {
    vr_event *e = calloc(1, sizeof *e);
    if (!e) return;
    e->kind = kind;
    e->token = token;
    e->rpc_code = rpc_code;
    if (message) snprintf(e->message, sizeof e->message, "%s", message);
    pthread_mutex_lock(&r->mu);
    if (r->tail) r->tail->next = e;
    else r->head = e;
    r->tail = e;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void vr_request_push_token(vr_request *r, int32_t token, float logit, float logprob) {
    vr_event *e = calloc(1, sizeof *e);
    if (!e) return;
    e->kind = EV_TOKEN;
    e->token = token;
    e->logit = logit;
    e->logprob = logprob;
    pthread_mutex_lock(&r->mu);
    if (r->tail) r->tail->next = e;
    else r->head = e;
    r->tail = e;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void vr_request_release(vr_request *r) {
    pthread_mutex_lock(&r->mu);
    int refs = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (refs > 0) return;
    for (vr_event *e = r->head; e;) {
        vr_event *n = e->next;
        free(e);
        e = n;
    }
    vr_session_record_free(&r->record);
    free(r->prompt);
    vr_image_features_clear(&r->features);
    vr_image_features_clear(&r->enc_features);
    free(r->gen);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void vr_scheduler_submit(vr_coordinator *c, vr_request *r) {
    pthread_mutex_lock(&r->mu);
    r->refs++;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&c->q_mu);
    r->next_queued = NULL;
    if (c->queue_tail) c->queue_tail->next_queued = r;
    else c->queue_head = r;
    c->queue_tail = r;
    pthread_cond_signal(&c->q_cv);
    pthread_mutex_unlock(&c->q_mu);
}

static int is_cancelled(vr_request *r) {
    pthread_mutex_lock(&r->mu);
    int c = r->cancelled;
    pthread_mutex_unlock(&r->mu);
    return c;
}

/* Ends a turn that will not complete: frees the session for later turns and drops the
 * shards' copy of a state that no longer matches the store. */
static void fail_request(vr_coordinator *c, vr_request *r, int code, const char *message) {
    /* the shards drop what the turn left (its state, and on stage 0 features its prefill never took) */
    if (r->phase != REQ_PREPARE) vr_cluster_evict(c, r->tenant, r->session, r->features.key, 0);
    else if (r->features.key) vr_cluster_evict(c, r->tenant, r->session, r->features.key, 1);
    r->phase = REQ_DONE;
    vr_request_push(r, EV_ERROR, 0, code, message);
    vr_counter_inc(c->m_requests, (const char *[]){vr_rpc_status_name(code)});
    vr_session_unclaim(c, r->tenant, r->session);
    vr_log(VR_LOG_INFO, "turn_failed", "tenant=%s session=%s code=%s message=%s", r->tenant, r->session,
           vr_rpc_status_name(code), message);
}

static int is_stop(const vr_request *r, int32_t t) {
    if (r->n_stop == 0) return t == VR_STOP_TOKEN_DEFAULT;
    for (int i = 0; i < r->n_stop; i++)
        if (r->stop[i] == t) return 1;
    return 0;
}

/* ------------------------------------------------------------------ prepare */

static void pack_prepare(vr_request **rs, int n, uint8_t **buf, size_t *len) {
    Vrwkv__Internal__PrepareRequest req = VRWKV__INTERNAL__PREPARE_REQUEST__INIT;
    Vrwkv__Internal__SessionRef *refs = calloc((size_t)n, sizeof *refs);
    Vrwkv__Internal__SessionRef **ptrs = calloc((size_t)n, sizeof *ptrs);
    for (int i = 0; i < n; i++) {
        vrwkv__internal__session_ref__init(&refs[i]);
        refs[i].tenant = rs[i]->tenant;
        refs[i].session = rs[i]->session;
        refs[i].base_turn = rs[i]->record.committed_turn;
        refs[i].base_tokens = rs[i]->record.n_transcript;
        refs[i].fresh = rs[i]->fresh;
        refs[i].features_key = rs[i]->features.key;
        ptrs[i] = &refs[i];
    }
    req.n_sessions = (size_t)n;
    req.sessions = ptrs;
    *len = vrwkv__internal__prepare_request__get_packed_size(&req);
    *buf = malloc(*len + 1);
    if (*buf) vrwkv__internal__prepare_request__pack(&req, *buf);
    free(refs);
    free(ptrs);
}

/* Makes every shard hold the committed state of each new turn's session. A shard that cannot
 * (evicted and the blob missing or corrupt) makes that turn rebuild its state by recomputing
 * the transcript from a zero state (prepared in a later pass, after its image is encoded again
 * if it has one). Features stage 0 reports missing are encoded again, inline, on the encode
 * thread, and the turn prepared again. */
static void prepare(vr_coordinator *c, vr_request **rs, int n) {
    uint8_t *buf = NULL;
    size_t len = 0;
    pack_prepare(rs, n, &buf, &len);
    uint8_t *resps[VR_MAX_WORKERS] = {0};
    size_t rl[VR_MAX_WORKERS] = {0};
    int stages = 0;
    vr_error err = {0};
    vr_status st = buf ? vr_cluster_broadcast(c, "/vrwkv.internal.Shard/Prepare", buf, len, resps, rl, &stages, &err)
                       : vr_error_set(&err, VR_ERR_NOMEM, "out of memory");
    free(buf);
    if (st != VR_OK) {
        if (st == VR_ERR_UNAVAILABLE) vr_cluster_mark_failed(c, err.msg);
        for (int i = 0; i < n; i++) fail_request(c, rs[i], vr_rpc_code_from_status(st), err.msg);
        return;
    }
    int *rebuild = calloc((size_t)n, sizeof *rebuild), *missing = calloc((size_t)n, sizeof *missing);
    if (!rebuild || !missing) {
        free(rebuild);
        free(missing);
        for (int s = 0; s < stages; s++) free(resps[s]);
        for (int i = 0; i < n; i++) fail_request(c, rs[i], VR_RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (int s = 0; s < stages; s++) {
        Vrwkv__Internal__PrepareResponse *pr = vrwkv__internal__prepare_response__unpack(NULL, rl[s], resps[s]);
        for (int i = 0; i < n; i++) {
            if (pr && pr->n_results == (size_t)n && pr->results[i]->features_missing) missing[i] = 1;
            if (!pr || pr->n_results != (size_t)n) rebuild[i] = 2;
            else if (pr->results[i]->status != 0) {
                rebuild[i] = rebuild[i] ? rebuild[i] : 1;
                vr_log(VR_LOG_WARN, "state_unusable", "tenant=%s session=%s stage=%d error=%s", rs[i]->tenant,
                       rs[i]->session, s, pr->results[i]->message);
            }
        }
        if (pr) vrwkv__internal__prepare_response__free_unpacked(pr, NULL);
        free(resps[s]);
    }
    for (int i = 0; i < n; i++) {
        vr_request *r = rs[i];
        if (rebuild[i] == 2) {
            fail_request(c, r, VR_RPC_STATUS_INTERNAL, "a shard answered Prepare with a malformed message");
            continue;
        }
        if (rebuild[i] == 0 && missing[i]) { /* then Prepare again: its slot may go meanwhile */
            vr_encode_queue_push(c, r, 0, REQ_PREPARE);
            continue;
        }
        if (rebuild[i] == 1) {
            /* recompute: transcript + this turn's prompt from a zero state (once: a turn that
             * already starts from zero, new or rebuilt, has nothing to recompute) */
            if (r->fresh || !r->persistent || r->record.committed_turn == 0) {
                fail_request(c, r, VR_RPC_STATUS_INTERNAL, "a shard could not start a fresh state");
                continue;
            }
            vr_log(VR_LOG_WARN, "state_rebuild", "tenant=%s session=%s turn=%lld tokens=%d", r->tenant, r->session,
                   (long long)r->record.committed_turn, r->record.n_transcript);
            int has_image = 0;
            for (int k = 0; k < r->record.n_transcript; k++) has_image |= r->record.transcript[k] == VR_IMAGE_TOKEN_ID;
            int32_t *ids = malloc(sizeof(int32_t) * (size_t)(r->record.n_transcript + r->n_prompt));
            if (!ids) {
                fail_request(c, r, VR_RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
                continue;
            }
            memcpy(ids, r->record.transcript, sizeof(int32_t) * (size_t)r->record.n_transcript);
            memcpy(ids + r->record.n_transcript, r->prompt, sizeof(int32_t) * (size_t)r->n_prompt);
            /* the prompt now carries the transcript; the record keeps its own copy for the commit */
            free(r->prompt);
            r->prompt = ids;
            r->n_prompt += r->record.n_transcript;
            r->fresh = 1;
            if (has_image) vr_encode_queue_push(c, r, !c->opt.inline_features, REQ_PREPARE);
            else r->phase = REQ_PREPARE; /* the next pass prepares it from zero */
            continue;
        }
        r->phase = REQ_PREFILL;
    }
    free(rebuild);
    free(missing);
}

/* A turn back from the encode thread: its new features in, or the turn failed. */
static void encode_returned(vr_coordinator *c, vr_request *r) {
    if (r->enc_status != VR_OK) {
        /* an image the vision worker took at admission and refuses now is our fault, not the client's */
        int code = r->enc_status == VR_ERR_CANCELLED
                       ? VR_RPC_STATUS_CANCELLED
                       : vr_rpc_code_from_status(r->enc_status == VR_ERR_INVALID ? VR_ERR_INTERNAL : r->enc_status);
        fail_request(c, r, code, r->enc_msg);
        return;
    }
    vr_image_features_clear(&r->features);
    r->features = r->enc_features;
    memset(&r->enc_features, 0, sizeof r->enc_features);
    r->phase = r->enc_next;
}

/* ------------------------------------------------------------------ step */

static vr_status run_step(vr_coordinator *c, vr_request **rs, int n, int32_t *tokens, float *logits, float *logprobs,
                          vr_error *err) {
    Vrwkv__Internal__StepRequest req = VRWKV__INTERNAL__STEP_REQUEST__INIT;
    Vrwkv__Internal__Run *runs = calloc((size_t)n, sizeof *runs);
    Vrwkv__Internal__Run **ptrs = calloc((size_t)n, sizeof *ptrs);
    Vrwkv__Internal__Sampling *samp = calloc((size_t)n, sizeof *samp);
    if (!runs || !ptrs || !samp) {
        free(runs);
        free(ptrs);
        free(samp);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        vr_request *r = rs[i];
        Vrwkv__Internal__Run *run = &runs[i];
        vrwkv__internal__run__init(run);
        vrwkv__internal__sampling__init(&samp[i]);
        run->tenant = r->tenant;
        run->session = r->session;
        run->scan = r->scan;
        if (r->phase == REQ_PREFILL) {
            run->ids = r->prompt;
            run->n_ids = (size_t)r->n_prompt;
            if (r->features.n_img) {
                run->n_img = r->features.n_img;
                run->features_key = r->features.key;
                if (r->features.data) {
                    run->image_features.data = (uint8_t *)r->features.data;
                    run->image_features.len = (size_t)r->features.n_img * c->cfg.n_embd * sizeof(float);
                }
            }
            run->sample = 1;
            run->reset_sampler = 1;
        } else if (r->phase == REQ_DECODE) {
            run->ids = &r->last_token;
            run->n_ids = 1;
            run->sample = 1;
        } else { /* REQ_FINISH */
            run->ids = r->end_ids;
            run->n_ids = (size_t)r->n_end;
        }
        samp[i].temperature = r->sampling.temperature;
        samp[i].top_p = r->sampling.top_p;
        samp[i].top_k = r->sampling.top_k;
        samp[i].presence_penalty = r->sampling.presence_penalty;
        samp[i].frequency_penalty = r->sampling.frequency_penalty;
        samp[i].seed = r->sampling.seed;
        samp[i].penalty_decay = r->sampling.penalty_decay;
        run->sampling = &samp[i];
        ptrs[i] = run;
    }
    req.step_id = ++c->step_id;
    req.epoch = c->epoch;
    req.n_runs = (size_t)n;
    req.runs = ptrs;
    size_t len = vrwkv__internal__step_request__get_packed_size(&req);
    uint8_t *buf = malloc(len + 1);
    vr_status st = VR_OK;
    if (!buf) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    else vrwkv__internal__step_request__pack(&req, buf);
    free(runs);
    free(ptrs);
    free(samp);
    uint8_t *resps[VR_MAX_WORKERS] = {0};
    size_t rl[VR_MAX_WORKERS] = {0};
    int stages = 0;
    if (st == VR_OK) st = vr_cluster_broadcast(c, "/vrwkv.internal.Shard/Step", buf, len, resps, rl, &stages, err);
    free(buf);
    if (st != VR_OK) return st;
    Vrwkv__Internal__StepResponse *sr = vrwkv__internal__step_response__unpack(NULL, rl[stages - 1], resps[stages - 1]);
    for (int s = 0; s < stages; s++) free(resps[s]);
    if (!sr || sr->n_results != (size_t)n) {
        if (sr) vrwkv__internal__step_response__free_unpacked(sr, NULL);
        return vr_error_set(err, VR_ERR_INTERNAL, "the last shard answered a step with a malformed message");
    }
    for (int i = 0; i < n; i++) {
        tokens[i] = sr->results[i]->token;
        logits[i] = sr->results[i]->logit;
        logprobs[i] = sr->results[i]->logprob;
    }
    vrwkv__internal__step_response__free_unpacked(sr, NULL);
    return VR_OK;
}

/* ------------------------------------------------------------------ finish */

static void complete(vr_coordinator *c, vr_request *r) {
    vr_error err = {0};
    vr_status st = VR_OK;
    if (r->persistent) {
        Vrwkv__Internal__CheckpointRequest req = VRWKV__INTERNAL__CHECKPOINT_REQUEST__INIT;
        req.tenant = r->tenant;
        req.session = r->session;
        req.turn = r->record.committed_turn + 1;
        uint8_t buf[600];
        size_t len = vrwkv__internal__checkpoint_request__get_packed_size(&req);
        vrwkv__internal__checkpoint_request__pack(&req, buf);
        st = vr_cluster_broadcast(c, "/vrwkv.internal.Shard/Checkpoint", buf, len, NULL, NULL, NULL, &err);
        /* every shard has written its layers: now the record may point at the new turn */
        vr_session_record *rec = &r->record;
        int32_t tail261 = VR_STOP_TOKEN_DEFAULT;
        if (st == VR_OK && r->fresh) rec->n_transcript = 0; /* the prompt already holds the old transcript */
        if (st == VR_OK) st = vr_session_record_append(rec, r->prompt, r->n_prompt, &err);
        if (st == VR_OK) st = vr_session_record_append(rec, r->gen, r->n_gen, &err);
        if (st == VR_OK)
            st = r->stopped ? vr_session_record_append(rec, r->end_ids, r->n_end, &err)
                            : vr_session_record_append(rec, &tail261, 1, &err);
        if (st == VR_OK) {
            rec->committed_turn++;
            rec->updated_ms = (int64_t)time(NULL) * 1000;
            uint8_t *bytes = NULL;
            size_t n = 0;
            st = vr_session_record_encode(rec, &bytes, &n, &err);
            if (st == VR_OK) st = vr_store_commit_session(c->store, r->tenant, r->session, rec->committed_turn, bytes, n, &err);
            free(bytes);
        }
    } else {
        vr_cluster_evict(c, r->tenant, r->session, 0, 0);
    }
    if (st != VR_OK) {
        fail_request(c, r, vr_rpc_code_from_status(st == VR_ERR_NOT_FOUND ? VR_ERR_UNAVAILABLE : st), err.msg);
        return;
    }
    r->phase = REQ_DONE;
    vr_counter_inc(c->m_requests, (const char *[]){"OK"});
    vr_session_unclaim(c, r->tenant, r->session);
    vr_request_push(r, EV_FINAL, 0, 0, NULL);
}

/* ------------------------------------------------------------------ loop */



static void *scheduler_loop(void *p) {
    vr_coordinator *c = p;
    int cap = c->opt.max_batch;
    /* turns away on the encode thread do not hold up others: room for as many again beside the
     * batch (a full batch of stuck encodes still admits new turns) */
    int acap = 2 * cap;
    vr_request **active = calloc((size_t)acap, sizeof *active), **work = calloc((size_t)acap, sizeof *work);
    vr_request **batch = calloc((size_t)acap, sizeof *batch);
    int32_t *tokens = calloc((size_t)acap, sizeof *tokens);
    float *tok_logit = calloc((size_t)acap, sizeof *tok_logit), *tok_logprob = calloc((size_t)acap, sizeof *tok_logprob);
    if (!active || !work || !batch || !tokens || !tok_logit || !tok_logprob) {
        vr_log(VR_LOG_ERROR, "scheduler_failed", "error=out of memory for %d turns", acap);
        acap = 0; /* every turn is refused, with that reason */
    }
    int n_active = 0;
    int n_runnable = 0; /* active turns not away on the encode thread */
    for (;;) {
        pthread_mutex_lock(&c->q_mu);
        for (;;) {
            int room = (n_runnable < cap && n_active < acap) || acap == 0;
            if (c->stop || n_runnable > 0 || c->enc_done || (c->queue_head && room)) break;
            pthread_cond_wait(&c->q_cv, &c->q_mu);
        }
        int stop = c->stop;
        if (acap == 0 && !stop) {
            vr_request *r = c->queue_head;
            c->queue_head = c->queue_tail = NULL;
            pthread_mutex_unlock(&c->q_mu);
            while (r) {
                vr_request *next = r->next_queued;
                fail_request(c, r, VR_RPC_STATUS_RESOURCE_EXHAUSTED, "the scheduler is out of memory");
                vr_request_release(r);
                r = next;
            }
            continue;
        }
        vr_request *encoded = vr_encode_queue_take_done_locked(c);
        while (!stop && c->queue_head && n_runnable < cap && n_active < acap) {
            vr_request *r = c->queue_head;
            c->queue_head = r->next_queued;
            if (!c->queue_head) c->queue_tail = NULL;
            r->t_admit_ms = vr_now_ms();
            active[n_active++] = r;
            n_runnable++;
        }
        pthread_mutex_unlock(&c->q_mu);
        while (encoded) {
            vr_request *r = encoded;
            encoded = r->next_enc;
            encode_returned(c, r);
        }
        if (stop) break;
        /* drop turns whose client went away (a turn on the encode thread: once it is back) */
        for (int i = 0; i < n_active; i++)
            if (active[i]->phase != REQ_DONE && active[i]->phase != REQ_ENCODE && is_cancelled(active[i]))
                fail_request(c, active[i], VR_RPC_STATUS_CANCELLED, "the client cancelled the request");
        int n_prep = 0; /* new turns, rebuilds, turns back from the encode thread */
        for (int i = 0; i < n_active; i++)
            if (active[i]->phase == REQ_PREPARE) work[n_prep++] = active[i];
        if (n_prep) prepare(c, work, n_prep);
        int n = 0;
        for (int i = 0; i < n_active; i++) {
            vr_request *r = active[i];
            /* delivered features stage 0 may no longer hold (re-formed since, or old): inline this
             * time, then prepared again (the slot may go while the turn waits) */
            if (r->phase == REQ_PREFILL && !vr_cluster_features_usable(c, &r->features)) {
                vr_encode_queue_push(c, r, 0, REQ_PREPARE);
                continue;
            }
            /* at most --max-batch turns a step (turns back from the encode thread may make more
             * runnable: the rest go in the next step) */
            if ((r->phase == REQ_PREFILL || r->phase == REQ_DECODE || r->phase == REQ_FINISH) && n < cap)
                batch[n++] = r;
        }
        if (n > 0) {
            vr_error err = {0};
            vr_histogram_observe(c->m_batch, NULL, n);
            int64_t t0 = vr_now_ms();
            vr_status st = run_step(c, batch, n, tokens, tok_logit, tok_logprob, &err);
            int64_t t1 = vr_now_ms();
            if (st != VR_OK) {
                if (st == VR_ERR_UNAVAILABLE) vr_cluster_mark_failed(c, err.msg);
                /* NOT_FOUND from a step: stage 0 lacks delivered features; a retry encodes again */
                int code = vr_rpc_code_from_status(st == VR_ERR_NOT_FOUND ? VR_ERR_UNAVAILABLE : st);
                for (int i = 0; i < n; i++) fail_request(c, batch[i], code, err.msg);
            } else {
                for (int i = 0; i < n; i++) {
                    vr_request *r = batch[i];
                    if (r->phase == REQ_FINISH) {
                        complete(c, r);
                        continue;
                    }
                    int32_t t = tokens[i];
                    if (t < 0 || t >= c->cfg.vocab_size) {
                        fail_request(c, r, VR_RPC_STATUS_INTERNAL, "the last shard returned no token");
                        continue;
                    }
                    if (r->phase == REQ_DECODE) vr_histogram_observe(c->m_token_latency, NULL, (t1 - t0) / 1000.0);
                    if (!r->t_first_token_ms) {
                        r->t_first_token_ms = t1;
                        vr_histogram_observe(c->m_ttft, NULL, (t1 - r->t_start_ms) / 1000.0);
                    }
                    if (is_stop(r, t)) {
                        r->stopped = 1;
                        r->stop_logit = tok_logit[i];
                        r->stop_logprob = tok_logprob[i];
                        r->end_ids[0] = t;
                        r->n_end = 1;
                        if (t != VR_STOP_TOKEN_DEFAULT) r->end_ids[r->n_end++] = VR_STOP_TOKEN_DEFAULT;
                        r->phase = REQ_FINISH;
                        continue;
                    }
                    r->gen[r->n_gen++] = t;
                    vr_counter_inc(c->m_tokens, NULL);
                    vr_request_push_token(r, t, tok_logit[i], tok_logprob[i]);
                    if (r->n_gen >= r->max_tokens) {
                        r->end_ids[0] = t;
                        r->end_ids[1] = VR_STOP_TOKEN_DEFAULT;
                        r->n_end = t == VR_STOP_TOKEN_DEFAULT ? 1 : 2;
                        r->phase = REQ_FINISH;
                    } else {
                        r->last_token = t;
                        r->phase = REQ_DECODE;
                    }
                }
            }
        }
        /* retire finished turns */
        int k = 0;
        for (int i = 0; i < n_active; i++) {
            if (active[i]->phase == REQ_DONE) vr_request_release(active[i]);
            else active[k++] = active[i];
        }
        n_active = k;
        n_runnable = 0;
        for (int i = 0; i < n_active; i++) n_runnable += active[i]->phase != REQ_ENCODE;
        vr_gauge_set(c->m_live, NULL, n_active);
    }
    /* the encode in flight ends (its RPC deadline at worst); what was queued comes back failed */
    vr_encode_queue_stop(c);
    pthread_mutex_lock(&c->q_mu);
    vr_request *encoded = vr_encode_queue_take_done_locked(c);
    pthread_mutex_unlock(&c->q_mu);
    while (encoded) {
        vr_request *r = encoded;
        encoded = r->next_enc;
        encode_returned(c, r);
    }
    for (int i = 0; i < n_active; i++) {
        if (active[i]->phase != REQ_DONE) fail_request(c, active[i], VR_RPC_STATUS_UNAVAILABLE, "the server is shutting down");
        vr_request_release(active[i]);
    }
    pthread_mutex_lock(&c->q_mu);
    while (c->queue_head) {
        vr_request *r = c->queue_head;
        c->queue_head = r->next_queued;
        fail_request(c, r, VR_RPC_STATUS_UNAVAILABLE, "the server is shutting down");
        vr_request_release(r);
    }
    c->queue_tail = NULL;
    pthread_mutex_unlock(&c->q_mu);
    free(active);
    free(work);
    free(tokens);
    free(tok_logit);
    free(tok_logprob);
    free(batch);
    return NULL;
}

vr_status vr_scheduler_start(vr_coordinator *c, vr_error *err) {
    vr_status st = vr_encode_queue_start(c, err);
    if (st != VR_OK) return st;
    if (pthread_create(&c->scheduler, NULL, scheduler_loop, c) != 0) {
        vr_encode_queue_stop(c);
        return vr_error_set(err, VR_ERR_INTERNAL, "cannot start the scheduler");
    }
    return VR_OK;
}

void vr_scheduler_stop(vr_coordinator *c) {
    pthread_mutex_lock(&c->q_mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->q_cv);
    pthread_mutex_unlock(&c->q_mu);
    pthread_join(c->scheduler, NULL);
}
