/* coordinator/cluster.c — cluster membership (register, heartbeat, expiry), forming and
 * assigning the shard pipeline, fan-out of commands to every stage, and routing images to a
 * vision worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "coordinator/internal.h"
#include "worker/feature_delivery.h"
#include "worker/transport.h"
#include "proto/control.pb-c.h"

int64_t vr_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* With cluster_mu held: a replaced entry's channel, which a call begun before (a step, an
 * encode, a handoff) may still be using, is freed later. */
static void retire_channel_locked(vr_coordinator *c, vr_rpc_channel *ch) {
    if (!ch) return;
    if (c->n_old_ch == c->cap_old_ch) {
        int cap = c->cap_old_ch ? 2 * c->cap_old_ch : 8;
        struct vr_old_channel *o = realloc(c->old_ch, (size_t)cap * sizeof *o);
        if (!o) { /* freeing it now could pull it from under a call: keep it */
            vr_log(VR_LOG_ERROR, "channel_leaked", "error=out of memory");
            return;
        }
        c->old_ch = o;
        c->cap_old_ch = cap;
    }
    c->old_ch[c->n_old_ch++] = (struct vr_old_channel){ch, vr_now_ms()};
}

void vr_cluster_free_old_channels(vr_coordinator *c, int all) {
    /* no call outlives its deadline; the longest is a handoff's */
    const int64_t grace = (int64_t)HANDOFF_DEADLINE_MS + 60000;
    int64_t now = vr_now_ms();
    pthread_mutex_lock(&c->cluster_mu);
    int k = 0;
    for (int i = 0; i < c->n_old_ch; i++) {
        if (all || now - c->old_ch[i].at_ms > grace) vr_rpc_channel_free(c->old_ch[i].ch);
        else c->old_ch[k++] = c->old_ch[i];
    }
    c->n_old_ch = k;
    if (all) {
        free(c->old_ch);
        c->old_ch = NULL;
        c->cap_old_ch = 0;
    }
    pthread_mutex_unlock(&c->cluster_mu);
}

vr_status vr_cluster_register(vr_coordinator *c, const char *id, const char *address, const char *transport_address,
                              int role, int first, int last, uint64_t fingerprint, int nccl, vr_error *err) {
    if (fingerprint != c->fingerprint)
        return vr_error_set(err, VR_ERR_INVALID, "worker %s serves other weights than the coordinator's model", address);
    if (role == VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_SHARD &&
        (first < 0 || last > c->cfg.n_layer || first >= last))
        return vr_error_set(err, VR_ERR_INVALID, "worker %s has layers %d:%d outside the model's %d", address, first,
                            last, c->cfg.n_layer);
    vr_rpc_channel *ch = NULL;
    vr_status st = vr_rpc_channel_create(address, &ch, err);
    if (st != VR_OK) return st;
    pthread_mutex_lock(&c->cluster_mu);
    /* the same process registering again (its heartbeat timed out on a busy machine): nothing
     * about it changed, so the pipeline it is part of stays as it is */
    for (int i = 0; i < VR_MAX_WORKERS; i++) {
        vr_worker_entry *w = &c->workers[i];
        if (w->in_use && !strcmp(w->id, id) && !strcmp(w->address, address) && w->role == role &&
            w->layer_first == first && w->layer_last == last && w->nccl == nccl &&
            !strcmp(w->transport_address, transport_address ? transport_address : "")) {
            w->alive = 1;
            w->last_seen_ms = vr_now_ms();
            pthread_mutex_unlock(&c->cluster_mu);
            vr_rpc_channel_free(ch);
            return VR_OK;
        }
    }
    int slot = -1;
    for (int i = 0; i < VR_MAX_WORKERS; i++) {
        vr_worker_entry *w = &c->workers[i];
        /* a worker that comes back on the same address replaces its old entry */
        if (w->in_use && (!strcmp(w->id, id) || !strcmp(w->address, address))) {
            retire_channel_locked(c, w->ch);
            memset(w, 0, sizeof *w);
            if (slot < 0) slot = i;
        }
        if (!w->in_use && slot < 0) slot = i;
    }
    if (slot < 0) {
        pthread_mutex_unlock(&c->cluster_mu);
        vr_rpc_channel_free(ch);
        return vr_error_set(err, VR_ERR_NOMEM, "too many workers (at most %d)", VR_MAX_WORKERS);
    }
    vr_worker_entry *w = &c->workers[slot];
    w->in_use = 1;
    w->alive = 1;
    snprintf(w->id, sizeof w->id, "%s", id);
    snprintf(w->address, sizeof w->address, "%s", address);
    snprintf(w->transport_address, sizeof w->transport_address, "%s", transport_address ? transport_address : "");
    w->role = role;
    w->layer_first = first;
    w->layer_last = last;
    w->fingerprint = fingerprint;
    w->nccl = nccl;
    w->last_seen_ms = vr_now_ms();
    w->registered_ms = w->last_seen_ms;
    w->ch = ch;
    if (role == VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_SHARD) c->pipeline_ok = 0; /* re-form with it */
    pthread_mutex_unlock(&c->cluster_mu);
    vr_log(VR_LOG_INFO, "worker_registered", "id=%s address=%s role=%d layers=%d:%d", id, address, role, first, last);
    return VR_OK;
}

int vr_cluster_heartbeat(vr_coordinator *c, const char *id) {
    int known = 0;
    pthread_mutex_lock(&c->cluster_mu);
    for (int i = 0; i < VR_MAX_WORKERS; i++)
        if (c->workers[i].in_use && !strcmp(c->workers[i].id, id)) {
            c->workers[i].last_seen_ms = vr_now_ms();
            c->workers[i].alive = 1;
            known = 1;
        }
    pthread_mutex_unlock(&c->cluster_mu);
    return known;
}

void vr_cluster_mark_failed(vr_coordinator *c, const char *why) {
    pthread_mutex_lock(&c->cluster_mu);
    if (c->pipeline_ok) vr_log(VR_LOG_WARN, "pipeline_failed", "reason=%s", why);
    c->pipeline_ok = 0;
    pthread_mutex_unlock(&c->cluster_mu);
}

/* Picks shards that chain from layer 0 to n_layer (newest registration first on overlaps).
 * Called with cluster_mu held. */
static int form_pipeline(vr_coordinator *c, int *stages) {
    int n = 0, at = 0;
    while (at < c->cfg.n_layer) {
        int best = -1;
        for (int i = 0; i < VR_MAX_WORKERS; i++) {
            vr_worker_entry *w = &c->workers[i];
            if (!w->in_use || !w->alive || w->role != VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_SHARD ||
                w->layer_first != at)
                continue;
            if (best < 0 || w->registered_ms > c->workers[best].registered_ms) best = i;
        }
        if (best < 0 || n >= VR_MAX_WORKERS) return 0;
        stages[n++] = best;
        at = c->workers[best].layer_last;
    }
    return n;
}

/* Assigns one stage. prev_nccl: the link from the previous stage is NCCL (the stage makes its
 * id and returns it in prev_id[VR_NCCL_UNIQUE_ID_BYTES]); next_id: the link to the next stage is
 * NCCL with that id (NULL: TCP to next). */
static vr_status assign_stage(vr_worker_entry *w, uint64_t epoch, int stage, int n_stages, const char *next,
                              int prev_nccl, const uint8_t *next_id, uint8_t *prev_id, vr_error *err) {
    Vrwkv__Internal__AssignRequest req = VRWKV__INTERNAL__ASSIGN_REQUEST__INIT;
    req.epoch = epoch;
    req.stage = stage;
    req.n_stages = n_stages;
    req.next_transport_address = (char *)(next && !next_id ? next : "");
    req.prev_nccl = prev_nccl;
    if (next_id) {
        req.next_nccl_id.data = (uint8_t *)next_id;
        req.next_nccl_id.len = VR_NCCL_UNIQUE_ID_BYTES;
    }
    uint8_t buf[1024];
    size_t len = vrwkv__internal__assign_request__get_packed_size(&req);
    if (len > sizeof buf) return vr_error_set(err, VR_ERR_INVALID, "address too long");
    vrwkv__internal__assign_request__pack(&req, buf);
    uint8_t *resp = NULL;
    size_t rl = 0;
    /* an NCCL link's receiver answers at once; the joins happen in the stages' own threads */
    vr_status st = vr_rpc_unary(w->ch, "/vrwkv.internal.Shard/Assign", NULL, 0, buf, len, 10000, &resp, &rl, NULL,
                                NULL, err);
    if (st == VR_OK && prev_nccl) {
        Vrwkv__Internal__AssignResponse *r = vrwkv__internal__assign_response__unpack(NULL, rl, resp);
        if (!r || r->prev_nccl_id.len != VR_NCCL_UNIQUE_ID_BYTES)
            st = vr_error_set(err, VR_ERR_FORMAT, "shard %s answered an NCCL assignment without a %d-byte id",
                              w->address, VR_NCCL_UNIQUE_ID_BYTES);
        else
            memcpy(prev_id, r->prev_nccl_id.data, VR_NCCL_UNIQUE_ID_BYTES);
        if (r) vrwkv__internal__assign_response__free_unpacked(r, NULL);
    }
    free(resp);
    return st;
}

/* ---- handing live states to a replacement ---- */

typedef struct handoff_job {
    char from[300], to_transport[300];
    int first, last;
} handoff_job;

static void *handoff_thread(void *p) {
    handoff_job *j = p;
    Vrwkv__Internal__HandoffRequest req = VRWKV__INTERNAL__HANDOFF_REQUEST__INIT;
    req.to_transport_address = j->to_transport;
    req.layer_first = j->first;
    req.layer_last = j->last;
    uint8_t buf[512];
    size_t len = vrwkv__internal__handoff_request__pack(&req, buf);
    vr_rpc_channel *ch = NULL;
    vr_error err = {0};
    uint8_t *resp = NULL;
    size_t rl = 0;
    vr_status st = vr_rpc_channel_create(j->from, &ch, &err);
    if (st == VR_OK)
        st = vr_rpc_unary(ch, "/vrwkv.internal.Shard/Handoff", NULL, 0, buf, len, HANDOFF_DEADLINE_MS, &resp, &rl,
                          NULL, NULL, &err);
    Vrwkv__Internal__HandoffResponse *r = st == VR_OK ? vrwkv__internal__handoff_response__unpack(NULL, rl, resp) : NULL;
    if (r)
        vr_log(VR_LOG_INFO, "states_handed_off", "from=%s to=%s layers=%d:%d sent=%d skipped=%d", j->from,
               j->to_transport, j->first, j->last, r->sent, r->skipped);
    else /* the replacement restores from the store instead: slower, still exact */
        vr_log(VR_LOG_WARN, "handoff_failed", "from=%s to=%s error=%s", j->from, j->to_transport,
               st == VR_OK ? "malformed answer" : err.msg);
    if (r) vrwkv__internal__handoff_response__free_unpacked(r, NULL);
    free(resp);
    vr_rpc_channel_free(ch);
    free(j);
    return NULL;
}

/* After a re-form: every shard that left the pipeline but is alive (a newer registration
 * replaced it: a rollout, a rebalance, a node being drained) hands its live states to the new
 * stage whose layers it covers. In the background: turns go on meanwhile, and a replacement
 * that restores a session from the store first simply refuses the handed copy. Called with
 * cluster_mu held. */
static void start_handoffs(vr_coordinator *c, const int *old, int n_old, const int *now, int n_now) {
    for (int a = 0; a < n_old; a++) {
        vr_worker_entry *from = &c->workers[old[a]];
        int still = 0;
        for (int b = 0; b < n_now; b++) still |= now[b] == old[a];
        if (still || !from->in_use || !from->alive || from->role != VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_SHARD)
            continue;
        for (int b = 0; b < n_now; b++) {
            vr_worker_entry *to = &c->workers[now[b]];
            int was = 0;
            for (int k = 0; k < n_old; k++) was |= old[k] == now[b];
            if (was || to->layer_first < from->layer_first || to->layer_last > from->layer_last ||
                !to->transport_address[0])
                continue;
            handoff_job *j = calloc(1, sizeof *j);
            if (!j) continue;
            snprintf(j->from, sizeof j->from, "%s", from->address);
            snprintf(j->to_transport, sizeof j->to_transport, "%s", to->transport_address);
            j->first = to->layer_first;
            j->last = to->layer_last;
            pthread_t t;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            if (pthread_create(&t, &attr, handoff_thread, j) != 0) free(j);
            pthread_attr_destroy(&attr);
            vr_log(VR_LOG_INFO, "handoff_started", "from=%s to=%s layers=%d:%d", from->address, to->address,
                   to->layer_first, to->layer_last);
        }
    }
}

static void update_health(vr_coordinator *c) {
    int vision_ok = !c->cfg.has_vision;
    for (int i = 0; i < VR_MAX_WORKERS; i++)
        if (c->workers[i].in_use && c->workers[i].alive &&
            c->workers[i].role == VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_VISION)
            vision_ok = 1;
    vr_rpc_health_set(c->health, "", c->pipeline_ok && vision_ok, NULL);
    int n = 0;
    for (int i = 0; i < VR_MAX_WORKERS; i++) n += c->workers[i].in_use && c->workers[i].alive;
    vr_gauge_set(c->m_workers, NULL, n);
}

static void *monitor_loop(void *p) {
    vr_coordinator *c = p;
    for (;;) {
        pthread_mutex_lock(&c->q_mu);
        int stop = c->stop;
        pthread_mutex_unlock(&c->q_mu);
        if (stop) break;
        pthread_mutex_lock(&c->cluster_mu);
        int64_t now = vr_now_ms();
        for (int i = 0; i < VR_MAX_WORKERS; i++) {
            vr_worker_entry *w = &c->workers[i];
            if (w->in_use && w->alive && now - w->last_seen_ms > HEARTBEAT_TIMEOUT_MS) {
                w->alive = 0;
                vr_log(VR_LOG_WARN, "worker_lost", "id=%s address=%s", w->id, w->address);
                if (w->role == VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_SHARD) {
                    for (int s = 0; s < c->n_stages; s++)
                        if (c->pipeline[s] == i) c->pipeline_ok = 0;
                }
            }
        }
        if (!c->pipeline_ok) {
            int stages[VR_MAX_WORKERS];
            int n = form_pipeline(c, stages);
            if (n > 0) {
                uint64_t epoch = ++c->epoch;
                vr_worker_entry snapshot[VR_MAX_WORKERS];
                for (int s = 0; s < n; s++) snapshot[s] = c->workers[stages[s]];
                pthread_mutex_unlock(&c->cluster_mu);
                /* assign from the last stage backwards, so a stage's successor is listening (TCP) or
                 * has made the id of the NCCL link to it, which its predecessor then joins */
                vr_status st = VR_OK;
                vr_error err = {0};
                uint8_t link_id[VR_NCCL_UNIQUE_ID_BYTES];
                int next_is_nccl = 0;
                for (int s = n - 1; s >= 0 && st == VR_OK; s--) {
                    int prev_nccl = s > 0 && snapshot[s].nccl && snapshot[s - 1].nccl;
                    uint8_t prev_id[VR_NCCL_UNIQUE_ID_BYTES];
                    st = assign_stage(&snapshot[s], epoch, s, n, s + 1 < n ? snapshot[s + 1].transport_address : NULL,
                                      prev_nccl, next_is_nccl ? link_id : NULL, prev_id, &err);
                    next_is_nccl = prev_nccl;
                    if (prev_nccl) memcpy(link_id, prev_id, sizeof link_id);
                }
                pthread_mutex_lock(&c->cluster_mu);
                if (st == VR_OK && c->epoch == epoch) {
                    start_handoffs(c, c->pipeline, c->n_stages, stages, n);
                    memcpy(c->pipeline, stages, sizeof(int) * (size_t)n);
                    c->n_stages = n;
                    c->pipeline_ok = 1;
                    vr_log(VR_LOG_INFO, "pipeline_assigned", "epoch=%llu stages=%d", (unsigned long long)epoch, n);
                } else if (st != VR_OK) {
                    vr_log(VR_LOG_WARN, "pipeline_assign_failed", "epoch=%llu error=%s", (unsigned long long)epoch,
                           err.msg);
                }
            }
        }
        update_health(c);
        pthread_mutex_unlock(&c->cluster_mu);
        vr_store_stats_t ss;
        vr_store_stats(c->store, &ss);
        vr_gauge_set(c->m_store_latency, NULL, ss.ops ? (double)ss.total_latency_ns / ss.ops / 1e9 : 0.0);
        vr_cluster_free_old_channels(c, 0);
        usleep(100 * 1000);
    }
    return NULL;
}

vr_status vr_cluster_start_monitor(vr_coordinator *c, vr_error *err) {
    if (pthread_create(&c->monitor, NULL, monitor_loop, c) != 0)
        return vr_error_set(err, VR_ERR_INTERNAL, "cannot start the cluster monitor");
    return VR_OK;
}

void vr_cluster_stop_monitor(vr_coordinator *c) { pthread_join(c->monitor, NULL); }

typedef struct fanout {
    vr_rpc_channel *ch;
    const char *method, *address;
    const uint8_t *req;
    size_t len;
    uint8_t *resp;
    size_t resp_len;
    vr_status st;
    vr_error err;
    pthread_t thread;
} fanout;

static void *fanout_call(void *p) {
    fanout *f = p;
    f->st = vr_rpc_unary(f->ch, f->method, NULL, 0, f->req, f->len, STEP_DEADLINE_MS, &f->resp, &f->resp_len, NULL,
                         NULL, &f->err);
    return NULL;
}

static vr_status broadcast(vr_coordinator *c, const char *method, const uint8_t *req, size_t len, uint8_t **resps,
                           size_t *resp_lens, int *n_stages, int64_t wait_ms, vr_error *err) {
    fanout f[VR_MAX_WORKERS];
    memset(f, 0, sizeof f);
    /* a pipeline being re-formed (a shard re-registered or came back) is usually whole again
     * within a monitor tick or two: wait a little before refusing */
    for (int64_t until = vr_now_ms() + wait_ms;;) {
        pthread_mutex_lock(&c->cluster_mu);
        int ok = c->pipeline_ok;
        pthread_mutex_unlock(&c->cluster_mu);
        if (ok || vr_now_ms() >= until) break;
        usleep(50 * 1000);
    }
    pthread_mutex_lock(&c->cluster_mu);
    if (!c->pipeline_ok) {
        pthread_mutex_unlock(&c->cluster_mu);
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "the shard pipeline is not complete (a shard is down); retry");
    }
    int n = c->n_stages;
    for (int s = 0; s < n; s++) {
        vr_worker_entry *w = &c->workers[c->pipeline[s]];
        f[s].ch = w->ch;
        f[s].address = w->address;
    }
    pthread_mutex_unlock(&c->cluster_mu);
    for (int s = 0; s < n; s++) {
        f[s].method = method;
        f[s].req = req;
        f[s].len = len;
        if (pthread_create(&f[s].thread, NULL, fanout_call, &f[s]) != 0) fanout_call(&f[s]), f[s].thread = 0;
    }
    vr_status st = VR_OK;
    for (int s = 0; s < n; s++) {
        if (f[s].thread) pthread_join(f[s].thread, NULL);
        if (f[s].st != VR_OK && st == VR_OK) {
            st = f[s].st;
            /* a transport error at one stage shows as UNAVAILABLE at the next: report the first */
            vr_error_set(err, f[s].st == VR_ERR_UNAVAILABLE || f[s].st == VR_ERR_CANCELLED ? VR_ERR_UNAVAILABLE : f[s].st,
                         "shard %d (%s): %s", s, f[s].address, f[s].err.msg);
        }
    }
    for (int s = 0; s < n; s++) {
        if (resps && st == VR_OK) {
            resps[s] = f[s].resp;
            resp_lens[s] = f[s].resp_len;
        } else {
            free(f[s].resp);
        }
    }
    if (n_stages) *n_stages = n;
    return st == VR_OK ? VR_OK : err->code;
}

vr_status vr_cluster_broadcast(vr_coordinator *c, const char *method, const uint8_t *req, size_t len,
                               uint8_t **resps, size_t *resp_lens, int *n_stages, vr_error *err) {
    return broadcast(c, method, req, len, resps, resp_lens, n_stages, PIPELINE_WAIT_MS, err);
}

void vr_cluster_evict(vr_coordinator *c, const char *tenant, const char *session, uint64_t features_key,
                      int keep_states) {
    Vrwkv__Internal__EvictRequest req = VRWKV__INTERNAL__EVICT_REQUEST__INIT;
    req.tenant = (char *)tenant;
    req.session = (char *)session;
    req.features_key = features_key;
    req.keep_states = keep_states;
    uint8_t buf[600];
    size_t len = vrwkv__internal__evict_request__get_packed_size(&req);
    vrwkv__internal__evict_request__pack(&req, buf);
    vr_error err = {0};
    /* best effort and never waiting: a shard that is down holds no state to drop */
    broadcast(c, "/vrwkv.internal.Shard/Evict", buf, len, NULL, NULL, NULL, 0, &err);
}

void vr_image_features_clear(vr_image_features *f) {
    free(f->data);
    memset(f, 0, sizeof *f);
}

int vr_cluster_features_usable(vr_coordinator *c, const vr_image_features *f) {
    if (!f->key) return 1;
    if (vr_now_ms() - f->at_ms > VR_FEATURES_TTL_MS / 2) return 0;
    pthread_mutex_lock(&c->cluster_mu);
    /* a pipeline being re-formed keeps its stage 0 unless that worker changes: only a change
     * (or the age above) sends the image to the vision worker again */
    int ok = c->n_stages > 0 && !strcmp(c->workers[c->pipeline[0]].id, f->stage0);
    pthread_mutex_unlock(&c->cluster_mu);
    return ok;
}

vr_status vr_cluster_encode_image(vr_coordinator *c, const uint8_t *image, size_t len, int deliver,
                                  vr_image_features *out, vr_error *err) {
    vr_image_features_clear(out);
    vr_rpc_channel *ch = NULL;
    char address[300] = "", deliver_to[300] = "", stage0[160] = "";
    pthread_mutex_lock(&c->cluster_mu);
    int n_vision = 0, pick = -1;
    for (int i = 0; i < VR_MAX_WORKERS; i++)
        if (c->workers[i].in_use && c->workers[i].alive && c->workers[i].role == VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_VISION)
            n_vision++;
    if (n_vision) {
        int k = c->vision_rr++ % n_vision;
        for (int i = 0; i < VR_MAX_WORKERS; i++)
            if (c->workers[i].in_use && c->workers[i].alive &&
                c->workers[i].role == VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_VISION && k-- == 0) {
                pick = i;
                break;
            }
    }
    if (pick >= 0) {
        ch = c->workers[pick].ch;
        snprintf(address, sizeof address, "%s", c->workers[pick].address);
    }
    /* the features go where the prefill will need them: stage 0 of the pipeline as it is now */
    if (deliver && c->pipeline_ok && c->n_stages > 0 && c->workers[c->pipeline[0]].transport_address[0]) {
        snprintf(deliver_to, sizeof deliver_to, "%s", c->workers[c->pipeline[0]].transport_address);
        snprintf(stage0, sizeof stage0, "%s", c->workers[c->pipeline[0]].id);
    }
    pthread_mutex_unlock(&c->cluster_mu);
    if (!ch) return vr_error_set(err, VR_ERR_UNAVAILABLE, "no vision worker is available; retry");
    uint64_t key = 0;
    while (deliver_to[0] && !key) key = __atomic_add_fetch(&c->feature_seq, 1, __ATOMIC_RELAXED);
    Vrwkv__Internal__EncodeRequest req = VRWKV__INTERNAL__ENCODE_REQUEST__INIT;
    req.image.data = (uint8_t *)image;
    req.image.len = image ? len : 0;
    req.zero_pixels = image == NULL;
    req.name = "image";
    req.deliver_to = deliver_to;
    req.deliver_key = key;
    size_t plen = vrwkv__internal__encode_request__get_packed_size(&req);
    uint8_t *buf = malloc(plen + 1);
    if (!buf) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    vrwkv__internal__encode_request__pack(&req, buf);
    uint8_t *resp = NULL;
    size_t rl = 0;
    int code = 0;
    char *msg = NULL;
    vr_status st = vr_rpc_unary(ch, "/vrwkv.internal.Vision/Encode", NULL, 0, buf, plen, 60000, &resp, &rl, &code, &msg,
                                err);
    free(buf);
    if (st != VR_OK) {
        /* the worker's own verdict on the image (INVALID_ARGUMENT …) passes through unchanged */
        if (code == VR_RPC_STATUS_INVALID_ARGUMENT || code == VR_RPC_STATUS_UNIMPLEMENTED ||
            code == VR_RPC_STATUS_RESOURCE_EXHAUSTED)
            st = vr_error_set(err, VR_ERR_INVALID, "%s", msg ? msg : "the image was refused");
        else
            st = vr_error_set(err, VR_ERR_UNAVAILABLE, "vision worker %s: %s", address, msg ? msg : err->msg);
        free(msg);
        return st;
    }
    free(msg);
    Vrwkv__Internal__EncodeResponse *r = vrwkv__internal__encode_response__unpack(NULL, rl, resp);
    free(resp);
    int delivered = r && r->delivered && key;
    if (!r || r->n_embd != c->cfg.n_embd || r->n_img != c->cfg.num_image_tokens ||
        r->features.len != (delivered ? 0 : (size_t)r->n_img * r->n_embd * sizeof(float))) {
        if (r) vrwkv__internal__encode_response__free_unpacked(r, NULL);
        return vr_error_set(err, VR_ERR_INTERNAL, "vision worker %s answered features of the wrong shape", address);
    }
    out->n_img = r->n_img;
    if (delivered) {
        out->key = key;
        out->at_ms = vr_now_ms();
        snprintf(out->stage0, sizeof out->stage0, "%s", stage0);
    } else if ((out->data = malloc(r->features.len))) {
        memcpy(out->data, r->features.data, r->features.len);
    }
    vrwkv__internal__encode_response__free_unpacked(r, NULL);
    if (!delivered && !out->data) {
        out->n_img = 0;
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    return VR_OK;
}
