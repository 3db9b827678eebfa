/* worker/shard.c — the layer-shard worker (see shard.h). One compute mutex serialises the
 * commands that touch states or the engine; the coordinator sends one step at a time per
 * pipeline. */
#include "worker/shard.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "model/engine.h"
#include "proto/control.pb-c.h"
#include "proto/rpc.h"
#include "store/store.h"
#include "worker/feature_delivery.h"
#include "worker/frame_link.h"
#include "worker/membership.h"
#include "worker/slots.h"
#include "worker/state_handoff.h"
#include "worker/transport.h"

enum { RECV_TIMEOUT_MS = 60000, CONNECT_TIMEOUT_MS = 5000, NCCL_JOIN_TIMEOUT_MS = 30000, MAX_JOINS = 16,
       HELLO_TIMEOUT_MS = 2000, HELLO_READ_MS = 200, MAX_PENDING_HELLOS = 32, INBOX_MAX_PEERS = 64, HANDOFF_FRAME_TIMEOUT_MS = 30000, HANDOFF_MAX_PEERS = 8 };
#define INBOX_MIN_BYTES ((size_t)1 << 30) /* delivered image features held at most (more are refused) */

struct vr_shard {
    vr_shard_options opt;
    char address[300], transport_address[300];
    vr_engine *e;
    int first, last, is_first, is_last;
    vr_slot_table slots;
    vr_store *store;
    vr_rpc_server *srv;
    vr_rpc_health *health;
    vr_membership *membership;
    vr_metrics *metrics;
    vr_metrics_http *metrics_http;
    vr_counter *m_steps, *m_rows, *m_restores, *m_handoff;
    vr_gauge *m_slots, *m_features_bytes;
    vr_histogram *m_step_seconds;
    pthread_mutex_t compute_mu;
    /* device buffers of a step (grow-only, under compute_mu): activations, image features, the
     * sampled runs' last rows and their logits */
    float *d_x, *d_feat, *d_rows, *d_logits;
    size_t d_x_cap, d_feat_cap, d_rows_cap, d_logits_cap;
    pthread_mutex_t checkpoint_mu; /* guards snapshot */
    vr_state_snapshot snapshot;    /* host copy of the state being checkpointed */
    /* transport */
    vr_transport_listener *listener;
    pthread_t accept_thread;
    pthread_mutex_t link_mu;
    pthread_cond_t link_cv;
    vr_transport *prev, *next;
    /* the links the step thread is using right now ([0] next, [1] prev; under link_mu): one
     * replaced meanwhile is interrupted and waits in retired until the step thread is done
     * with it; any other replaced link is closed at once */
    vr_transport *busy[2];
    vr_transport **retired;
    int n_retired, cap_retired;
    vr_feature_inbox *inbox; /* stage 0: image features delivered by vision workers */
    vr_frame_server *state_server; /* session states handed over by the shard this one replaces */
    uint64_t handoff_seq;
    /* NCCL links being joined (ncclCommInitRank waits for the peer): their threads, joined at stop */
    pthread_t joins[MAX_JOINS];
    int n_joins;
    int stop;
    uint64_t epoch;
    int stage, n_stages;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ transport links */

/* With link_mu held: t, the link being replaced, is no longer used. When the step thread is in
 * it right now, it is interrupted (that step fails at once) and closed once the step thread is
 * done with it (link_done); otherwise it is closed now. */
static void retire_link(vr_shard *s, vr_transport *t) {
    if (!t) return;
    if (t != s->busy[0] && t != s->busy[1]) {
        vr_transport_close(t);
        return;
    }
    vr_transport_interrupt(t, "replaced by a newer link");
    if (s->n_retired == s->cap_retired) {
        int cap = s->cap_retired ? 2 * s->cap_retired : 4;
        vr_transport **r = realloc(s->retired, (size_t)cap * sizeof *r);
        if (!r) { /* closing it now could pull it from under the step thread: keep it open */
            vr_log(VR_LOG_ERROR, "link_leaked", "shard=%s peer=%s error=out of memory", s->address,
                   vr_transport_peer_name(t));
            return;
        }
        s->retired = r;
        s->cap_retired = cap;
    }
    s->retired[s->n_retired++] = t;
}

/* The step thread is done with t: if it was replaced meanwhile, it is closed now. */
static void link_done(vr_shard *s, vr_transport *t) {
    if (!t) return;
    pthread_mutex_lock(&s->link_mu);
    for (int k = 0; k < 2; k++)
        if (s->busy[k] == t) s->busy[k] = NULL;
    for (int i = 0; i < s->n_retired; i++)
        if (s->retired[i] == t) {
            vr_transport_close(t);
            s->retired[i] = s->retired[--s->n_retired];
            break;
        }
    pthread_mutex_unlock(&s->link_mu);
}

/* At stop, once no thread uses a link: closes what is still retired (link_done closes each as
 * its step ends, so normally nothing is left). */
static void close_retired(vr_shard *s) {
    pthread_mutex_lock(&s->link_mu);
    for (int i = 0; i < s->n_retired; i++) vr_transport_close(s->retired[i]);
    s->n_retired = 0;
    pthread_mutex_unlock(&s->link_mu);
}

/* A connection whose hello says who it is goes where its role belongs. */
static void dispatch_peer(vr_shard *s, vr_transport *t, vr_peer_role role) {
    vr_error err = {0};
    vr_log(VR_LOG_INFO, "transport_accepted", "shard=%s peer=%s role=%s", s->address, vr_transport_peer_name(t),
           role == VR_PEER_VISION ? "vision" : role == VR_PEER_SHARD_STATE ? "handoff" : "previous stage");
    if (role == VR_PEER_SHARD_STATE) {
        if (vr_frame_server_serve(s->state_server, t, &err) != VR_OK)
            vr_log(VR_LOG_WARN, "transport_refused", "shard=%s error=%s", s->address, err.msg);
        return;
    }
    if (role == VR_PEER_VISION) {
        if (!s->inbox) {
            vr_log(VR_LOG_WARN, "transport_refused", "shard=%s peer=%s error=a vision worker connected, but only "
                   "stage 0 takes image features", s->address, vr_transport_peer_name(t));
            vr_transport_close(t);
        } else if (vr_feature_inbox_serve(s->inbox, t, &err) != VR_OK) {
            vr_log(VR_LOG_WARN, "transport_refused", "shard=%s error=%s", s->address, err.msg);
        }
        return;
    }
    pthread_mutex_lock(&s->link_mu);
    retire_link(s, s->prev);
    s->prev = t; /* the newest predecessor wins: a re-formed pipeline reconnects */
    pthread_cond_broadcast(&s->link_cv);
    pthread_mutex_unlock(&s->link_mu);
}

/* Every connection to the listener starts with a hello that says who connects: the previous
 * stage (its activations), or, on stage 0, a vision worker (image features), or a shard
 * handing over session states. New connections wait in a short list until their hello is
 * readable, so one that says nothing (a port scanner, a stuck peer) never holds up the others;
 * one that stays silent for HELLO_TIMEOUT_MS, or the oldest when the list is full, is closed. */
static void *accept_loop(void *p) {
    vr_shard *s = p;
    vr_transport *pending[MAX_PENDING_HELLOS];
    int64_t since[MAX_PENDING_HELLOS];
    int n_pending = 0;
    for (;;) {
        pthread_mutex_lock(&s->link_mu);
        int stop = s->stop;
        pthread_mutex_unlock(&s->link_mu);
        if (stop) break;
        vr_transport *t = NULL;
        vr_error err = {0};
        if (vr_transport_tcp_accept(s->listener, n_pending ? 20 : 200, &t, &err) == VR_OK) {
            if (n_pending == MAX_PENDING_HELLOS) {
                vr_log(VR_LOG_WARN, "transport_refused", "shard=%s peer=%s error=no hello; too many connections waiting",
                       s->address, vr_transport_peer_name(pending[0]));
                vr_transport_close(pending[0]);
                memmove(pending, pending + 1, sizeof pending[0] * (MAX_PENDING_HELLOS - 1));
                memmove(since, since + 1, sizeof since[0] * (MAX_PENDING_HELLOS - 1));
                n_pending--;
            }
            pending[n_pending] = t;
            since[n_pending++] = now_ms();
        }
        int k = 0;
        for (int i = 0; i < n_pending; i++) {
            vr_transport *c = pending[i];
            vr_peer_role role = 0;
            if (vr_transport_wait_readable(c, 0)) { /* the hello (one small frame) is arriving: read it */
                if (vr_transport_hello_recv(c, HELLO_READ_MS, &role, &err) == VR_OK) {
                    dispatch_peer(s, c, role);
                } else {
                    vr_log(VR_LOG_WARN, "transport_refused", "shard=%s peer=%s error=%s", s->address,
                           vr_transport_peer_name(c), err.msg);
                    vr_transport_close(c);
                }
            } else if (now_ms() - since[i] > HELLO_TIMEOUT_MS) {
                vr_log(VR_LOG_WARN, "transport_refused", "shard=%s peer=%s error=no hello within %d ms", s->address,
                       vr_transport_peer_name(c), HELLO_TIMEOUT_MS);
                vr_transport_close(c);
            } else {
                pending[k] = c;
                since[k++] = since[i];
            }
        }
        n_pending = k;
    }
    for (int i = 0; i < n_pending; i++) vr_transport_close(pending[i]);
    return NULL;
}

/* ------------------------------------------------------------------ helpers */

static void finish_packed(vr_rpc_call *call, const ProtobufCMessage *msg) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len + 1);
    if (!buf) {
        vr_rpc_call_finish(call, VR_RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0, NULL);
        return;
    }
    protobuf_c_message_pack(msg, buf);
    vr_rpc_call_finish(call, VR_RPC_STATUS_OK, NULL, buf, len, NULL);
    free(buf);
}

#define UNPACK(type, fn, call, var)                                                                          \
    const uint8_t *var##_data;                                                                               \
    size_t var##_len;                                                                                        \
    vr_rpc_call_request(call, &var##_data, &var##_len);                                                      \
    type *var = fn##__unpack(NULL, var##_len, var##_data);                                                   \
    if (!var) {                                                                                              \
        vr_rpc_call_finish(call, VR_RPC_STATUS_INVALID_ARGUMENT, "malformed request", NULL, 0, NULL);        \
        return;                                                                                              \
    }

/* ------------------------------------------------------------------ Assign */

/* ---- NCCL links ---- */

typedef struct link_join {
    vr_shard *s;
    uint8_t id[VR_NCCL_UNIQUE_ID_BYTES];
    int rank; /* 1: the link from the previous stage; 0: the link to the next */
    uint64_t epoch;
} link_join;

/* Joins one link's 2-rank communicator; installs it as prev or next unless the pipeline was
 * re-formed (another epoch) or the shard is stopping meanwhile. */
static void *join_link(void *p) {
    link_join *j = p;
    vr_shard *s = j->s;
    vr_transport *t = NULL;
    vr_error err = {0};
    vr_status st = vr_transport_nccl_create(j->id, 2, j->rank, 1 - j->rank, 0, NCCL_JOIN_TIMEOUT_MS, &t, &err);
    pthread_mutex_lock(&s->link_mu);
    int current = s->epoch == j->epoch && !s->stop;
    if (st == VR_OK && current) {
        vr_transport **slot = j->rank == 1 ? &s->prev : &s->next;
        retire_link(s, *slot);
        *slot = t;
        t = NULL;
        pthread_cond_broadcast(&s->link_cv);
    }
    pthread_mutex_unlock(&s->link_mu);
    if (t) vr_transport_close(t);
    vr_log(st == VR_OK ? VR_LOG_INFO : VR_LOG_WARN, "nccl_link", "shard=%s epoch=%llu link=%s%s%s%s", s->address,
           (unsigned long long)j->epoch, j->rank == 1 ? "prev" : "next", st == VR_OK ? " joined" : " error=",
           st == VR_OK ? "" : err.msg, st == VR_OK && !current ? " (superseded)" : "");
    free(j);
    return NULL;
}

/* Starts join_link in a thread (with link_mu held). */
static vr_status start_join(vr_shard *s, const uint8_t *id, int rank, vr_error *err) {
    if (s->n_joins == MAX_JOINS) { /* reap the oldest: joins end within NCCL_JOIN_TIMEOUT_MS */
        pthread_mutex_unlock(&s->link_mu);
        pthread_join(s->joins[0], NULL);
        pthread_mutex_lock(&s->link_mu);
        memmove(s->joins, s->joins + 1, sizeof s->joins[0] * (MAX_JOINS - 1));
        s->n_joins--;
    }
    link_join *j = calloc(1, sizeof *j);
    if (!j) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    j->s = s;
    memcpy(j->id, id, VR_NCCL_UNIQUE_ID_BYTES);
    j->rank = rank;
    j->epoch = s->epoch;
    if (pthread_create(&s->joins[s->n_joins], NULL, join_link, j) != 0) {
        free(j);
        return vr_error_set(err, VR_ERR_INTERNAL, "cannot start a thread to join an NCCL link");
    }
    s->n_joins++;
    return VR_OK;
}

/* The link from the previous stage (prev = 1) or to the next one, waiting up to
 * CONNECT_TIMEOUT_MS for it: a TCP predecessor may still be connecting, an NCCL link still
 * being joined right after an assignment. NULL when none came. The step thread alone calls
 * this, and calls link_done when it is done with the link. */
static vr_transport *wait_link(vr_shard *s, int prev) {
    pthread_mutex_lock(&s->link_mu);
    int64_t deadline = now_ms() + CONNECT_TIMEOUT_MS;
    for (;;) {
        vr_transport *t = prev ? s->prev : s->next;
        int expected = prev || (s->n_stages > 0 && s->stage + 1 < s->n_stages);
        if (t || !expected || now_ms() >= deadline) {
            s->busy[prev ? 1 : 0] = t;
            pthread_mutex_unlock(&s->link_mu);
            return t;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->link_cv, &s->link_mu, &ts);
    }
}

static void handle_assign(vr_rpc_call *call, void *ctx) {
    vr_shard *s = ctx;
    UNPACK(Vrwkv__Internal__AssignRequest, vrwkv__internal__assign_request, call, req);
    vr_error err = {0};
    vr_status st = VR_OK;
    pthread_mutex_lock(&s->compute_mu);
    pthread_mutex_lock(&s->link_mu);
    if (s->next) vr_transport_close(s->next);
    s->next = NULL;
    s->epoch = req->epoch;
    s->stage = req->stage;
    s->n_stages = req->n_stages;
    pthread_mutex_unlock(&s->link_mu);
    uint8_t prev_id[VR_NCCL_UNIQUE_ID_BYTES];
    int prev_nccl = req->prev_nccl;
    if (req->prev_nccl && !s->opt.nccl)
        st = vr_error_set(&err, VR_ERR_INVALID, "asked for an NCCL link, but this shard runs without --transport nccl");
    if (st == VR_OK && req->prev_nccl) st = vr_nccl_unique_id(prev_id, &err);
    if (st == VR_OK && req->prev_nccl) {
        pthread_mutex_lock(&s->link_mu);
        if (s->prev) vr_transport_close(s->prev);
        s->prev = NULL;
        st = start_join(s, prev_id, 1, &err);
        pthread_mutex_unlock(&s->link_mu);
    }
    if (st == VR_OK && req->next_nccl_id.len) {
        if (req->next_nccl_id.len != VR_NCCL_UNIQUE_ID_BYTES || !s->opt.nccl) {
            st = vr_error_set(&err, VR_ERR_INVALID, "bad NCCL link to the next stage (%zu-byte id%s)",
                              req->next_nccl_id.len, s->opt.nccl ? "" : "; this shard runs without --transport nccl");
        } else {
            pthread_mutex_lock(&s->link_mu);
            st = start_join(s, req->next_nccl_id.data, 0, &err);
            pthread_mutex_unlock(&s->link_mu);
        }
    } else if (st == VR_OK && req->next_transport_address && *req->next_transport_address) {
        vr_transport *t = NULL;
        st = vr_transport_tcp_connect_address(req->next_transport_address, CONNECT_TIMEOUT_MS, &t, &err);
        if (st == VR_OK) st = vr_transport_hello_send(t, VR_PEER_PREV_STAGE, &err);
        if (st != VR_OK) vr_transport_close(t), t = NULL;
        pthread_mutex_lock(&s->link_mu);
        s->next = t;
        pthread_mutex_unlock(&s->link_mu);
    }
    pthread_mutex_unlock(&s->compute_mu);
    vr_log(st == VR_OK ? VR_LOG_INFO : VR_LOG_WARN, "assigned", "shard=%s epoch=%llu stage=%d n_stages=%d next=%s%s%s",
           s->address, (unsigned long long)req->epoch, req->stage, req->n_stages,
           req->next_transport_address ? req->next_transport_address : "", st == VR_OK ? "" : " error=",
           st == VR_OK ? "" : err.msg);
    vrwkv__internal__assign_request__free_unpacked(req, NULL);
    if (st != VR_OK) {
        vr_rpc_call_finish_error(call, &err);
        return;
    }
    Vrwkv__Internal__AssignResponse resp = VRWKV__INTERNAL__ASSIGN_RESPONSE__INIT;
    if (prev_nccl) {
        resp.prev_nccl_id.data = prev_id;
        resp.prev_nccl_id.len = sizeof prev_id;
    }
    finish_packed(call, &resp.base);
}

/* ------------------------------------------------------------------ Prepare */

static vr_status restore_slot(vr_shard *s, vr_slot *slot, int64_t turn, vr_error *err) {
    for (int layer = s->first; layer < s->last; layer++) {
        uint8_t *blob = NULL;
        size_t len = 0;
        vr_status st = vr_store_get_blob(s->store, slot->tenant, slot->session, turn, layer, &blob, &len, err);
        if (st == VR_OK) st = vr_state_deserialize_layer(slot->state, layer, s->e->w->fingerprint, blob, len, err);
        free(blob);
        if (st != VR_OK) {
            vr_error ignored = {0};
            vr_engine_check(s->e, &ignored); /* an earlier layer's upload failure is this call's too */
            return vr_error_wrap(err, "restoring session %s turn %lld layer %d", slot->session, (long long)turn,
                                 layer);
        }
    }
    /* the uploads to a device state arrived */
    if (vr_engine_check(s->e, err) != VR_OK)
        return vr_error_wrap(err, "restoring session %s turn %lld", slot->session, (long long)turn);
    return VR_OK;
}

static void handle_prepare(vr_rpc_call *call, void *ctx) {
    vr_shard *s = ctx;
    UNPACK(Vrwkv__Internal__PrepareRequest, vrwkv__internal__prepare_request, call, req);
    Vrwkv__Internal__PrepareResponse resp = VRWKV__INTERNAL__PREPARE_RESPONSE__INIT;
    Vrwkv__Internal__PrepareResult *results = calloc(req->n_sessions + 1, sizeof *results);
    Vrwkv__Internal__PrepareResult **ptrs = calloc(req->n_sessions + 1, sizeof *ptrs);
    char (*msgs)[512] = calloc(req->n_sessions + 1, sizeof *msgs);
    if (!results || !ptrs || !msgs) {
        free(results);
        free(ptrs);
        free(msgs);
        vrwkv__internal__prepare_request__free_unpacked(req, NULL);
        vr_rpc_call_finish(call, VR_RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0, NULL);
        return;
    }
    pthread_mutex_lock(&s->compute_mu);
    for (size_t i = 0; i < req->n_sessions; i++) {
        Vrwkv__Internal__SessionRef *ref = req->sessions[i];
        vrwkv__internal__prepare_result__init(&results[i]);
        ptrs[i] = &results[i];
        vr_error err = {0};
        vr_slot *slot = NULL;
        vr_status st = vr_slot_acquire(&s->slots, ref->tenant, ref->session, &slot, &err);
        if (st == VR_OK) {
            if (ref->fresh) {
                vr_state_reset(slot->state);
                slot->turn = 0;
                slot->tokens = 0;
                slot->committed = 0;
                st = vr_engine_check(s->e, &err); /* a device state's zeroing arrived */
                if (st != VR_OK) vr_slot_release(&s->slots, slot);
            } else if (slot->turn != ref->base_turn || slot->tokens != ref->base_tokens) {
                st = restore_slot(s, slot, ref->base_turn, &err);
                if (st == VR_OK) {
                    slot->turn = ref->base_turn;
                    slot->tokens = ref->base_tokens;
                    slot->committed = 1;
                    vr_counter_inc(s->m_restores, NULL);
                    vr_log(VR_LOG_INFO, "state_restored", "shard=%s session=%s turn=%lld", s->address, ref->session,
                           (long long)ref->base_turn);
                } else {
                    vr_log(VR_LOG_WARN, "state_restore_failed", "shard=%s session=%s error=%s", s->address,
                           ref->session, err.msg);
                    vr_slot_release(&s->slots, slot);
                }
            }
        }
        results[i].status = (int32_t)st;
        /* stage 0 says now, before the prefill step, when the image features it will need are not here */
        results[i].features_missing = s->inbox && ref->features_key && !vr_feature_inbox_has(s->inbox, ref->features_key);
        snprintf(msgs[i], sizeof msgs[i], "%s", st == VR_OK ? "" : err.msg);
        results[i].message = msgs[i];
    }
    vr_gauge_set(s->m_slots, NULL, vr_slot_count(&s->slots));
    pthread_mutex_unlock(&s->compute_mu);
    if (s->inbox) { /* once per admission, not per decode step */
        size_t held = 0;
        vr_feature_inbox_usage(s->inbox, NULL, &held);
        vr_gauge_set(s->m_features_bytes, NULL, (double)held);
    }
    resp.n_results = req->n_sessions;
    resp.results = ptrs;
    finish_packed(call, &resp.base);
    free(results);
    free(ptrs);
    free(msgs);
    vrwkv__internal__prepare_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------------ Step */

/* The last stage's choice for every run that asks for a token: the runs' last rows gathered,
 * the head over them 16 rows at a time (so each row's logits are bit-identical to a lone
 * row's), then each run's sampler through vr_engine_sample (on the device where the backend
 * chooses tokens: only ids and two floats per run come back). */
static vr_status sample_runs(vr_shard *s, Vrwkv__Internal__StepRequest *req, const vr_run *runs, int n,
                             const float *x, int32_t *tokens, float *tok_logit, float *tok_logprob, vr_error *err) {
    vr_engine *e = s->e;
    vr_backend *be = e->be;
    const int C = e->cfg.n_embd, V = e->cfg.vocab_size;
    int32_t *which = malloc((size_t)n * sizeof *which), *last = malloc((size_t)n * sizeof *last);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *lg = malloc((size_t)n * sizeof *lg), *lp = malloc((size_t)n * sizeof *lp);
    vr_status st = which && last && ids && lg && lp ? VR_OK : vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    int ns = 0;
    for (int i = 0; st == VR_OK && i < n; i++) {
        tokens[i] = -1;
        Vrwkv__Internal__Run *r = req->runs[i];
        if (!r->sample) continue;
        vr_slot *slot = vr_slot_find(&s->slots, r->tenant, r->session);
        if (!r->reset_sampler && !slot->sampler) { /* a turn's sampler lives here: never start it afresh mid-turn */
            st = vr_error_set(err, VR_ERR_NOT_FOUND, "session %s has no sampler on this shard (the pipeline changed "
                              "mid-turn?); retry", r->session);
            break;
        }
        if (r->reset_sampler || !slot->sampler) {
            vr_sampling_params p;
            vr_sampling_params_default(&p);
            if (r->sampling) {
                p.temperature = r->sampling->temperature;
                p.top_p = r->sampling->top_p > 0 ? r->sampling->top_p : 1.0f;
                p.top_k = r->sampling->top_k;
                p.presence_penalty = r->sampling->presence_penalty;
                p.frequency_penalty = r->sampling->frequency_penalty;
                p.seed = r->sampling->seed;
                if (r->sampling->penalty_decay > 0) p.penalty_decay = r->sampling->penalty_decay;
            }
            vr_sampler_free(slot->sampler);
            slot->sampler = NULL;
            st = vr_sampler_create(&p, V, &slot->sampler, err);
        }
        which[ns] = i;
        last[ns] = runs[i].offset + runs[i].len - 1;
        ns++;
    }
    float *rows = NULL, *logits = NULL;
    if (st == VR_OK && ns > 0) {
        rows = vr_engine_buffer(e, &s->d_rows, &s->d_rows_cap, (size_t)ns * C);
        logits = vr_engine_buffer(e, &s->d_logits, &s->d_logits_cap, (size_t)ns * V);
        if (!rows || !logits) st = vr_error_set(err, VR_ERR_NOMEM, "out of device memory for %d rows of logits", ns);
    }
    if (st == VR_OK && ns > 0) {
        be->ops->gather_rows(be, x, last, ns, C, rows);
        for (int k0 = 0; st == VR_OK && k0 < ns; k0 += 16)
            st = vr_rwkv_head(e->w, e->ws, rows + (size_t)k0 * C, ns - k0 < 16 ? ns - k0 : 16, logits + (size_t)k0 * V,
                              err);
    }
    vr_sampler **samplers = malloc((size_t)(ns ? ns : 1) * sizeof *samplers);
    if (!samplers && st == VR_OK) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    for (int k = 0; st == VR_OK && k < ns; k++) {
        Vrwkv__Internal__Run *r = req->runs[which[k]];
        samplers[k] = vr_slot_find(&s->slots, r->tenant, r->session)->sampler;
    }
    if (st == VR_OK && ns > 0) st = vr_engine_sample(e, logits, ns, samplers, ids, lg, lp, err);
    for (int k = 0; st == VR_OK && k < ns; k++) {
        tokens[which[k]] = ids[k];
        tok_logit[which[k]] = lg[k];
        tok_logprob[which[k]] = lp[k];
    }
    free(samplers);
    if (st == VR_OK) st = vr_engine_check(e, err);
    free(which);
    free(last);
    free(ids);
    free(lg);
    free(lp);
    return st;
}

/* The ops of a decode-only step on this stage: the embedding (first stage) and its layers. */
typedef struct stage_args {
    vr_shard *s;
    const int32_t *ids; /* first stage: one id per session; else NULL (x came from the previous stage) */
    float *x;
    const vr_run *runs;
    vr_state *const *states;
    int n;
} stage_args;

static vr_status stage_forward(void *ctx, vr_error *err) {
    stage_args *a = ctx;
    vr_engine *e = a->s->e;
    vr_status st = a->ids ? vr_rwkv_embed(e->w, a->ids, a->n, NULL, 0, a->x, err) : VR_OK;
    if (st == VR_OK) st = vr_rwkv_layers(e->w, e->ws, a->x, a->runs, a->n, a->states, NULL, a->s->first, a->s->last, err);
    return st;
}

/* A later stage's input: the step's activations from the previous stage. An empty frame under
 * the step's tag means the previous stage failed the step (its error went to the coordinator). */
static vr_status recv_activations(vr_shard *s, uint64_t step_id, void **frame, size_t *len, vr_error *err) {
    vr_transport *prev = wait_link(s, 1);
    if (!prev) return vr_error_set(err, VR_ERR_UNAVAILABLE, "no connection from the previous stage");
    vr_status st = vr_transport_recv(prev, step_id, frame, len, RECV_TIMEOUT_MS, err);
    link_done(s, prev);
    if (st == VR_OK && *len == 0)
        return vr_error_set(err, VR_ERR_CANCELLED, "the previous stage failed step %llu", (unsigned long long)step_id);
    if (st != VR_OK && st != VR_ERR_FORMAT) st = VR_ERR_UNAVAILABLE, err->code = VR_ERR_UNAVAILABLE;
    return st;
}

/* Tells the next stage, which waits for this step's activations, that none will come: it then
 * fails the step at once instead of waiting out its receive timeout. */
static void send_abort(vr_shard *s, uint64_t step_id) {
    pthread_mutex_lock(&s->link_mu);
    vr_transport *next = s->busy[0] = s->next;
    pthread_mutex_unlock(&s->link_mu);
    vr_error err = {0};
    if (next && vr_transport_send(next, step_id, NULL, 0, &err) != VR_OK)
        vr_log(VR_LOG_WARN, "abort_not_sent", "shard=%s step=%llu error=%s", s->address, (unsigned long long)step_id,
               err.msg);
    link_done(s, next);
}

/* Stage 0: a run's image features onto the device, from the request or from the inbox. */
static vr_status stage_features(vr_shard *s, const Vrwkv__Internal__Run *r, int i, const float **out, vr_error *err) {
    vr_engine *e = s->e;
    const size_t bytes = (size_t)r->n_img * e->cfg.n_embd * sizeof(float);
    float *taken = NULL;
    const void *src = r->image_features.data;
    vr_status st = VR_OK;
    if (r->features_key) {
        if (r->image_features.len)
            return vr_error_set(err, VR_ERR_INVALID, "run %d carries image features and a features key", i);
        if (!s->inbox) return vr_error_set(err, VR_ERR_INVALID, "run %d: this shard takes no delivered features", i);
        st = vr_feature_inbox_take(s->inbox, r->features_key, &taken, err); /* the inbox checked the shape */
        src = taken;
    } else if (r->image_features.len != bytes) {
        return vr_error_set(err, VR_ERR_INVALID, "run %d: image features have %zu bytes, expected %zu", i,
                            r->image_features.len, bytes);
    }
    float *d = st == VR_OK ? vr_engine_buffer(e, &s->d_feat, &s->d_feat_cap, (size_t)r->n_img * e->cfg.n_embd) : NULL;
    if (st == VR_OK && !d) st = vr_error_set(err, VR_ERR_NOMEM, "out of device memory for image features");
    if (st == VR_OK) e->be->ops->upload(e->be, d, src, bytes);
    free(taken);
    *out = d;
    return st;
}

static vr_status run_step(vr_shard *s, Vrwkv__Internal__StepRequest *req, int32_t *tokens, float *tok_logit,
                          float *tok_logprob, vr_error *err) {
    vr_engine *e = s->e;
    const int C = e->cfg.n_embd;
    int n = (int)req->n_runs;
    void *frame = NULL;
    size_t frame_len = 0;
    /* a later stage takes the step's activations before anything else: whatever fails after, the
     * frame must not stay in the stream for the next step to trip over */
    vr_status st = s->is_first ? VR_OK : recv_activations(s, req->step_id, &frame, &frame_len, err);
    int forwarded = 0; /* the next stage got this step's activations (or the attempt broke the link) */
    if (st == VR_OK && n <= 0) st = vr_error_set(err, VR_ERR_INVALID, "a step needs at least one run");
    vr_run *runs = calloc((size_t)(n > 0 ? n : 1), sizeof *runs);
    vr_scan_plan *plans = calloc((size_t)(n > 0 ? n : 1), sizeof *plans);
    vr_state **states = calloc((size_t)(n > 0 ? n : 1), sizeof *states);
    vr_slot **slots = calloc((size_t)(n > 0 ? n : 1), sizeof *slots);
    float *x = NULL; /* device */
    if (st == VR_OK && (!runs || !plans || !states || !slots)) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    int rows = 0;
    for (int i = 0; st == VR_OK && i < n; i++) {
        Vrwkv__Internal__Run *r = req->runs[i];
        slots[i] = vr_slot_find(&s->slots, r->tenant, r->session);
        if (!slots[i]) {
            /* the pipeline changed under a turn in flight: retriable, like the turn's other failures */
            st = vr_error_set(err, VR_ERR_NOT_FOUND, "session %s is not prepared on this shard (the pipeline changed "
                              "mid-turn?); retry", r->session);
            break;
        }
        if (r->n_ids == 0) st = vr_error_set(err, VR_ERR_INVALID, "run %d has no ids", i);
        int img_at = -1;
        for (size_t j = 0; j < r->n_ids; j++)
            if (r->ids[j] == -200) img_at = (int)j;
        int n_img = img_at >= 0 ? r->n_img : 0;
        if (img_at >= 0 && n_img != e->cfg.num_image_tokens)
            st = vr_error_set(err, VR_ERR_INVALID, "run %d has %d image rows, the model makes %d", i, n_img,
                              e->cfg.num_image_tokens);
        runs[i].offset = rows;
        runs[i].len = vr_rwkv_embed_rows(r->ids, (int)r->n_ids, n_img);
        plans[i].mode = (vr_scan_mode)r->scan;
        plans[i].img_start = img_at;
        plans[i].img_end = img_at >= 0 ? img_at + n_img - 1 : -1;
        states[i] = slots[i]->state;
        rows += runs[i].len;
    }
    if (st == VR_OK && !(x = vr_engine_buffer(e, &s->d_x, &s->d_x_cap, (size_t)rows * C)))
        st = vr_error_set(err, VR_ERR_NOMEM, "out of device memory for %d rows", rows);
    /* a step of one new token per session (no prompt, no image): recorded and replayed as a CUDA
     * graph where the backend can (vr_engine_run_step) */
    int decode_only = 1;
    for (int i = 0; i < n && decode_only; i++) decode_only = runs && runs[i].len == 1 && plans[i].img_start < 0;
    int32_t *step_ids = NULL;
    if (st == VR_OK && decode_only && s->is_first) {
        if (!(step_ids = malloc((size_t)n * sizeof *step_ids))) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        for (int i = 0; st == VR_OK && i < n; i++) step_ids[i] = req->runs[i]->ids[0];
    } else if (st == VR_OK && s->is_first) {
        for (int i = 0; st == VR_OK && i < n; i++) {
            Vrwkv__Internal__Run *r = req->runs[i];
            const float *features = NULL;
            if (plans[i].img_start >= 0) st = stage_features(s, r, i, &features, err);
            if (st == VR_OK)
                st = vr_rwkv_embed(e->w, r->ids, (int)r->n_ids, features, r->n_img, x + (size_t)runs[i].offset * C,
                                   err);
        }
    } else if (st == VR_OK) {
        if (frame_len != (size_t)rows * C * sizeof(float))
            st = vr_error_set(err, VR_ERR_FORMAT, "activations of %zu bytes, expected %zu", frame_len,
                              (size_t)rows * C * sizeof(float));
        else
            e->be->ops->upload(e->be, x, frame, frame_len);
    }
    if (st == VR_OK && decode_only) {
        stage_args a = {s, step_ids, x, runs, states, n};
        st = vr_engine_run_step(e, n, stage_forward, &a, err);
    } else if (st == VR_OK) {
        st = vr_rwkv_layers(e->w, e->ws, x, runs, n, states, plans, s->first, s->last, err);
    }
    free(step_ids);
    if (st == VR_OK && !s->is_last) {
        vr_transport *next = wait_link(s, 0);
        float *host = malloc((size_t)rows * C * sizeof(float));
        if (!host) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory for %d rows", rows);
        else e->be->ops->download(e->be, host, x, (size_t)rows * C * sizeof(float));
        if (st == VR_OK) st = vr_engine_check(e, err);
        if (st != VR_OK) {
        } else if (!next) {
            st = vr_error_set(err, VR_ERR_UNAVAILABLE, "no connection to the next stage");
        } else {
            forwarded = 1;
            if (vr_transport_send(next, req->step_id, host, (size_t)rows * C * sizeof(float), err) != VR_OK)
                st = VR_ERR_UNAVAILABLE, err->code = VR_ERR_UNAVAILABLE;
        }
        free(host);
        link_done(s, next);
    }
    if (st == VR_OK && s->is_last) st = sample_runs(s, req, runs, n, x, tokens, tok_logit, tok_logprob, err);
    if (st != VR_OK && !s->is_last && !forwarded) send_abort(s, req->step_id);
    if (st != VR_OK && s->inbox) /* the turns of a failed step end: their delivered features go too */
        for (int i = 0; i < n; i++) {
            float *f = NULL;
            vr_error ignored = {0};
            if (req->runs[i]->features_key && vr_feature_inbox_take(s->inbox, req->runs[i]->features_key, &f,
                                                                    &ignored) == VR_OK)
                free(f);
        }
    if (st == VR_OK)
        for (int i = 0; i < n; i++) {
            slots[i]->tokens += (int64_t)req->runs[i]->n_ids;
            slots[i]->committed = 0; /* mid-turn until the next Checkpoint */
        }
    else
        for (int i = 0; i < n; i++)
            if (slots && slots[i]) slots[i]->tokens = -1, slots[i]->committed = 0; /* unknown: restore next time */
    vr_counter_add(s->m_rows, NULL, rows);
    if (st != VR_OK) { /* a device failure is this step's: clear it, or the next step would report it */
        vr_error ignored = {0};
        vr_engine_check(e, &ignored);
    }
    free(frame);
    free(runs);
    free(plans);
    free(states);
    free(slots);
    return st;
}

static void handle_step(vr_rpc_call *call, void *ctx) {
    vr_shard *s = ctx;
    UNPACK(Vrwkv__Internal__StepRequest, vrwkv__internal__step_request, call, req);
    int64_t t0 = now_ms();
    vr_error err = {0};
    int32_t *tokens = calloc(req->n_runs + 1, sizeof *tokens);
    float *lg = calloc(req->n_runs + 1, sizeof *lg), *lp = calloc(req->n_runs + 1, sizeof *lp);
    pthread_mutex_lock(&s->compute_mu);
    vr_status st = tokens && lg && lp ? run_step(s, req, tokens, lg, lp, &err)
                                      : vr_error_set(&err, VR_ERR_NOMEM, "out of memory");
    pthread_mutex_unlock(&s->compute_mu);
    vr_counter_inc(s->m_steps, NULL);
    vr_histogram_observe(s->m_step_seconds, NULL, (double)(now_ms() - t0) / 1000.0);

    if (st != VR_OK) {
        vr_log(VR_LOG_WARN, "step_failed", "shard=%s step=%llu error=%s", s->address, (unsigned long long)req->step_id,
               err.msg);
        vr_rpc_call_finish_error(call, &err);
    } else {
        Vrwkv__Internal__StepResponse resp = VRWKV__INTERNAL__STEP_RESPONSE__INIT;
        Vrwkv__Internal__RunResult *rr = calloc(req->n_runs + 1, sizeof *rr);
        Vrwkv__Internal__RunResult **pp = calloc(req->n_runs + 1, sizeof *pp);
        if (s->is_last && rr && pp) {
            for (size_t i = 0; i < req->n_runs; i++) {
                vrwkv__internal__run_result__init(&rr[i]);
                rr[i].token = tokens[i];
                rr[i].logit = lg[i];
                rr[i].logprob = lp[i];
                pp[i] = &rr[i];
            }
            resp.n_results = req->n_runs;
            resp.results = pp;
        }
        finish_packed(call, &resp.base);
        free(rr);
        free(pp);
    }
    free(tokens);
    free(lg);
    free(lp);
    vrwkv__internal__step_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------------ Handoff */

/* The largest state frame this shard takes: its own layers, the longest names. */
static size_t handoff_frame_limit(const vr_shard *s) {
    const vr_model_config *c = &s->e->cfg;
    size_t blob = VR_STATE_HEADER_SIZE + ((size_t)2 * c->n_embd + (size_t)c->n_head * c->head_size * c->head_size) * 4;
    return VR_STATE_FRAME_HEADER + 2 * VR_STATE_NAME_MAX + (size_t)(s->last - s->first) * blob;
}

/* Receiving side: one session's state from the shard this one replaces. Taken only into a free
 * slot: a session already live here (restored from the store, maybe advanced since) is newer or
 * equal, and a full table keeps its own sessions. */
static vr_status take_state(void *ctx, const uint8_t *frame, size_t len, uint64_t *key, vr_error *err) {
    vr_shard *s = ctx;
    vr_state_frame f;
    vr_status st = vr_state_frame_parse(frame, len, &f, err);
    *key = f.key;
    if (st != VR_OK) return st;
    if (f.layer_first > s->first || f.layer_last < s->last)
        return vr_error_set(err, VR_ERR_INVALID, "a state of layers %d:%d cannot fill this shard's layers %d:%d",
                            f.layer_first, f.layer_last, s->first, s->last);
    pthread_mutex_lock(&s->compute_mu);
    vr_slot *slot = NULL;
    if (vr_slot_find(&s->slots, f.tenant, f.session))
        st = vr_error_set(err, VR_ERR_INVALID, "session %s is already live here", f.session);
    else if (vr_slot_count(&s->slots) >= s->slots.capacity)
        st = vr_error_set(err, VR_ERR_NOMEM, "all %d state slots are in use", s->slots.capacity);
    else
        st = vr_slot_acquire(&s->slots, f.tenant, f.session, &slot, err);
    for (int layer = s->first; st == VR_OK && layer < s->last; layer++)
        st = vr_state_deserialize_layer(slot->state, layer, s->e->w->fingerprint, vr_state_frame_blob(&f, layer),
                                        f.blob_size, err);
    if (st == VR_OK) st = vr_engine_check(s->e, err); /* the uploads to a device state arrived */
    if (st == VR_OK) {
        slot->turn = f.turn;
        slot->tokens = f.tokens;
        slot->committed = 1;
    } else if (slot) {
        vr_slot_release(&s->slots, slot); /* never half a state */
    }
    vr_gauge_set(s->m_slots, NULL, vr_slot_count(&s->slots));
    pthread_mutex_unlock(&s->compute_mu);
    vr_counter_inc(s->m_handoff, (const char *[]){st == VR_OK ? "taken" : "refused"});
    vr_log(st == VR_OK ? VR_LOG_INFO : VR_LOG_WARN, "state_received", "shard=%s session=%s turn=%lld%s%s", s->address,
           f.session, (long long)f.turn, st == VR_OK ? "" : " refused=", st == VR_OK ? "" : err->msg);
    return st;
}

/* Makes the handoff frame of one live session (NULL when it is gone or not at a committed turn). */
static uint8_t *handoff_frame(vr_shard *s, const char *tenant, const char *session, int first, int last,
                              uint64_t key, size_t *len, vr_error *err) {
    vr_state_frame f;
    memset(&f, 0, sizeof f);
    pthread_mutex_lock(&s->checkpoint_mu); /* owns the snapshot buffer */
    pthread_mutex_lock(&s->compute_mu);
    vr_slot *slot = vr_slot_find(&s->slots, tenant, session);
    /* only a turn's committed state: a turn in flight fails with the pipeline change, and its
     * retry starts from the committed turn anyway */
    vr_status st = slot && slot->committed ? vr_state_snapshot_take(slot->state, &s->snapshot, err) : VR_ERR_NOT_FOUND;
    if (st == VR_OK) {
        f.turn = slot->turn;
        f.tokens = slot->tokens;
    }
    pthread_mutex_unlock(&s->compute_mu);
    uint8_t *frame = NULL;
    if (st == VR_OK) {
        f.key = key;
        f.layer_first = first;
        f.layer_last = last;
        f.blob_size = VR_STATE_HEADER_SIZE + s->snapshot.layer_floats * sizeof(float);
        snprintf(f.tenant, sizeof f.tenant, "%s", tenant);
        snprintf(f.session, sizeof f.session, "%s", session);
        *len = vr_state_frame_size(tenant, session, last - first, f.blob_size);
        frame = malloc(*len);
        uint8_t *blobs = frame ? vr_state_frame_begin(&f, frame, *len, err) : NULL;
        if (frame && !blobs) st = err->code;
        if (!frame) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory for a %zu-byte state frame", *len);
        for (int layer = first; st == VR_OK && layer < last; layer++)
            st = vr_state_snapshot_blob(&s->snapshot, layer, s->e->w->fingerprint,
                                        blobs + (size_t)(layer - first) * f.blob_size, f.blob_size, err);
    }
    pthread_mutex_unlock(&s->checkpoint_mu);
    if (st != VR_OK) {
        free(frame);
        return NULL;
    }
    return frame;
}

/* Sending side: this shard left the pipeline for a replacement; every live state goes over. */
static void handle_handoff(vr_rpc_call *call, void *ctx) {
    vr_shard *s = ctx;
    UNPACK(Vrwkv__Internal__HandoffRequest, vrwkv__internal__handoff_request, call, req);
    vr_error err = {0};
    vr_status st = VR_OK;
    int first = req->layer_first, last = req->layer_last, sent = 0, skipped = 0;
    char to[300];
    snprintf(to, sizeof to, "%s", req->to_transport_address ? req->to_transport_address : "");
    vrwkv__internal__handoff_request__free_unpacked(req, NULL);
    if (first < s->first || last > s->last || first >= last || !to[0])
        st = vr_error_set(&err, VR_ERR_INVALID, "cannot hand layers %d:%d to '%s': this shard holds layers %d:%d",
                          first, last, to, s->first, s->last);
    /* the sessions to send, named first: each is then copied under the lock on its own */
    char (*names)[2][130] = NULL;
    int n = 0;
    vr_frame_client *fc = NULL;
    if (st == VR_OK) {
        pthread_mutex_lock(&s->compute_mu);
        names = calloc((size_t)s->slots.capacity + 1, sizeof *names);
        for (int i = 0; names && i < s->slots.capacity; i++) {
            const vr_slot *slot = &s->slots.slots[i];
            if (!slot->in_use || !slot->committed) continue;
            snprintf(names[n][0], sizeof names[n][0], "%s", slot->tenant);
            snprintf(names[n][1], sizeof names[n][1], "%s", slot->session);
            n++;
        }
        pthread_mutex_unlock(&s->compute_mu);
        if (!names) st = vr_error_set(&err, VR_ERR_NOMEM, "out of memory");
    }
    if (st == VR_OK) st = vr_frame_client_create(VR_PEER_SHARD_STATE, VR_STATE_TAG, VR_STATE_ACK_TAG, &fc, &err);
    if (st == VR_OK && s->opt.nccl) vr_frame_client_use_nccl(fc, 0);
    for (int i = 0; st == VR_OK && i < n; i++) {
        if (vr_rpc_call_is_cancelled(call)) { /* the coordinator gave up, or this shard is stopping */
            st = vr_error_set(&err, VR_ERR_CANCELLED, "handoff cancelled after %d of %d states", sent + skipped, n);
            break;
        }
        size_t len = 0;
        vr_error ferr = {0};
        uint64_t key = __atomic_add_fetch(&s->handoff_seq, 1, __ATOMIC_RELAXED);
        uint8_t *frame = handoff_frame(s, names[i][0], names[i][1], first, last, key, &len, &ferr);
        if (!frame) continue; /* gone meanwhile, or its state unknown */
        vr_status fst = vr_frame_client_send(fc, to, key, frame, len, HANDOFF_FRAME_TIMEOUT_MS, &ferr);
        free(frame);
        if (fst == VR_OK) {
            sent++;
        } else if (fst == VR_ERR_INVALID || fst == VR_ERR_NOMEM) {
            skipped++; /* the replacement said no to this one */
        } else {
            st = vr_error_set(&err, fst, "handing states to %s: %s", to, ferr.msg);
        }
    }
    vr_frame_client_free(fc);
    free(names);
    vr_log(st == VR_OK ? VR_LOG_INFO : VR_LOG_WARN, "handoff_done", "shard=%s to=%s sent=%d skipped=%d%s%s",
           s->address, to, sent, skipped, st == VR_OK ? "" : " error=", st == VR_OK ? "" : err.msg);
    if (st != VR_OK) {
        vr_rpc_call_finish_error(call, &err);
        return;
    }
    Vrwkv__Internal__HandoffResponse resp = VRWKV__INTERNAL__HANDOFF_RESPONSE__INIT;
    resp.sent = sent;
    resp.skipped = skipped;
    finish_packed(call, &resp.base);
}

/* ------------------------------------------------------------------ Checkpoint, Evict */

/* The state is copied to host memory under the compute lock (one transfer, into pinned memory
 * on a GPU); the blobs are made and written to the store after it is released, so decode
 * steps of other sessions wait only for the copy, never for the store. */
static void handle_checkpoint(vr_rpc_call *call, void *ctx) {
    vr_shard *s = ctx;
    UNPACK(Vrwkv__Internal__CheckpointRequest, vrwkv__internal__checkpoint_request, call, req);
    vr_error err = {0};
    vr_status st = VR_OK;
    pthread_mutex_lock(&s->checkpoint_mu); /* one checkpoint at a time owns the snapshot buffer */
    pthread_mutex_lock(&s->compute_mu);
    vr_slot *slot = vr_slot_find(&s->slots, req->tenant, req->session);
    if (!slot) st = vr_error_set(&err, VR_ERR_NOT_FOUND, "session %s is not live on this shard", req->session);
    if (st == VR_OK) st = vr_state_snapshot_take(slot->state, &s->snapshot, &err);
    pthread_mutex_unlock(&s->compute_mu);
    uint8_t *blob = NULL;
    size_t n = VR_STATE_HEADER_SIZE + s->snapshot.layer_floats * sizeof(float);
    if (st == VR_OK && !(blob = malloc(n))) st = vr_error_set(&err, VR_ERR_NOMEM, "out of memory");
    for (int layer = s->first; st == VR_OK && layer < s->last; layer++) {
        st = vr_state_snapshot_blob(&s->snapshot, layer, s->e->w->fingerprint, blob, n, &err);
        if (st == VR_OK) st = vr_store_put_blob(s->store, req->tenant, req->session, req->turn, layer, blob, n, &err);
    }
    free(blob);
    pthread_mutex_unlock(&s->checkpoint_mu);
    if (st == VR_OK) {
        pthread_mutex_lock(&s->compute_mu);
        if ((slot = vr_slot_find(&s->slots, req->tenant, req->session))) {
            slot->turn = req->turn;
            slot->committed = 1;
        }
        pthread_mutex_unlock(&s->compute_mu);
    }
    vrwkv__internal__checkpoint_request__free_unpacked(req, NULL);
    if (st != VR_OK) {
        vr_rpc_call_finish_error(call, &err);
        return;
    }
    Vrwkv__Internal__CheckpointResponse resp = VRWKV__INTERNAL__CHECKPOINT_RESPONSE__INIT;
    finish_packed(call, &resp.base);
}

static void handle_evict(vr_rpc_call *call, void *ctx) {
    vr_shard *s = ctx;
    UNPACK(Vrwkv__Internal__EvictRequest, vrwkv__internal__evict_request, call, req);
    if (!req->keep_states) {
        pthread_mutex_lock(&s->compute_mu);
        for (int i = 0; i < s->slots.capacity; i++) {
            vr_slot *slot = &s->slots.slots[i];
            if (slot->in_use && !strcmp(slot->tenant, req->tenant) &&
                (!*req->session || !strcmp(slot->session, req->session)))
                vr_slot_release(&s->slots, slot);
        }
        vr_gauge_set(s->m_slots, NULL, vr_slot_count(&s->slots));
        pthread_mutex_unlock(&s->compute_mu);
    }
    float *features = NULL;
    vr_error ignored = {0};
    if (s->inbox && req->features_key && vr_feature_inbox_take(s->inbox, req->features_key, &features, &ignored) == VR_OK)
        free(features); /* the turn ended before its prefill took them */
    vrwkv__internal__evict_request__free_unpacked(req, NULL);
    Vrwkv__Internal__EvictResponse resp = VRWKV__INTERNAL__EVICT_RESPONSE__INIT;
    finish_packed(call, &resp.base);
}

/* ------------------------------------------------------------------ lifecycle */

static int live_sessions(void *ctx) {
    vr_shard *s = ctx;
    pthread_mutex_lock(&s->compute_mu);
    int n = vr_slot_count(&s->slots);
    pthread_mutex_unlock(&s->compute_mu);
    return n;
}

static vr_status setup_metrics(vr_shard *s, vr_error *err) {
    vr_status st = vr_metrics_create(&s->metrics, err);
    if (st == VR_OK) st = vr_metrics_counter(s->metrics, "vrwkv_shard_steps_total", "Steps run", NULL, 0, &s->m_steps, err);
    if (st == VR_OK)
        st = vr_metrics_counter(s->metrics, "vrwkv_shard_rows_total", "Activation rows computed", NULL, 0, &s->m_rows, err);
    if (st == VR_OK)
        st = vr_metrics_counter(s->metrics, "vrwkv_shard_restores_total", "States restored from the store", NULL, 0,
                                &s->m_restores, err);
    if (st == VR_OK)
        st = vr_metrics_gauge(s->metrics, "vrwkv_shard_live_sessions", "Live state slots", NULL, 0, &s->m_slots, err);
    if (st == VR_OK)
        st = vr_metrics_counter(s->metrics, "vrwkv_shard_handoff_states_total",
                                "Session states handed over by a replaced shard, by result (taken, refused)",
                                (const char *[]){"result"}, 1, &s->m_handoff, err);
    if (st == VR_OK)
        st = vr_metrics_gauge(s->metrics, "vrwkv_shard_features_held_bytes",
                              "Delivered image features waiting in stage 0's inbox", NULL, 0, &s->m_features_bytes, err);
    if (st == VR_OK)
        st = vr_metrics_histogram(s->metrics, "vrwkv_shard_step_seconds", "Time per step", NULL, 0, NULL, 0,
                                  &s->m_step_seconds, err);
    if (st == VR_OK && s->opt.metrics_port >= 0)
        st = vr_metrics_http_start(s->metrics, s->opt.host, s->opt.metrics_port, NULL, &s->metrics_http, err);
    return st;
}

vr_status vr_shard_start(const vr_shard_options *o, vr_shard **out, vr_error *err) {
    *out = NULL;
    vr_shard *s = calloc(1, sizeof *s);
    if (!s) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    s->opt = *o;
    if (!s->opt.host) s->opt.host = "127.0.0.1";
    if (s->opt.max_sessions <= 0) s->opt.max_sessions = 256;
    pthread_mutex_init(&s->compute_mu, NULL);
    pthread_mutex_init(&s->checkpoint_mu, NULL);
    pthread_mutex_init(&s->link_mu, NULL);
    pthread_cond_init(&s->link_cv, NULL);
    vr_status st = VR_OK;
    /* the config first (cheap), to know the layer range */
    vr_checkpoint *ck = NULL;
    vr_model_config cfg;
    st = vr_checkpoint_open(o->model_path, &ck, err);
    if (st == VR_OK) st = vr_config_load(ck, o->config_path, &cfg, err);
    vr_checkpoint_free(ck);
    if (st == VR_OK) {
        s->first = o->layer_first;
        s->last = o->layer_last > 0 ? o->layer_last : cfg.n_layer;
        if (s->first < 0 || s->last > cfg.n_layer || s->first >= s->last)
            st = vr_error_set(err, VR_ERR_INVALID, "--layers %d:%d is outside the model's %d layers", s->first, s->last,
                              cfg.n_layer);
        s->is_first = s->first == 0;
        s->is_last = s->last == cfg.n_layer;
    }
    if (st == VR_OK && o->nccl) {
        if (!o->backend || strcmp(o->backend, "cuda"))
            st = vr_error_set(err, VR_ERR_INVALID, "--transport nccl needs --backend cuda (one process per GPU)");
        else if (vr_nccl_available(err) != VR_OK)
            st = vr_error_wrap(err, "--transport nccl");
    }
    vr_weights_select sel = {s->first, s->last, s->is_first, s->is_last, 0};
    vr_engine_options eo = {o->model_path, o->config_path, NULL, o->threads, &sel, o->backend};
    if (st == VR_OK) st = vr_engine_open(&eo, &s->e, err);
    if (st == VR_OK) st = vr_slot_table_init(&s->slots, s->e->be, &s->e->cfg, s->first, s->last, s->opt.max_sessions, err);
    if (st == VR_OK) st = vr_store_open(o->store_url ? o->store_url : "memory", o->ttl_seconds, &s->store, err);
    if (st == VR_OK) st = setup_metrics(s, err);
    if (st == VR_OK && s->is_first && s->e->cfg.has_vision) {
        size_t image_bytes = (size_t)s->e->cfg.num_image_tokens * s->e->cfg.n_embd * sizeof(float);
        vr_feature_inbox_options io = {s->e->cfg.num_image_tokens, s->e->cfg.n_embd,
                                       image_bytes * 16 > INBOX_MIN_BYTES ? image_bytes * 16 : INBOX_MIN_BYTES,
                                       VR_FEATURES_TTL_MS, INBOX_MAX_PEERS};
        st = vr_feature_inbox_create(&io, &s->inbox, err);
        if (st == VR_OK && o->nccl) vr_feature_inbox_use_nccl(s->inbox, 0);
    }
    if (st == VR_OK)
        st = vr_frame_server_create(VR_STATE_TAG, VR_STATE_ACK_TAG, HANDOFF_MAX_PEERS, handoff_frame_limit(s), take_state,
                                    s, &s->state_server, err);
    if (st == VR_OK && o->nccl) vr_frame_server_use_nccl(s->state_server, 0); /* states from a shard on another GPU */
    int tport = 0, gport = 0;
    if (st == VR_OK) st = vr_transport_tcp_listen(s->opt.host, o->transport_port, &tport, &s->listener, err);
    if (st == VR_OK && pthread_create(&s->accept_thread, NULL, accept_loop, s) != 0) {
        vr_transport_listener_close(s->listener);
        s->listener = NULL;
        st = vr_error_set(err, VR_ERR_INTERNAL, "cannot start the transport thread");
    }
    char bind[300];
    snprintf(bind, sizeof bind, "%s:%d", s->opt.host, o->port);
    if (st == VR_OK) st = vr_rpc_server_create(bind, &s->srv, err);
    if (st == VR_OK) st = vr_rpc_server_add_method(s->srv, "/vrwkv.internal.Shard/Assign", VR_RPC_UNARY, handle_assign, s, err);
    if (st == VR_OK) st = vr_rpc_server_add_method(s->srv, "/vrwkv.internal.Shard/Prepare", VR_RPC_UNARY, handle_prepare, s, err);
    if (st == VR_OK) st = vr_rpc_server_add_method(s->srv, "/vrwkv.internal.Shard/Step", VR_RPC_UNARY, handle_step, s, err);
    if (st == VR_OK)
        st = vr_rpc_server_add_method(s->srv, "/vrwkv.internal.Shard/Checkpoint", VR_RPC_UNARY, handle_checkpoint, s, err);
    if (st == VR_OK) st = vr_rpc_server_add_method(s->srv, "/vrwkv.internal.Shard/Evict", VR_RPC_UNARY, handle_evict, s, err);
    if (st == VR_OK)
        st = vr_rpc_server_add_method(s->srv, "/vrwkv.internal.Shard/Handoff", VR_RPC_UNARY, handle_handoff, s, err);
    if (st == VR_OK) st = vr_rpc_health_create(&s->health, err);
    if (st == VR_OK) st = vr_rpc_health_add_to(s->health, s->srv, err);
    if (st == VR_OK) st = vr_rpc_server_start(s->srv, &gport, err);
    if (st == VR_OK) {
        snprintf(s->address, sizeof s->address, "%s:%d", s->opt.host, gport);
        snprintf(s->transport_address, sizeof s->transport_address, "%s:%d", s->opt.host, tport);
        if (o->coordinator) {
            vr_membership_info mi = {o->coordinator, s->address, s->transport_address,
                                     VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_SHARD, s->first, s->last,
                                     s->e->w->fingerprint, s->opt.max_sessions, live_sessions, s, s->opt.nccl};
            st = vr_membership_start(&mi, &s->membership, err);
        }
    }
    if (st != VR_OK) {
        vr_shard_stop(s);
        return st;
    }
    vr_log(VR_LOG_INFO, "shard_started", "address=%s transport=%s layers=%d:%d", s->address, s->transport_address,
           s->first, s->last);
    *out = s;
    return VR_OK;
}

void vr_shard_stop(vr_shard *s) {
    if (!s) return;
    vr_membership_stop(s->membership);
    vr_rpc_server_shutdown_and_free(s->srv, 500);
    vr_rpc_health_free(s->health);
    pthread_mutex_lock(&s->link_mu);
    s->stop = 1;
    pthread_mutex_unlock(&s->link_mu);
    for (int i = 0; i < s->n_joins; i++) pthread_join(s->joins[i], NULL); /* they see stop and discard */
    s->n_joins = 0;
    if (s->listener) {
        pthread_join(s->accept_thread, NULL);
        vr_transport_listener_close(s->listener);
    }
    if (s->prev) vr_transport_close(s->prev);
    if (s->next) vr_transport_close(s->next);
    close_retired(s); /* every thread that used them is gone */
    free(s->retired);
    vr_feature_inbox_free(s->inbox); /* after the accept thread: nothing adds peers now */
    vr_frame_server_free(s->state_server); /* before the slots: its handler fills them */
    vr_metrics_http_stop(s->metrics_http);
    vr_metrics_free(s->metrics);
    vr_store_close(s->store);
    vr_slot_table_free(&s->slots);
    vr_state_snapshot_release(&s->snapshot); /* before the engine: its backend frees the memory */
    if (s->e) {
        vr_engine_buffer_free(s->e, &s->d_x, &s->d_x_cap);
        vr_engine_buffer_free(s->e, &s->d_feat, &s->d_feat_cap);
        vr_engine_buffer_free(s->e, &s->d_rows, &s->d_rows_cap);
        vr_engine_buffer_free(s->e, &s->d_logits, &s->d_logits_cap);
    }
    vr_engine_free(s->e);
    pthread_mutex_destroy(&s->compute_mu);
    pthread_mutex_destroy(&s->checkpoint_mu);
    pthread_mutex_destroy(&s->link_mu);
    pthread_cond_destroy(&s->link_cv);
    free(s);
}

const char *vr_shard_address(const vr_shard *s) { return s->address; }
const char *vr_shard_transport_address(const vr_shard *s) { return s->transport_address; }
