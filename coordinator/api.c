/* coordinator/api.c — the public vrwkv.v1.Vrwkv handlers (Generate, GetSession, DeleteSession,
 * ListModels) and the internal Coordinator service (RegisterWorker, Heartbeat). A Generate
 * handler authenticates, loads the session, builds and checks the prompt, has the image
 * encoded, hands the turn to the scheduler and streams its events back. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "coordinator/internal.h"
#include "model/prompt.h"
#include "proto/control.pb-c.h"
#include "proto/vrwkv.pb-c.h"

enum { MAX_IMAGE_BYTES = 32 << 20 };

/* ------------------------------------------------------------------ helpers */

static int finish_msg(vr_rpc_call *call, const ProtobufCMessage *msg) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len + 1);
    if (!buf) return vr_rpc_call_finish(call, VR_RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0, NULL);
    protobuf_c_message_pack(msg, buf);
    vr_status st = vr_rpc_call_finish(call, VR_RPC_STATUS_OK, NULL, buf, len, NULL);
    free(buf);
    return st;
}

static vr_status send_msg(vr_rpc_call *call, const ProtobufCMessage *msg) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len + 1);
    if (!buf) return VR_ERR_NOMEM;
    protobuf_c_message_pack(msg, buf);
    vr_status st = vr_rpc_call_send(call, buf, len, NULL);
    free(buf);
    return st;
}

static const vr_tenant *authenticate(vr_coordinator *c, vr_rpc_call *call) {
    const vr_tenant *t = vr_tenants_authenticate(&c->tenants, vr_rpc_call_metadata(call, "authorization", NULL));
    if (!t) {
        vr_rpc_call_finish(call, VR_RPC_STATUS_UNAUTHENTICATED,
                           "missing or unknown API key: send metadata 'authorization: Bearer <api key>'", NULL, 0, NULL);
        vr_counter_inc(c->m_requests, (const char *[]){"UNAUTHENTICATED"});
    }
    return t;
}

static void new_session_id(char *out, size_t cap) {
    uint8_t b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, b, sizeof b) : -1;
    if (fd >= 0) close(fd);
    if (got != (ssize_t)sizeof b) { /* fall back to time and address entropy */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)out;
        for (int i = 0; i < 16; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b[i] = (uint8_t)x;
        }
    }
    size_t n = 0;
    for (int i = 0; i < 16 && n + 2 < cap; i++) n += (size_t)snprintf(out + n, cap - n, "%02x", b[i]);
}

int vr_session_claim(vr_coordinator *c, const char *tenant, const char *session) {
    char key[260];
    snprintf(key, sizeof key, "%s/%s", tenant, session);
    pthread_mutex_lock(&c->q_mu);
    for (int i = 0; i < c->n_busy; i++)
        if (!strcmp(c->busy[i], key)) {
            pthread_mutex_unlock(&c->q_mu);
            return 0;
        }
    if (c->n_busy == c->cap_busy) {
        int cap = c->cap_busy ? c->cap_busy * 2 : 64;
        char(*nb)[260] = realloc(c->busy, (size_t)cap * sizeof *nb);
        if (!nb) {
            pthread_mutex_unlock(&c->q_mu);
            return 0;
        }
        c->busy = nb;
        c->cap_busy = cap;
    }
    memcpy(c->busy[c->n_busy++], key, sizeof key);
    pthread_mutex_unlock(&c->q_mu);
    return 1;
}

void vr_session_unclaim(vr_coordinator *c, const char *tenant, const char *session) {
    char key[260];
    snprintf(key, sizeof key, "%s/%s", tenant, session);
    pthread_mutex_lock(&c->q_mu);
    for (int i = 0; i < c->n_busy; i++)
        if (!strcmp(c->busy[i], key)) {
            memcpy(c->busy[i], c->busy[--c->n_busy], sizeof key);
            break;
        }
    pthread_mutex_unlock(&c->q_mu);
}

/* ------------------------------------------------------------------ Generate */

static int reject(vr_coordinator *c, vr_rpc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int reject(vr_coordinator *c, vr_rpc_call *call, int code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vr_counter_inc(c->m_requests, (const char *[]){vr_rpc_status_name(code)});
    vr_rpc_call_finish(call, code, msg, NULL, 0, NULL);
    return 0;
}

/* The call's request as a message of type d, or NULL when malformed: the call is then answered
 * INVALID_ARGUMENT (counted with the public requests when counted). Free the message with its
 * type's free_unpacked. */
static ProtobufCMessage *unpack_request(vr_coordinator *c, vr_rpc_call *call, const ProtobufCMessageDescriptor *d,
                                        int counted) {
    const uint8_t *data;
    size_t len;
    vr_rpc_call_request(call, &data, &len);
    ProtobufCMessage *q = protobuf_c_message_unpack(d, NULL, len, data);
    if (q) return q;
    char msg[160];
    snprintf(msg, sizeof msg, "malformed %s", d->short_name);
    if (counted) reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT, "%s", msg);
    else vr_rpc_call_finish(call, VR_RPC_STATUS_INVALID_ARGUMENT, msg, NULL, 0, NULL);
    return NULL;
}

/* Fills r from the request; on refusal answers the call and returns 0. */
static int admit(vr_coordinator *c, vr_rpc_call *call, const vr_tenant *t, Vrwkv__V1__GenerateRequest *q, vr_request *r) {
    vr_error err = {0};
    snprintf(r->tenant, sizeof r->tenant, "%s", t->name);
    int have_session = q->session_id && *q->session_id;
    if (have_session && q->new_session)
        return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT, "give either session_id or new_session, not both");
    if (have_session) {
        if (vr_store_check_id(q->session_id, "session_id", &err) != VR_OK)
            return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT, "%s", err.msg);
        snprintf(r->session, sizeof r->session, "%s", q->session_id);
        r->persistent = 1;
    } else {
        char id[40];
        new_session_id(id, sizeof id);
        r->persistent = q->new_session;
        snprintf(r->session, sizeof r->session, "%s%s", r->persistent ? "" : "oneshot-", id);
    }
    if (have_session) {
        uint8_t *bytes = NULL;
        size_t n = 0;
        vr_status st = vr_store_get_session(c->store, r->tenant, r->session, &bytes, &n, &err);
        if (st == VR_ERR_NOT_FOUND)
            return reject(c, call, VR_RPC_STATUS_NOT_FOUND, "session %s not found", q->session_id);
        if (st == VR_OK) st = vr_session_record_decode(bytes, n, &r->record, &err);
        free(bytes);
        if (st != VR_OK)
            return reject(c, call, st == VR_ERR_FORMAT ? VR_RPC_STATUS_DATA_LOSS : vr_rpc_code_from_status(st),
                          "session %s: %s", q->session_id, err.msg);
        if (r->record.fingerprint != c->fingerprint)
            return reject(c, call, VR_RPC_STATUS_FAILED_PRECONDITION,
                          "session %s was made with other model weights than this server's", q->session_id);
        r->scan = r->record.scan;
    } else {
        snprintf(r->record.tenant, sizeof r->record.tenant, "%s", r->tenant);
        snprintf(r->record.session, sizeof r->record.session, "%s", r->session);
        r->record.fingerprint = c->fingerprint;
        r->record.created_ms = r->record.updated_ms = (int64_t)time(NULL) * 1000;
        r->scan = q->scan == VRWKV__V1__SCAN_MODE__SCAN_UNI ? 0 : q->scan == VRWKV__V1__SCAN_MODE__SCAN_MULTI ? 2 : 1;
        r->record.scan = r->scan;
        r->fresh = 1;
    }
    int first_turn = r->record.committed_turn == 0;
    int raw = q->raw_human_message && *q->raw_human_message; /* vrwkv eval: upstream's message */
    if ((raw || q->zero_image) && (have_session || q->new_session))
        return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT,
                      "raw_human_message and zero_image are for one-shot requests (no session)");
    if (q->zero_image && q->image.len)
        return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT, "give either image or zero_image, not both");
    int with_image = q->image.len > 0 || q->zero_image;
    if (with_image && !first_turn)
        return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT,
                      "an image can only be sent with the first turn of a session");
    if (with_image && !c->cfg.has_vision)
        return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT, "this model has no vision tower");
    if (q->image.len > MAX_IMAGE_BYTES)
        return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT, "image of %zu bytes is over the %d-byte limit",
                      q->image.len, MAX_IMAGE_BYTES);
    if (!q->text) return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT, "text is missing");
    vr_image_position pos = q->image_position == VRWKV__V1__IMAGE_POSITION__IMAGE_POSITION_FIRST ? VR_IMAGE_FIRST
                            : q->image_position == VRWKV__V1__IMAGE_POSITION__IMAGE_POSITION_LAST ? VR_IMAGE_LAST
                                                                                                 : VR_IMAGE_MIDDLE;
    vr_status st;
    if (raw) {
        vr_prompt_built built;
        st = vr_prompt_build(c->tok, q->raw_human_message, pos, &built, &err);
        if (st == VR_OK) {
            r->prompt = built.ids;
            r->n_prompt = built.n_ids;
            built.ids = NULL;
            int marker = 0; /* the image is used only where the message holds <image> */
            for (int i = 0; i < r->n_prompt; i++) marker |= r->prompt[i] == VR_IMAGE_TOKEN_ID;
            if (marker && !with_image)
                st = vr_error_set(&err, VR_ERR_INVALID, "the message holds <image>: send image or zero_image");
            with_image = marker;
            vr_prompt_built_free(&built);
        }
    } else {
        st = first_turn ? vr_prompt_first_turn(c->tok, q->text, with_image, pos, &r->prompt, &r->n_prompt, &err)
                        : vr_prompt_next_turn(c->tok, q->text, &r->prompt, &r->n_prompt, &err);
    }
    if (st != VR_OK) return reject(c, call, vr_rpc_code_from_status(st), "%s", err.msg);
    r->n_turn_prompt = r->n_prompt;
    int limit = c->opt.max_prompt_tokens > 0 ? c->opt.max_prompt_tokens : t->max_prompt_tokens;
    int rows = r->n_prompt + (with_image ? c->cfg.num_image_tokens - 1 : 0);
    if (rows > limit)
        return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT,
                      "the prompt has %d tokens (image included), over the limit of %d", rows, limit);
    r->max_tokens = q->max_tokens > 0 ? q->max_tokens : c->opt.default_max_tokens;
    if (r->max_tokens > t->max_tokens) r->max_tokens = t->max_tokens;
    if (q->n_stop_tokens > 16) return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT, "at most 16 stop tokens");
    for (size_t i = 0; i < q->n_stop_tokens; i++) {
        if (q->stop_tokens[i] < 0 || q->stop_tokens[i] >= c->cfg.vocab_size)
            return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT, "stop token %d is outside the vocabulary",
                          q->stop_tokens[i]);
        r->stop[r->n_stop++] = q->stop_tokens[i];
    }
    vr_sampling_params_default(&r->sampling);
    if (q->sampling) {
        r->sampling.temperature = q->sampling->temperature;
        r->sampling.top_p = q->sampling->top_p > 0 ? q->sampling->top_p : 1.0f;
        r->sampling.top_k = q->sampling->top_k;
        r->sampling.presence_penalty = q->sampling->presence_penalty;
        r->sampling.frequency_penalty = q->sampling->frequency_penalty;
        r->sampling.seed = q->sampling->seed;
    }
    if (vr_sampling_params_check(&r->sampling, &err) != VR_OK)
        return reject(c, call, VR_RPC_STATUS_INVALID_ARGUMENT, "%s", err.msg);
    r->gen = malloc(sizeof(int32_t) * (size_t)(r->max_tokens + 1));
    if (!r->gen) return reject(c, call, VR_RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (with_image) {
        /* zero_image: no bytes, the vision worker encodes an all-zero pixel tensor */
        st = vr_cluster_encode_image(c, q->image.len ? q->image.data : NULL, q->image.len, !c->opt.inline_features,
                                     &r->features, &err);
        if (st != VR_OK) return reject(c, call, vr_rpc_code_from_status(st), "image: %s", err.msg);
        if (!q->image.len) return 1; /* nothing to keep: one-shot, never rebuilt from the record */
        r->record.image = malloc(q->image.len);
        if (!r->record.image) return reject(c, call, VR_RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        memcpy(r->record.image, q->image.data, q->image.len);
        r->record.image_len = q->image.len;
    }
    return 1;
}

static vr_request *request_create(void) {
    vr_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->refs = 1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    return r;
}

static void handle_generate(vr_rpc_call *call, void *ctx) {
    vr_coordinator *c = ctx;
    const vr_tenant *t = authenticate(c, call);
    if (!t) return;
    Vrwkv__V1__GenerateRequest *q =
        (Vrwkv__V1__GenerateRequest *)unpack_request(c, call, &vrwkv__v1__generate_request__descriptor, 1);
    if (!q) return;
    vr_request *r = request_create();
    if (!r) {
        vrwkv__v1__generate_request__free_unpacked(q, NULL);
        reject(c, call, VR_RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    r->t_start_ms = vr_now_ms();
    int ok = admit(c, call, t, q, r);
    vrwkv__v1__generate_request__free_unpacked(q, NULL);
    if (ok && !vr_session_claim(c, r->tenant, r->session)) {
        reject(c, call, VR_RPC_STATUS_FAILED_PRECONDITION, "session %s already has a turn in progress", r->session);
        ok = 0;
    }
    if (!ok) {
        vr_request_release(r);
        return;
    }
    r->t_enqueue_ms = vr_now_ms();
    vr_scheduler_submit(c, r);
    vr_log(VR_LOG_DEBUG, "turn_queued", "tenant=%s session=%s prompt_tokens=%d", r->tenant, r->session, r->n_prompt);
    /* stream the scheduler's events */
    int done = 0;
    while (!done) {
        pthread_mutex_lock(&r->mu);
        while (!r->head) {
            if (vr_rpc_call_is_cancelled(call)) {
                r->cancelled = 1;
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
        vr_event *e = r->head;
        if (e) {
            r->head = e->next;
            if (!r->head) r->tail = NULL;
        }
        int cancelled = r->cancelled;
        pthread_mutex_unlock(&r->mu);
        if (!e) {
            if (cancelled) {
                /* the scheduler drops the turn at its next step; the call ends here */
                vr_rpc_call_finish(call, VR_RPC_STATUS_CANCELLED, "cancelled", NULL, 0, NULL);
                break;
            }
            continue;
        }
        if (e->kind == EV_TOKEN) {
            Vrwkv__V1__GenerateResponse m = VRWKV__V1__GENERATE_RESPONSE__INIT;
            Vrwkv__V1__TokenDelta d = VRWKV__V1__TOKEN_DELTA__INIT;
            size_t blen = 0;
            const char *bytes = vr_tokenizer_token_bytes(c->tok, e->token, &blen);
            d.token = e->token;
            d.logit = e->logit;
            d.logprob = e->logprob;
            d.text.data = (uint8_t *)(bytes ? bytes : "");
            d.text.len = bytes ? blen : 0;
            m.event_case = VRWKV__V1__GENERATE_RESPONSE__EVENT_TOKEN;
            m.token = &d;
            if (send_msg(call, &m.base) != VR_OK) {
                pthread_mutex_lock(&r->mu);
                r->cancelled = 1;
                pthread_mutex_unlock(&r->mu);
                vr_rpc_call_finish(call, VR_RPC_STATUS_CANCELLED, "cancelled", NULL, 0, NULL);
                done = 1;
            }
        } else if (e->kind == EV_ERROR) {
            vr_rpc_call_finish(call, e->rpc_code, e->message, NULL, 0, NULL);
            done = 1;
        } else {
            Vrwkv__V1__GenerateResponse m = VRWKV__V1__GENERATE_RESPONSE__INIT;
            Vrwkv__V1__Final f = VRWKV__V1__FINAL__INIT;
            Vrwkv__V1__Usage u = VRWKV__V1__USAGE__INIT;
            Vrwkv__V1__Timings tm = VRWKV__V1__TIMINGS__INIT;
            int64_t now = vr_now_ms();
            f.finish_reason = r->stopped ? "stop" : "length";
            u.prompt_tokens = r->n_turn_prompt;
            u.image_tokens = r->features.n_img;
            u.generated_tokens = r->n_gen;
            tm.queue_ms = (double)(r->t_admit_ms - r->t_enqueue_ms);
            tm.time_to_first_token_ms = r->t_first_token_ms ? (double)(r->t_first_token_ms - r->t_start_ms) : 0;
            tm.total_ms = (double)(now - r->t_start_ms);
            f.usage = &u;
            f.timings = &tm;
            f.session_id = r->persistent ? r->session : "";
            /* the prompt as the user's turn built it (a rebuild prepends the transcript) */
            f.prompt_tokens = r->prompt + (r->n_prompt - r->n_turn_prompt);
            f.n_prompt_tokens = (size_t)r->n_turn_prompt;
            f.committed_turn = (uint64_t)r->record.committed_turn;
            if (r->stopped) {
                f.stop_token = r->end_ids[0];
                f.stop_logit = r->stop_logit;
                f.stop_logprob = r->stop_logprob;
            }
            m.event_case = VRWKV__V1__GENERATE_RESPONSE__EVENT_FINAL;
            m.final = &f;
            if (send_msg(call, &m.base) == VR_OK) vr_rpc_call_finish(call, VR_RPC_STATUS_OK, NULL, NULL, 0, NULL);
            done = 1;
        }
        free(e);
    }
    vr_request_release(r);
}

/* ------------------------------------------------------------------ sessions, models */

static void handle_get_session(vr_rpc_call *call, void *ctx) {
    vr_coordinator *c = ctx;
    const vr_tenant *t = authenticate(c, call);
    if (!t) return;
    Vrwkv__V1__GetSessionRequest *q =
        (Vrwkv__V1__GetSessionRequest *)unpack_request(c, call, &vrwkv__v1__get_session_request__descriptor, 1);
    if (!q) return;
    vr_error err = {0};
    uint8_t *bytes = NULL;
    size_t n = 0;
    vr_session_record rec;
    memset(&rec, 0, sizeof rec);
    vr_status st = vr_store_check_id(q->session_id, "session_id", &err);
    if (st == VR_OK) st = vr_store_get_session(c->store, t->name, q->session_id, &bytes, &n, &err);
    if (st == VR_OK) st = vr_session_record_decode(bytes, n, &rec, &err);
    free(bytes);
    if (st == VR_ERR_NOT_FOUND) reject(c, call, VR_RPC_STATUS_NOT_FOUND, "session %s not found", q->session_id);
    else if (st != VR_OK) reject(c, call, vr_rpc_code_from_status(st), "%s", err.msg);
    else {
        Vrwkv__V1__Session s = VRWKV__V1__SESSION__INIT;
        s.session_id = q->session_id;
        s.committed_turn = (uint64_t)rec.committed_turn;
        s.token_count = rec.n_transcript;
        s.created_unix_ms = rec.created_ms;
        s.updated_unix_ms = rec.updated_ms;
        s.has_image = rec.image_len > 0;
        s.model = "default";
        finish_msg(call, &s.base);
    }
    vr_session_record_free(&rec);
    vrwkv__v1__get_session_request__free_unpacked(q, NULL);
}

static void handle_delete_session(vr_rpc_call *call, void *ctx) {
    vr_coordinator *c = ctx;
    const vr_tenant *t = authenticate(c, call);
    if (!t) return;
    Vrwkv__V1__DeleteSessionRequest *q =
        (Vrwkv__V1__DeleteSessionRequest *)unpack_request(c, call, &vrwkv__v1__delete_session_request__descriptor, 1);
    if (!q) return;
    vr_error err = {0};
    uint8_t *bytes = NULL;
    size_t n = 0;
    vr_status st = vr_store_check_id(q->session_id, "session_id", &err);
    int existed = 0;
    if (st == VR_OK) {
        vr_status g = vr_store_get_session(c->store, t->name, q->session_id, &bytes, &n, &err);
        free(bytes);
        existed = g == VR_OK;
        if (g != VR_OK && g != VR_ERR_NOT_FOUND) st = g;
    }
    if (st == VR_OK && !vr_session_claim(c, t->name, q->session_id)) {
        reject(c, call, VR_RPC_STATUS_FAILED_PRECONDITION, "session %s has a turn in progress", q->session_id);
        vrwkv__v1__delete_session_request__free_unpacked(q, NULL);
        return;
    }
    if (st == VR_OK) {
        st = vr_store_delete_session(c->store, t->name, q->session_id, &err);
        vr_cluster_evict(c, t->name, q->session_id, 0, 0);
        vr_session_unclaim(c, t->name, q->session_id);
    }
    if (st != VR_OK) reject(c, call, vr_rpc_code_from_status(st), "%s", err.msg);
    else {
        Vrwkv__V1__DeleteSessionResponse resp = VRWKV__V1__DELETE_SESSION_RESPONSE__INIT;
        resp.deleted = existed;
        finish_msg(call, &resp.base);
    }
    vrwkv__v1__delete_session_request__free_unpacked(q, NULL);
}

static void handle_list_models(vr_rpc_call *call, void *ctx) {
    vr_coordinator *c = ctx;
    if (!authenticate(c, call)) return;
    Vrwkv__V1__ListModelsResponse resp = VRWKV__V1__LIST_MODELS_RESPONSE__INIT;
    Vrwkv__V1__Model m = VRWKV__V1__MODEL__INIT;
    Vrwkv__V1__Model *mp = &m;
    m.name = "default";
    m.n_layer = c->cfg.n_layer;
    m.n_embd = c->cfg.n_embd;
    m.vocab_size = c->cfg.vocab_size;
    m.has_vision = c->cfg.has_vision;
    resp.n_models = 1;
    resp.models = &mp;
    finish_msg(call, &resp.base);
}

/* ------------------------------------------------------------------ internal service */

static void handle_register(vr_rpc_call *call, void *ctx) {
    vr_coordinator *c = ctx;
    Vrwkv__Internal__RegisterRequest *q =
        (Vrwkv__Internal__RegisterRequest *)unpack_request(c, call, &vrwkv__internal__register_request__descriptor, 0);
    if (!q) return;
    vr_error err = {0};
    vr_status st = vr_cluster_register(c, q->worker_id, q->address, q->transport_address, q->role, q->layer_first,
                                       q->layer_last, q->model_fingerprint, q->nccl, &err);
    vrwkv__internal__register_request__free_unpacked(q, NULL);
    if (st != VR_OK) {
        vr_log(VR_LOG_WARN, "register_refused", "error=%s", err.msg);
        vr_rpc_call_finish_error(call, &err);
        return;
    }
    Vrwkv__Internal__RegisterResponse resp = VRWKV__INTERNAL__REGISTER_RESPONSE__INIT;
    resp.epoch = c->epoch;
    resp.heartbeat_interval_ms = 500;
    finish_msg(call, &resp.base);
}

static void handle_heartbeat(vr_rpc_call *call, void *ctx) {
    vr_coordinator *c = ctx;
    Vrwkv__Internal__HeartbeatRequest *q = (Vrwkv__Internal__HeartbeatRequest *)unpack_request(
        c, call, &vrwkv__internal__heartbeat_request__descriptor, 0);
    if (!q) return;
    Vrwkv__Internal__HeartbeatResponse resp = VRWKV__INTERNAL__HEARTBEAT_RESPONSE__INIT;
    resp.known = vr_cluster_heartbeat(c, q->worker_id);
    vrwkv__internal__heartbeat_request__free_unpacked(q, NULL);
    finish_msg(call, &resp.base);
}

vr_status vr_api_add_methods(vr_coordinator *c, vr_error *err) {
    struct {
        const char *path;
        vr_rpc_kind kind;
        vr_rpc_handler fn;
    } m[] = {
        {"/vrwkv.v1.Vrwkv/Generate", VR_RPC_SERVER_STREAMING, handle_generate},
        {"/vrwkv.v1.Vrwkv/GetSession", VR_RPC_UNARY, handle_get_session},
        {"/vrwkv.v1.Vrwkv/DeleteSession", VR_RPC_UNARY, handle_delete_session},
        {"/vrwkv.v1.Vrwkv/ListModels", VR_RPC_UNARY, handle_list_models},
        {"/vrwkv.internal.Coordinator/RegisterWorker", VR_RPC_UNARY, handle_register},
        {"/vrwkv.internal.Coordinator/Heartbeat", VR_RPC_UNARY, handle_heartbeat},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        vr_status st = vr_rpc_server_add_method(c->srv, m[i].path, m[i].kind, m[i].fn, c, err);
        if (st != VR_OK) return st;
    }
    return VR_OK;
}
