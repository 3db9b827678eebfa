/* coordinator/internal.h — the coordinator's parts and what they share: the cluster view
 * (workers, pipeline), requests in flight, and the scheduler. Private to coordinator/. */
#ifndef VR_COORDINATOR_INTERNAL_H
#define VR_COORDINATOR_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "common/metrics.h"
#include "coordinator/coordinator.h"
#include "coordinator/session_record.h"
#include "coordinator/tenants.h"
#include "model/config.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "proto/rpc.h"
#include "store/store.h"

enum { VR_MAX_WORKERS = 64, HEARTBEAT_TIMEOUT_MS = 6000, STEP_DEADLINE_MS = 120000, PIPELINE_WAIT_MS = 5000,
       HANDOFF_DEADLINE_MS = 600000 };

typedef struct vr_worker_entry {
    int in_use, alive;
    char id[160], address[300], transport_address[300];
    int role; /* VRWKV__INTERNAL__WORKER_ROLE__* */
    int layer_first, layer_last;
    uint64_t fingerprint;
    int nccl; /* shards: links to NCCL-capable neighbours over NCCL */
    int64_t last_seen_ms;
    int64_t registered_ms; /* the newest registration wins a layer range */
    vr_rpc_channel *ch;
} vr_worker_entry;

/* REQ_PREPARE: the shards are to hold the turn's starting state (a new turn, a rebuild, or a turn
 * back from the encode thread, whose slot may have been evicted meanwhile). REQ_ENCODE: its image
 * is being encoded on the encode thread (encode_queue.c); the scheduler leaves the turn alone
 * until it comes back. */
typedef enum { REQ_PREPARE = 0, REQ_ENCODE, REQ_PREFILL, REQ_DECODE, REQ_FINISH, REQ_DONE } vr_req_phase;

typedef enum { EV_TOKEN = 0, EV_FINAL, EV_ERROR } vr_event_kind;

typedef struct vr_event {
    vr_event_kind kind;
    int32_t token;
    float logit, logprob;
    int rpc_code;
    char message[512];
    struct vr_event *next;
} vr_event;

/* An image's features for a turn: held here (inline) or by pipeline stage 0, to which the
 * vision worker delivered them under key (worker/feature_delivery.h). */
typedef struct vr_image_features {
    float *data;      /* inline: malloc'd [n_img, n_embd]; else NULL */
    uint64_t key;     /* delivered: stage 0's inbox key; else 0 */
    char stage0[160]; /* delivered: the worker id of the stage 0 that holds them */
    int64_t at_ms;    /* delivered: when */
    int n_img;        /* 0: no image */
} vr_image_features;

/* One turn in flight, shared by its API handler thread and the scheduler (refcounted). */
typedef struct vr_request {
    int refs;
    /* fixed at admission */
    char tenant[129], session[129];
    int persistent;           /* a session (record + checkpoint) or a one-shot */
    vr_session_record record; /* persistent: the committed record; one-shot: scratch */
    int32_t *prompt;          /* ids to prefill: this turn's prompt (after a rebuild: transcript + it) */
    int n_prompt;
    int n_turn_prompt;        /* this turn's prompt: the last n_turn_prompt ids of prompt */
    vr_image_features features; /* for the prompt's -200, if it has one */
    int scan;
    vr_sampling_params sampling;
    int max_tokens;
    int32_t stop[16];
    int n_stop;
    int64_t t_start_ms, t_enqueue_ms, t_first_token_ms, t_admit_ms; /* arrival, queued, first token, admitted */
    /* scheduler state */
    vr_req_phase phase;
    int fresh;                /* start from a zero state (new, one-shot or rebuild) */
    int32_t *gen;             /* generated ids (stop excluded) */
    int n_gen;
    int32_t end_ids[2];
    int n_end;
    int32_t last_token;
    int stopped;
    float stop_logit, stop_logprob; /* the stop token's, when a stop token ended the turn */
    /* an encode on the encode thread: asked (deliver, next), answered (status, features, msg) */
    int enc_deliver;
    vr_req_phase enc_next;    /* the phase once the features are in */
    vr_status enc_status;
    vr_image_features enc_features;
    char enc_msg[512];
    struct vr_request *next_enc;
    /* events to the handler */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    vr_event *head, *tail;
    int cancelled;            /* set by the handler: the client went away */
    struct vr_request *next_queued;
} vr_request;

struct vr_coordinator {
    vr_coordinator_options opt;
    char address[300];
    vr_model_config cfg;
    uint64_t fingerprint;
    vr_tokenizer *tok;
    vr_tenants tenants;
    vr_store *store;
    vr_rpc_server *srv;
    vr_rpc_health *health;
    /* cluster */
    pthread_mutex_t cluster_mu;
    vr_worker_entry workers[VR_MAX_WORKERS];
    uint64_t epoch;
    int pipeline[VR_MAX_WORKERS]; /* worker indices by stage */
    int n_stages;
    int pipeline_ok;          /* assigned and believed healthy */
    int vision;               /* worker index or -1 */
    int vision_rr;
    uint64_t feature_seq;     /* names delivered features (atomic; random start) */
    /* channels of replaced worker entries: an RPC begun before may still use one, so each is
     * freed only once the longest RPC deadline has passed (or at shutdown) */
    struct vr_old_channel {
        vr_rpc_channel *ch;
        int64_t at_ms;
    } *old_ch;
    int n_old_ch, cap_old_ch;
    pthread_t monitor;
    /* scheduler */
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    vr_request *queue_head, *queue_tail;
    int stop;
    pthread_t scheduler;
    /* the encode thread (encode_queue.c): its queue and its answers, both under q_mu */
    pthread_t encoder;
    pthread_cond_t enc_cv;
    vr_request *enc_head, *enc_tail, *enc_done;
    int enc_stop, enc_started;
    uint64_t step_id;
    /* sessions with a turn in flight (one turn at a time per session) */
    char (*busy)[260];
    int n_busy, cap_busy;
    /* metrics */
    vr_metrics *metrics;
    vr_metrics_http *metrics_http;
    vr_counter *m_requests, *m_tokens;
    vr_histogram *m_ttft, *m_token_latency, *m_batch;
    vr_gauge *m_live, *m_store_latency, *m_workers;
};

/* cluster.c */
vr_status vr_cluster_register(vr_coordinator *c, const char *id, const char *address, const char *transport_address,
                              int role, int first, int last, uint64_t fingerprint, int nccl, vr_error *err);
int vr_cluster_heartbeat(vr_coordinator *c, const char *id);
vr_status vr_cluster_start_monitor(vr_coordinator *c, vr_error *err);
void vr_cluster_stop_monitor(vr_coordinator *c);
/* Frees the channels of replaced workers that no RPC can still use (all: at shutdown). */
void vr_cluster_free_old_channels(vr_coordinator *c, int all);
void vr_cluster_mark_failed(vr_coordinator *c, const char *why);
/* Unary call to every pipeline stage at once; resps[i] (malloc'd) per stage. */
vr_status vr_cluster_broadcast(vr_coordinator *c, const char *method, const uint8_t *req, size_t len,
                               uint8_t **resps, size_t *resp_lens, int *n_stages, vr_error *err);
/* Tells every stage to drop its in-memory state of a session (keep_states: not that) and stage 0
 * the delivered features under features_key (0: none); best effort, no waiting. */
void vr_cluster_evict(vr_coordinator *c, const char *tenant, const char *session, uint64_t features_key,
                      int keep_states);
/* Image bytes -> features through a vision worker; image NULL: an all-zero pixel tensor. With
 * deliver, the vision worker sends them straight to the current stage 0 where it can (out->key
 * set), else they come back here (out->data). out is reset first (vr_image_features_clear). */
vr_status vr_cluster_encode_image(vr_coordinator *c, const uint8_t *image, size_t len, int deliver,
                                  vr_image_features *out, vr_error *err);
/* 0 when delivered features can no longer be counted on: stage 0 is another worker now, or they
 * are old enough that its inbox may have dropped them. Inline features or none: 1. */
int vr_cluster_features_usable(vr_coordinator *c, const vr_image_features *f);
void vr_image_features_clear(vr_image_features *f);

/* encode_queue.c: image encodes the scheduler needs, on a thread of their own so that a slow
 * or stuck vision worker never holds up the decode of other turns. */
vr_status vr_encode_queue_start(vr_coordinator *c, vr_error *err);
/* Waits for the encode in flight; turns still queued come back failed (UNAVAILABLE). */
void vr_encode_queue_stop(vr_coordinator *c);
/* Hands r (phase REQ_ENCODE from now) to the encode thread; it comes back on enc_done. */
void vr_encode_queue_push(vr_coordinator *c, vr_request *r, int deliver, vr_req_phase next);
/* With q_mu held: the turns whose encode ended, in a list through next_enc. */
vr_request *vr_encode_queue_take_done_locked(vr_coordinator *c);

/* scheduler.c */
vr_status vr_scheduler_start(vr_coordinator *c, vr_error *err);
void vr_scheduler_stop(vr_coordinator *c);
void vr_scheduler_submit(vr_coordinator *c, vr_request *r);
void vr_request_release(vr_request *r);
/* events: the scheduler pushes, the handler pops */
void vr_request_push(vr_request *r, vr_event_kind kind, int32_t token, int rpc_code, const char *message);
void vr_request_push_token(vr_request *r, int32_t token, float logit, float logprob);

/* api.c */
vr_status vr_api_add_methods(vr_coordinator *c, vr_error *err);
/* 1 when the session was free and is now marked busy */
int vr_session_claim(vr_coordinator *c, const char *tenant, const char *session);
void vr_session_unclaim(vr_coordinator *c, const char *tenant, const char *session);
int64_t vr_now_ms(void);

#endif
