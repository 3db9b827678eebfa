/* worker/membership.c — register + heartbeat loop over the control protocol. */
#include "worker/membership.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/control.pb-c.h"
#include "proto/rpc.h"

struct vr_membership {
    vr_membership_info info;
    char *coordinator, *address, *transport_address;
    char worker_id[128];
    vr_rpc_channel *ch;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, registered, interval_ms;
};

static int do_register(vr_membership *m) {
    Vrwkv__Internal__RegisterRequest req = VRWKV__INTERNAL__REGISTER_REQUEST__INIT;
    req.worker_id = m->worker_id;
    req.address = m->address;
    req.transport_address = m->transport_address ? m->transport_address : "";
    req.role = (Vrwkv__Internal__WorkerRole)m->info.role;
    req.layer_first = m->info.layer_first;
    req.layer_last = m->info.layer_last;
    req.model_fingerprint = m->info.fingerprint;
    req.max_sessions = m->info.max_sessions;
    req.nccl = m->info.nccl;
    size_t len = vrwkv__internal__register_request__get_packed_size(&req);
    uint8_t *buf = malloc(len + 1);
    if (!buf) return 0;
    vrwkv__internal__register_request__pack(&req, buf);
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    vr_error err = {0};
    vr_status st = vr_rpc_unary(m->ch, "/vrwkv.internal.Coordinator/RegisterWorker", NULL, 0, buf, len, 2000, &resp,
                                &resp_len, NULL, NULL, &err);
    free(buf);
    if (st != VR_OK) {
        vr_log(VR_LOG_WARN, "register_failed", "coordinator=%s error=%s", m->coordinator, err.msg);
        return 0;
    }
    Vrwkv__Internal__RegisterResponse *r = vrwkv__internal__register_response__unpack(NULL, resp_len, resp);
    free(resp);
    if (r) {
        if (r->heartbeat_interval_ms > 0) m->interval_ms = r->heartbeat_interval_ms;
        vrwkv__internal__register_response__free_unpacked(r, NULL);
    }
    vr_log(VR_LOG_INFO, "registered", "worker=%s coordinator=%s", m->worker_id, m->coordinator);
    return 1;
}

static int do_heartbeat(vr_membership *m) {
    Vrwkv__Internal__HeartbeatRequest req = VRWKV__INTERNAL__HEARTBEAT_REQUEST__INIT;
    req.worker_id = m->worker_id;
    req.live_sessions = m->info.live_sessions ? m->info.live_sessions(m->info.ctx) : 0;
    uint8_t buf[512];
    size_t len = vrwkv__internal__heartbeat_request__get_packed_size(&req);
    if (len > sizeof buf) return 0;
    vrwkv__internal__heartbeat_request__pack(&req, buf);
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    vr_error err = {0};
    if (vr_rpc_unary(m->ch, "/vrwkv.internal.Coordinator/Heartbeat", NULL, 0, buf, len, 2000, &resp, &resp_len, NULL,
                     NULL, &err) != VR_OK)
        return 0;
    Vrwkv__Internal__HeartbeatResponse *r = vrwkv__internal__heartbeat_response__unpack(NULL, resp_len, resp);
    free(resp);
    int known = r && r->known;
    if (r) vrwkv__internal__heartbeat_response__free_unpacked(r, NULL);
    return known;
}

static void *loop(void *p) {
    vr_membership *m = p;
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        pthread_mutex_unlock(&m->mu);
        if (!m->registered) m->registered = do_register(m);
        else if (!do_heartbeat(m)) m->registered = do_register(m);
        pthread_mutex_lock(&m->mu);
        if (m->stop) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int wait_ms = m->registered ? m->interval_ms : 200;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        ts.tv_sec += wait_ms / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

vr_status vr_membership_start(const vr_membership_info *info, vr_membership **out, vr_error *err) {
    *out = NULL;
    vr_membership *m = calloc(1, sizeof *m);
    if (!m) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    m->info = *info;
    m->coordinator = strdup(info->coordinator);
    m->address = strdup(info->address);
    m->transport_address = info->transport_address ? strdup(info->transport_address) : NULL;
    m->interval_ms = 500;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(m->worker_id, sizeof m->worker_id, "%s-%d-%lld", info->address, (int)getpid(),
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    vr_status st = vr_rpc_channel_create(info->coordinator, &m->ch, err);
    if (st == VR_OK && pthread_create(&m->thread, NULL, loop, m) != 0)
        st = vr_error_set(err, VR_ERR_INTERNAL, "cannot start the heartbeat thread");
    if (st != VR_OK) {
        vr_rpc_channel_free(m->ch);
        free(m->coordinator);
        free(m->address);
        free(m->transport_address);
        free(m);
        return st;
    }
    *out = m;
    return VR_OK;
}

void vr_membership_stop(vr_membership *m) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->stop = 1;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    vr_rpc_channel_free(m->ch);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m->coordinator);
    free(m->address);
    free(m->transport_address);
    free(m);
}

const char *vr_membership_worker_id(const vr_membership *m) { return m->worker_id; }
