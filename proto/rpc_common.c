/* proto/rpc_common.c — status code mapping and the small helpers both sides of the gRPC
 * wrapper share. Must not start calls or batches. */
#include "proto/rpc_internal.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(VR_RPC_STATUS_OK == (int)GRPC_STATUS_OK, "status codes");
_Static_assert(VR_RPC_STATUS_CANCELLED == (int)GRPC_STATUS_CANCELLED, "status codes");
_Static_assert(VR_RPC_STATUS_DEADLINE_EXCEEDED == (int)GRPC_STATUS_DEADLINE_EXCEEDED, "status codes");
_Static_assert(VR_RPC_STATUS_RESOURCE_EXHAUSTED == (int)GRPC_STATUS_RESOURCE_EXHAUSTED, "status codes");
_Static_assert(VR_RPC_STATUS_UNIMPLEMENTED == (int)GRPC_STATUS_UNIMPLEMENTED, "status codes");
_Static_assert(VR_RPC_STATUS_UNAVAILABLE == (int)GRPC_STATUS_UNAVAILABLE, "status codes");
_Static_assert(VR_RPC_STATUS_UNAUTHENTICATED == (int)GRPC_STATUS_UNAUTHENTICATED, "status codes");

static pthread_mutex_t g_lib_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_lib_refs;

void vr_rpc_lib_ref(void) {
    pthread_mutex_lock(&g_lib_mu);
    if (g_lib_refs++ == 0) grpc_init();
    pthread_mutex_unlock(&g_lib_mu);
}

void vr_rpc_lib_unref(void) {
    pthread_mutex_lock(&g_lib_mu);
    if (--g_lib_refs == 0) grpc_shutdown_blocking();
    pthread_mutex_unlock(&g_lib_mu);
}

int vr_rpc_code_from_status(vr_status st) {
    switch (st) {
    case VR_OK: return VR_RPC_STATUS_OK;
    case VR_ERR_INVALID: return VR_RPC_STATUS_INVALID_ARGUMENT;
    case VR_ERR_FORMAT: return VR_RPC_STATUS_INVALID_ARGUMENT;
    case VR_ERR_NOT_FOUND: return VR_RPC_STATUS_NOT_FOUND;
    case VR_ERR_UNAVAILABLE: return VR_RPC_STATUS_UNAVAILABLE;
    case VR_ERR_AUTH: return VR_RPC_STATUS_UNAUTHENTICATED;
    case VR_ERR_CANCELLED: return VR_RPC_STATUS_CANCELLED;
    case VR_ERR_NOMEM: return VR_RPC_STATUS_RESOURCE_EXHAUSTED;
    case VR_ERR_UNSUPPORTED: return VR_RPC_STATUS_UNIMPLEMENTED;
    case VR_ERR_IO:
    case VR_ERR_INTERNAL: return VR_RPC_STATUS_INTERNAL;
    }
    return VR_RPC_STATUS_INTERNAL;
}

vr_status vr_rpc_status_from_code(int code) {
    switch (code) {
    case VR_RPC_STATUS_OK: return VR_OK;
    case VR_RPC_STATUS_CANCELLED:
    case VR_RPC_STATUS_DEADLINE_EXCEEDED: return VR_ERR_CANCELLED;
    case VR_RPC_STATUS_INVALID_ARGUMENT:
    case VR_RPC_STATUS_FAILED_PRECONDITION:
    case VR_RPC_STATUS_OUT_OF_RANGE:
    case VR_RPC_STATUS_ALREADY_EXISTS: return VR_ERR_INVALID;
    case VR_RPC_STATUS_NOT_FOUND: return VR_ERR_NOT_FOUND;
    case VR_RPC_STATUS_PERMISSION_DENIED:
    case VR_RPC_STATUS_UNAUTHENTICATED: return VR_ERR_AUTH;
    case VR_RPC_STATUS_RESOURCE_EXHAUSTED: return VR_ERR_NOMEM;
    case VR_RPC_STATUS_UNIMPLEMENTED: return VR_ERR_UNSUPPORTED;
    case VR_RPC_STATUS_UNAVAILABLE:
    case VR_RPC_STATUS_ABORTED: return VR_ERR_UNAVAILABLE;
    default: return VR_ERR_INTERNAL;
    }
}

const char *vr_rpc_status_name(int code) {
    static const char *names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED"};
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0])) return "UNKNOWN_CODE";
    return names[code];
}

grpc_byte_buffer *vr_rpc_buffer_from(const uint8_t *data, size_t len) {
    grpc_slice s = len ? grpc_slice_from_copied_buffer((const char *)data, len) : grpc_empty_slice();
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

vr_status vr_rpc_buffer_read(grpc_byte_buffer *bb, uint8_t **out, size_t *len, vr_error *err) {
    *out = NULL;
    *len = 0;
    size_t n = bb ? grpc_byte_buffer_length(bb) : 0;
    if (n > (size_t)VR_RPC_MAX_MESSAGE)
        return vr_error_set(err, VR_ERR_NOMEM, "rpc message of %zu bytes is over the %d byte limit",
                            n, VR_RPC_MAX_MESSAGE);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return vr_error_set(err, VR_ERR_NOMEM, "out of memory for a %zu byte rpc message", n);
    if (n) {
        grpc_byte_buffer_reader r;
        if (!grpc_byte_buffer_reader_init(&r, bb)) {
            free(buf);
            return vr_error_set(err, VR_ERR_FORMAT, "rpc message could not be decompressed");
        }
        size_t at = 0;
        grpc_slice s;
        while (grpc_byte_buffer_reader_next(&r, &s)) {
            size_t m = GRPC_SLICE_LENGTH(s);
            if (m > n - at) m = n - at;
            memcpy(buf + at, GRPC_SLICE_START_PTR(s), m);
            at += m;
            grpc_slice_unref(s);
        }
        grpc_byte_buffer_reader_destroy(&r);
        n = at;
    }
    *out = buf;
    *len = n;
    return VR_OK;
}

gpr_timespec vr_rpc_deadline(int64_t deadline_ms) {
    if (deadline_ms <= 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(deadline_ms, GPR_TIMESPAN));
}

char *vr_rpc_slice_strdup(grpc_slice s) {
    size_t n = GRPC_SLICE_LENGTH(s);
    char *p = malloc(n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, GRPC_SLICE_START_PTR(s), n);
    p[n] = 0;
    return p;
}

void vr_rpc_channel_args(grpc_arg args[3], grpc_channel_args *out, int server) {
    memset(args, 0, 3 * sizeof args[0]);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = VR_RPC_MAX_MESSAGE;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = VR_RPC_MAX_MESSAGE;
    /* A server must own its port: without this, gRPC binds with SO_REUSEPORT and a second
     * server on a taken port would silently share it. */
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    out->num_args = server ? 3 : 2;
    out->args = args;
}
