/* coordinator/coordinator.c — start-up and shut-down of the coordinator's parts. */
#include "coordinator/coordinator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "coordinator/internal.h"
#include "model/weights.h"

static vr_status setup_metrics(vr_coordinator *c, vr_error *err) {
    const char *code[] = {"code"};
    vr_status st = vr_metrics_create(&c->metrics, err);
    if (st == VR_OK)
        st = vr_metrics_counter(c->metrics, "vrwkv_requests_total", "Generate turns by final status", code, 1,
                                &c->m_requests, err);
    if (st == VR_OK)
        st = vr_metrics_counter(c->metrics, "vrwkv_generated_tokens_total", "Tokens streamed", NULL, 0, &c->m_tokens, err);
    if (st == VR_OK)
        st = vr_metrics_histogram(c->metrics, "vrwkv_time_to_first_token_seconds", "Enqueue to first token", NULL, 0,
                                  NULL, 0, &c->m_ttft, err);
    if (st == VR_OK)
        st = vr_metrics_histogram(c->metrics, "vrwkv_token_latency_seconds", "Time per decode step", NULL, 0, NULL, 0,
                                  &c->m_token_latency, err);
    static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    if (st == VR_OK)
        st = vr_metrics_histogram(c->metrics, "vrwkv_batch_size", "Runs per pipeline step", NULL, 0, batch_buckets, 9,
                                  &c->m_batch, err);
    if (st == VR_OK)
        st = vr_metrics_gauge(c->metrics, "vrwkv_live_turns", "Turns in flight", NULL, 0, &c->m_live, err);
    if (st == VR_OK)
        st = vr_metrics_gauge(c->metrics, "vrwkv_store_mean_latency_seconds", "Mean store call latency", NULL, 0,
                              &c->m_store_latency, err);
    if (st == VR_OK)
        st = vr_metrics_gauge(c->metrics, "vrwkv_live_workers", "Workers heard from recently", NULL, 0, &c->m_workers, err);
    if (st == VR_OK && c->opt.metrics_port >= 0)
        st = vr_metrics_http_start(c->metrics, c->opt.host, c->opt.metrics_port, NULL, &c->metrics_http, err);
    return st;
}

vr_status vr_coordinator_start(const vr_coordinator_options *o, vr_coordinator **out, vr_error *err) {
    *out = NULL;
    vr_coordinator *c = calloc(1, sizeof *c);
    if (!c) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    c->opt = *o;
    if (!c->opt.host) c->opt.host = "127.0.0.1";
    if (c->opt.max_batch <= 0) c->opt.max_batch = 64;
    if (c->opt.default_max_tokens <= 0) c->opt.default_max_tokens = 256;
    c->vision = -1;
    /* feature keys start somewhere new on every start, so a restarted coordinator's keys do not
     * meet the ones a stage 0 still holds from its predecessor */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->feature_seq = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) * 0x9E3779B97F4A7C15ull ^
                     ((uint64_t)getpid() << 40);
    pthread_mutex_init(&c->cluster_mu, NULL);
    pthread_mutex_init(&c->q_mu, NULL);
    pthread_cond_init(&c->q_cv, NULL);
    vr_checkpoint *ck = NULL;
    vr_status st = vr_checkpoint_open(o->model_path, &ck, err);
    if (st == VR_OK) st = vr_config_load(ck, o->config_path, &c->cfg, err);
    if (st == VR_OK) c->fingerprint = vr_weights_fingerprint(ck);
    vr_checkpoint_free(ck);
    if (st == VR_OK && !o->vocab_path) st = vr_error_set(err, VR_ERR_INVALID, "--vocab is required");
    if (st == VR_OK) st = vr_tokenizer_load(o->vocab_path, &c->tok, err);
    if (st == VR_OK) {
        if (o->tenants_path) st = vr_tenants_load(o->tenants_path, &c->tenants, err);
        else if (o->api_key) st = vr_tenants_single(o->api_key, &c->tenants, err);
        else st = vr_error_set(err, VR_ERR_INVALID, "give --tenants FILE or --api-key KEY");
    }
    if (st == VR_OK) st = vr_store_open(o->store_url ? o->store_url : "memory", o->ttl_seconds, &c->store, err);
    if (st == VR_OK) st = setup_metrics(c, err);
    char bind[300];
    snprintf(bind, sizeof bind, "%s:%d", c->opt.host, o->port);
    int port = 0;
    int started = 0;
    if (st == VR_OK) st = vr_rpc_server_create(bind, &c->srv, err);
    if (st == VR_OK) st = vr_api_add_methods(c, err);
    if (st == VR_OK) st = vr_rpc_health_create(&c->health, err);
    if (st == VR_OK) st = vr_rpc_health_set(c->health, "", 0, err);
    if (st == VR_OK) st = vr_rpc_health_add_to(c->health, c->srv, err);
    if (st == VR_OK) st = vr_scheduler_start(c, err);
    if (st == VR_OK) started |= 1;
    if (st == VR_OK) st = vr_cluster_start_monitor(c, err);
    if (st == VR_OK) started |= 2;
    if (st == VR_OK) st = vr_rpc_server_start(c->srv, &port, err);
    if (st != VR_OK) {
        if (started & 1) vr_scheduler_stop(c);
        else c->stop = 1;
        if (started & 2) vr_cluster_stop_monitor(c);
        c->scheduler = 0;
        vr_rpc_server_shutdown_and_free(c->srv, 0);
        c->srv = NULL;
        vr_coordinator_stop(c);
        return st;
    }
    snprintf(c->address, sizeof c->address, "%s:%d", c->opt.host, port);
    vr_log(VR_LOG_INFO, "coordinator_started", "address=%s layers=%d store=%s tenants=%d", c->address, c->cfg.n_layer,
           vr_store_backend(c->store), c->tenants.n);
    *out = c;
    return VR_OK;
}

void vr_coordinator_stop(vr_coordinator *c) {
    if (!c) return;
    if (c->srv) {
        vr_scheduler_stop(c);   /* fails what is in flight, so handlers finish */
        vr_cluster_stop_monitor(c);
        vr_rpc_server_shutdown_and_free(c->srv, 1000);
    }
    vr_rpc_health_free(c->health);
    for (int i = 0; i < VR_MAX_WORKERS; i++) vr_rpc_channel_free(c->workers[i].ch);
    vr_cluster_free_old_channels(c, 1); /* no call is left */
    vr_metrics_http_stop(c->metrics_http);
    vr_metrics_free(c->metrics);
    vr_store_close(c->store);
    vr_tenants_free(&c->tenants);
    vr_tokenizer_free(c->tok);
    free(c->busy);
    pthread_mutex_destroy(&c->cluster_mu);
    pthread_mutex_destroy(&c->q_mu);
    pthread_cond_destroy(&c->q_cv);
    free(c);
}

int vr_coordinator_port(const vr_coordinator *c) {
    const char *colon = strrchr(c->address, ':');
    return colon ? atoi(colon + 1) : 0;
}

const char *vr_coordinator_address(const vr_coordinator *c) { return c->address; }

int vr_coordinator_ready(vr_coordinator *c) {
    pthread_mutex_lock(&c->cluster_mu);
    int ok = c->pipeline_ok;
    pthread_mutex_unlock(&c->cluster_mu);
    return ok;
}
