/* worker/vision_worker.c — Encode handler over model/engine's image path. One encode at a
 * time (the backend parallelises inside an encode). Features go straight to stage 0 when the
 * coordinator names it (worker/feature_delivery.h), else back in the answer; a delivery that
 * fails falls back to the answer, so a request never fails for want of the direct path. */
#include "worker/vision_worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "model/engine.h"
#include "proto/control.pb-c.h"
#include "proto/rpc.h"
#include "worker/feature_delivery.h"
#include "worker/membership.h"

struct vr_vision_worker {
    vr_vision_worker_options opt;
    char address[300];
    vr_engine *e;
    pthread_mutex_t mu;
    vr_rpc_server *srv;
    vr_rpc_health *health;
    vr_membership *membership;
    vr_metrics *metrics;
    vr_metrics_http *metrics_http;
    vr_counter *m_images, *m_delivered;
    vr_histogram *m_seconds;
    vr_feature_sender *sender;
};

enum { DELIVER_TIMEOUT_MS = 10000 };

static void handle_encode(vr_rpc_call *call, void *ctx) {
    vr_vision_worker *w = ctx;
    const uint8_t *data;
    size_t len;
    vr_rpc_call_request(call, &data, &len);
    Vrwkv__Internal__EncodeRequest *req = vrwkv__internal__encode_request__unpack(NULL, len, data);
    if (!req) {
        vr_rpc_call_finish(call, VR_RPC_STATUS_INVALID_ARGUMENT, "malformed request", NULL, 0, NULL);
        return;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vr_error err = {0};
    float *features = NULL;
    const char *name = req->name && *req->name ? req->name : "image";
    vr_status st = VR_OK;
    float *zeros = NULL;
    if (req->zero_pixels) { /* upstream's stand-in for a question without an image */
        int S = w->e->cfg.image_size;
        zeros = calloc((size_t)3 * S * S, sizeof(float));
        if (!zeros) st = vr_error_set(&err, VR_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_lock(&w->mu);
    if (st == VR_OK)
        st = zeros ? vr_engine_encode_pixels(w->e, zeros, &features, NULL, &err)
                   : vr_engine_encode_image(w->e, req->image.data, req->image.len, name, &features, &err);
    pthread_mutex_unlock(&w->mu);
    free(zeros);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    vr_counter_inc(w->m_images, (const char *[]){st == VR_OK ? "ok" : "error"});
    vr_histogram_observe(w->m_seconds, NULL, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
    if (st != VR_OK) {
        vrwkv__internal__encode_request__free_unpacked(req, NULL);
        vr_log(VR_LOG_INFO, "encode_refused", "error=%s", err.msg);
        vr_rpc_call_finish_error(call, &err);
        return;
    }
    const vr_model_config *c = &w->e->cfg;
    Vrwkv__Internal__EncodeResponse resp = VRWKV__INTERNAL__ENCODE_RESPONSE__INIT;
    if (req->deliver_to && *req->deliver_to) {
        vr_status ds = vr_feature_sender_deliver(w->sender, req->deliver_to, req->deliver_key, features,
                                                 c->num_image_tokens, c->n_embd, DELIVER_TIMEOUT_MS, &err);
        resp.delivered = ds == VR_OK;
        vr_counter_inc(w->m_delivered, (const char *[]){resp.delivered ? "stage0" : "inline"});
        if (resp.delivered)
            vr_log(VR_LOG_INFO, "features_delivered", "key=%016llx to=%s", (unsigned long long)req->deliver_key,
                   req->deliver_to);
        else
            vr_log(VR_LOG_WARN, "features_inline", "key=%016llx to=%s error=%s (answered inline instead)",
                   (unsigned long long)req->deliver_key, req->deliver_to, err.msg);
    }
    vrwkv__internal__encode_request__free_unpacked(req, NULL);
    if (!resp.delivered) {
        resp.features.data = (uint8_t *)features;
        resp.features.len = (size_t)c->num_image_tokens * c->n_embd * sizeof(float);
    }
    resp.n_img = c->num_image_tokens;
    resp.n_embd = c->n_embd;
    size_t n = vrwkv__internal__encode_response__get_packed_size(&resp);
    uint8_t *buf = malloc(n + 1);
    if (buf) {
        vrwkv__internal__encode_response__pack(&resp, buf);
        vr_rpc_call_finish(call, VR_RPC_STATUS_OK, NULL, buf, n, NULL);
    } else {
        vr_rpc_call_finish(call, VR_RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0, NULL);
    }
    free(buf);
    free(features);
}

vr_status vr_vision_worker_start(const vr_vision_worker_options *o, vr_vision_worker **out, vr_error *err) {
    *out = NULL;
    vr_vision_worker *w = calloc(1, sizeof *w);
    if (!w) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    w->opt = *o;
    if (!w->opt.host) w->opt.host = "127.0.0.1";
    pthread_mutex_init(&w->mu, NULL);
    vr_weights_select sel = {0, 0, 0, 0, 1};
    vr_engine_options eo = {o->model_path, o->config_path, NULL, o->threads, &sel, o->backend};
    vr_status st = VR_OK;
    if (o->nccl && (!o->backend || strcmp(o->backend, "cuda")))
        st = vr_error_set(err, VR_ERR_INVALID, "--transport nccl needs --backend cuda (one process per GPU)");
    else if (o->nccl && vr_nccl_available(err) != VR_OK)
        st = vr_error_wrap(err, "--transport nccl");
    if (st == VR_OK) st = vr_engine_open(&eo, &w->e, err);
    if (st == VR_OK && !w->e->cfg.has_vision)
        st = vr_error_set(err, VR_ERR_INVALID, "%s has no vision tower", o->model_path);
    if (st == VR_OK) st = vr_metrics_create(&w->metrics, err);
    if (st == VR_OK)
        st = vr_metrics_counter(w->metrics, "vrwkv_vision_images_total", "Images encoded, by result",
                                (const char *[]){"result"}, 1, &w->m_images, err);
    if (st == VR_OK)
        st = vr_metrics_counter(w->metrics, "vrwkv_vision_features_total",
                                "Features asked to go to stage 0, by where they went (stage0, or inline on failure)",
                                (const char *[]){"path"}, 1, &w->m_delivered, err);
    if (st == VR_OK) st = vr_feature_sender_create(&w->sender, err);
    if (st == VR_OK && o->nccl) vr_feature_sender_use_nccl(w->sender, 0);
    if (st == VR_OK)
        st = vr_metrics_histogram(w->metrics, "vrwkv_vision_encode_seconds", "Decode + preprocess + encode time", NULL,
                                  0, NULL, 0, &w->m_seconds, err);
    if (st == VR_OK && o->metrics_port >= 0)
        st = vr_metrics_http_start(w->metrics, w->opt.host, o->metrics_port, NULL, &w->metrics_http, err);
    char bind[300];
    snprintf(bind, sizeof bind, "%s:%d", w->opt.host, o->port);
    int port = 0;
    if (st == VR_OK) st = vr_rpc_server_create(bind, &w->srv, err);
    if (st == VR_OK)
        st = vr_rpc_server_add_method(w->srv, "/vrwkv.internal.Vision/Encode", VR_RPC_UNARY, handle_encode, w, err);
    if (st == VR_OK) st = vr_rpc_health_create(&w->health, err);
    if (st == VR_OK) st = vr_rpc_health_add_to(w->health, w->srv, err);
    if (st == VR_OK) st = vr_rpc_server_start(w->srv, &port, err);
    if (st == VR_OK) {
        snprintf(w->address, sizeof w->address, "%s:%d", w->opt.host, port);
        if (o->coordinator) {
            vr_membership_info mi = {o->coordinator, w->address, NULL, VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_VISION,
                                     0, 0, w->e->w->fingerprint, 0, NULL, NULL, 0};
            st = vr_membership_start(&mi, &w->membership, err);
        }
    }
    if (st != VR_OK) {
        vr_vision_worker_stop(w);
        return st;
    }
    vr_log(VR_LOG_INFO, "vision_started", "address=%s", w->address);
    *out = w;
    return VR_OK;
}

void vr_vision_worker_stop(vr_vision_worker *w) {
    if (!w) return;
    vr_membership_stop(w->membership);
    vr_rpc_server_shutdown_and_free(w->srv, 500);
    vr_rpc_health_free(w->health);
    vr_metrics_http_stop(w->metrics_http);
    vr_metrics_free(w->metrics);
    vr_feature_sender_free(w->sender);
    vr_engine_free(w->e);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

const char *vr_vision_worker_address(const vr_vision_worker *w) { return w->address; }
