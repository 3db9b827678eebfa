/* proto/rpc_health.c — grpc.health.v1.Health/Check on top of the rpc wrapper: a table of
 * service name -> serving flag that the owner updates. Must not decide health itself (the
 * coordinator/worker sets it); Watch is left unimplemented (the protocol allows that). */
#include "proto/health.pb-c.h"
#include "proto/rpc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_MAX 32

struct vr_rpc_health {
    pthread_mutex_t mu;
    int n;
    char *names[HEALTH_MAX];
    int serving[HEALTH_MAX];
};

vr_status vr_rpc_health_create(vr_rpc_health **out, vr_error *err) {
    *out = NULL;
    vr_rpc_health *h = calloc(1, sizeof *h);
    if (!h || !(h->names[0] = strdup(""))) {
        free(h);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&h->mu, NULL);
    h->serving[0] = 1;
    h->n = 1;
    *out = h;
    return VR_OK;
}

vr_status vr_rpc_health_set(vr_rpc_health *h, const char *service, int serving, vr_error *err) {
    if (!service) service = "";
    pthread_mutex_lock(&h->mu);
    int i = 0;
    while (i < h->n && strcmp(h->names[i], service) != 0) i++;
    vr_status st = VR_OK;
    if (i == h->n) {
        if (h->n == HEALTH_MAX) {
            st = vr_error_set(err, VR_ERR_NOMEM, "health: more than %d service names", HEALTH_MAX);
        } else if (!(h->names[i] = strdup(service))) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        } else {
            h->n++;
        }
    }
    if (st == VR_OK) h->serving[i] = serving ? 1 : 0;
    pthread_mutex_unlock(&h->mu);
    return st;
}

static void check(vr_rpc_call *call, void *ctx) {
    vr_rpc_health *h = ctx;
    const uint8_t *data;
    size_t len;
    vr_rpc_call_request(call, &data, &len);
    Grpc__Health__V1__HealthCheckRequest *req = grpc__health__v1__health_check_request__unpack(NULL, len, data);
    if (!req) {
        vr_rpc_call_finish(call, VR_RPC_STATUS_INVALID_ARGUMENT, "malformed HealthCheckRequest", NULL, 0, NULL);
        return;
    }
    const char *name = req->service ? req->service : "";
    pthread_mutex_lock(&h->mu);
    int found = -1;
    for (int i = 0; i < h->n; i++)
        if (strcmp(h->names[i], name) == 0) found = h->serving[i];
    pthread_mutex_unlock(&h->mu);
    if (found < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown service '%.256s'", name);
        grpc__health__v1__health_check_request__free_unpacked(req, NULL);
        vr_rpc_call_finish(call, VR_RPC_STATUS_NOT_FOUND, msg, NULL, 0, NULL);
        return;
    }
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = found ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                        : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    uint8_t buf[16];
    size_t n = grpc__health__v1__health_check_response__pack(&resp, buf);
    vr_rpc_call_finish(call, VR_RPC_STATUS_OK, NULL, buf, n, NULL);
}

vr_status vr_rpc_health_add_to(vr_rpc_health *h, vr_rpc_server *srv, vr_error *err) {
    return vr_rpc_server_add_method(srv, "/grpc.health.v1.Health/Check", VR_RPC_UNARY, check, h, err);
}

void vr_rpc_health_free(vr_rpc_health *h) {
    if (!h) return;
    for (int i = 0; i < h->n; i++) free(h->names[i]);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
