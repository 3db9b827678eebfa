/* proto/rpc_client.c — the client half of the gRPC wrapper: channels, blocking unary calls and
 * blocking server-streaming reads, each call on its own pluck completion queue.
 * Must not retry, pick servers or interpret messages: callers decide that. */
#include "proto/rpc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/slice.h>

struct vr_rpc_channel {
    grpc_channel *ch;
    char *target;
};

struct vr_rpc_stream {
    grpc_call *call;
    grpc_completion_queue *cq;
    char *method;
    grpc_metadata_array init_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    char *status_msg;
    int got_init_md, status_started, status_done, done;
    char tag_send, tag_recv, tag_status;
};

vr_status vr_rpc_channel_create(const char *target, vr_rpc_channel **out, vr_error *err) {
    *out = NULL;
    if (!target || !*target) return vr_error_set(err, VR_ERR_INVALID, "rpc target is empty (expected host:port)");
    vr_rpc_channel *c = calloc(1, sizeof *c);
    if (!c || !(c->target = strdup(target))) {
        free(c);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    vr_rpc_lib_ref();
    grpc_arg args[3];
    grpc_channel_args cargs;
    vr_rpc_channel_args(args, &cargs, 0);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    c->ch = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    if (!c->ch) {
        free(c->target);
        free(c);
        vr_rpc_lib_unref();
        return vr_error_set(err, VR_ERR_INVALID, "cannot create an rpc channel to '%s'", target);
    }
    *out = c;
    return VR_OK;
}

void vr_rpc_channel_free(vr_rpc_channel *c) {
    if (!c) return;
    grpc_channel_destroy(c->ch);
    free(c->target);
    free(c);
    vr_rpc_lib_unref();
}

static void drain_and_destroy(grpc_completion_queue *cq) {
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

/* Builds the outgoing metadata (slices copied; free with md_free). */
static vr_status md_build(const char *method, const vr_rpc_metadata *md, int n_md, grpc_metadata **out,
                          vr_error *err) {
    *out = NULL;
    if (n_md <= 0) return VR_OK;
    grpc_metadata *m = calloc((size_t)n_md, sizeof *m);
    if (!m) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_md; i++) {
        m[i].key = grpc_slice_from_copied_string(md[i].key ? md[i].key : "");
        m[i].value = grpc_slice_from_copied_string(md[i].value ? md[i].value : "");
    }
    *out = m;
    for (int i = 0; i < n_md; i++) {
        if (!grpc_header_key_is_legal(m[i].key))
            return vr_error_set(err, VR_ERR_INVALID, "%s: metadata key '%s' is not a legal header name (lowercase)",
                                method, md[i].key ? md[i].key : "");
        if (!grpc_is_binary_header(m[i].key) && !grpc_header_nonbin_value_is_legal(m[i].value))
            return vr_error_set(err, VR_ERR_INVALID, "%s: metadata '%s' has a value with illegal characters",
                                method, md[i].key);
    }
    return VR_OK;
}

static void md_free(grpc_metadata *m, int n_md) {
    if (!m) return;
    for (int i = 0; i < n_md; i++) {
        grpc_slice_unref(m[i].key);
        grpc_slice_unref(m[i].value);
    }
    free(m);
}

static grpc_call *make_call(vr_rpc_channel *ch, const char *method, int64_t deadline_ms,
                            grpc_completion_queue *cq) {
    grpc_slice m = grpc_slice_from_copied_string(method);
    grpc_call *call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                               vr_rpc_deadline(deadline_ms), NULL);
    grpc_slice_unref(m);
    return call;
}

static vr_status status_error(vr_error *err, const char *method, const char *target, int code, const char *msg) {
    return vr_error_set(err, vr_rpc_status_from_code(code), "rpc %s to %s: %s%s%s", method, target,
                        vr_rpc_status_name(code), msg && *msg ? ": " : "", msg ? msg : "");
}

vr_status vr_rpc_unary(vr_rpc_channel *ch, const char *method, const vr_rpc_metadata *md, int n_md,
                       const uint8_t *req, size_t req_len, int64_t deadline_ms, uint8_t **resp,
                       size_t *resp_len, int *grpc_status, char **status_message, vr_error *err) {
    *resp = NULL;
    *resp_len = 0;
    if (grpc_status) *grpc_status = -1;
    if (status_message) *status_message = NULL;
    if (req_len > (size_t)VR_RPC_MAX_MESSAGE)
        return vr_error_set(err, VR_ERR_NOMEM, "rpc %s: a %zu byte request is over the %d byte limit", method,
                            req_len, VR_RPC_MAX_MESSAGE);
    grpc_metadata *gmd = NULL;
    vr_status st = md_build(method, md, n_md, &gmd, err);
    if (st != VR_OK) {
        md_free(gmd, n_md);
        return st;
    }
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_call *call = make_call(ch, method, deadline_ms, cq);
    grpc_metadata_array init_md, trailing_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_byte_buffer *send = vr_rpc_buffer_from(req, req_len);
    grpc_byte_buffer *recv = NULL;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = n_md > 0 ? (size_t)n_md : 0;
    ops[0].data.send_initial_metadata.metadata = gmd;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    char tag = 0;
    grpc_call_error e = grpc_call_start_batch(call, ops, 6, &tag, NULL);
    if (e != GRPC_CALL_OK) {
        st = vr_error_set(err, VR_ERR_INTERNAL, "rpc %s: grpc_call_start_batch: %s", method, grpc_call_error_to_string(e));
    } else {
        grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        char *msg = vr_rpc_slice_strdup(details);
        if (grpc_status) *grpc_status = (int)status;
        if (status != GRPC_STATUS_OK) {
            st = status_error(err, method, ch->target, (int)status, msg);
        } else if (!recv) {
            st = vr_error_set(err, VR_ERR_INTERNAL, "rpc %s to %s: the server sent no response message", method,
                              ch->target);
        } else {
            st = vr_rpc_buffer_read(recv, resp, resp_len, err);
        }
        if (status_message)
            *status_message = msg;
        else
            free(msg);
    }
    if (recv) grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trailing_md);
    md_free(gmd, n_md);
    grpc_call_unref(call);
    drain_and_destroy(cq);
    return st;
}

vr_status vr_rpc_stream_open(vr_rpc_channel *ch, const char *method, const vr_rpc_metadata *md, int n_md,
                             const uint8_t *req, size_t req_len, int64_t deadline_ms, vr_rpc_stream **out,
                             vr_error *err) {
    *out = NULL;
    if (req_len > (size_t)VR_RPC_MAX_MESSAGE)
        return vr_error_set(err, VR_ERR_NOMEM, "rpc %s: a %zu byte request is over the %d byte limit", method,
                            req_len, VR_RPC_MAX_MESSAGE);
    vr_rpc_stream *s = calloc(1, sizeof *s);
    if (!s || !(s->method = malloc(strlen(method) + strlen(ch->target) + 5))) {
        free(s);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    sprintf(s->method, "%s to %s", method, ch->target);
    grpc_metadata *gmd = NULL;
    vr_status st = md_build(method, md, n_md, &gmd, err);
    if (st != VR_OK) {
        md_free(gmd, n_md);
        free(s->method);
        free(s);
        return st;
    }
    s->cq = grpc_completion_queue_create_for_pluck(NULL);
    s->call = make_call(ch, method, deadline_ms, s->cq);
    grpc_metadata_array_init(&s->init_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->details = grpc_empty_slice();
    s->status = GRPC_STATUS_UNKNOWN;

    grpc_op st_op;
    memset(&st_op, 0, sizeof st_op);
    st_op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st_op.data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    st_op.data.recv_status_on_client.status = &s->status;
    st_op.data.recv_status_on_client.status_details = &s->details;
    grpc_call_error e = grpc_call_start_batch(s->call, &st_op, 1, &s->tag_status, NULL);
    if (e == GRPC_CALL_OK) {
        s->status_started = 1;
        grpc_byte_buffer *send = vr_rpc_buffer_from(req, req_len);
        grpc_op ops[3];
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[0].data.send_initial_metadata.count = n_md > 0 ? (size_t)n_md : 0;
        ops[0].data.send_initial_metadata.metadata = gmd;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = send;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        e = grpc_call_start_batch(s->call, ops, 3, &s->tag_send, NULL);
        /* A failed send shows up as the call's status in next(). */
        if (e == GRPC_CALL_OK)
            grpc_completion_queue_pluck(s->cq, &s->tag_send, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        grpc_byte_buffer_destroy(send);
    }
    md_free(gmd, n_md);
    if (e != GRPC_CALL_OK) {
        vr_rpc_stream_free(s);
        return vr_error_set(err, VR_ERR_INTERNAL, "rpc %s: grpc_call_start_batch: %s", method,
                            grpc_call_error_to_string(e));
    }
    *out = s;
    return VR_OK;
}

static void wait_status(vr_rpc_stream *s) {
    if (s->status_started && !s->status_done) {
        grpc_completion_queue_pluck(s->cq, &s->tag_status, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        s->status_done = 1;
        free(s->status_msg);
        s->status_msg = vr_rpc_slice_strdup(s->details);
    }
}

vr_status vr_rpc_stream_next(vr_rpc_stream *s, uint8_t **msg, size_t *len, int *done, vr_error *err) {
    *msg = NULL;
    *len = 0;
    *done = 0;
    if (!s->done) {
        grpc_byte_buffer *recv = NULL;
        grpc_op ops[2];
        memset(ops, 0, sizeof ops);
        size_t n = 0;
        if (!s->got_init_md) {
            ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
            ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
        }
        ops[n].op = GRPC_OP_RECV_MESSAGE;
        ops[n++].data.recv_message.recv_message = &recv;
        grpc_call_error e = grpc_call_start_batch(s->call, ops, n, &s->tag_recv, NULL);
        if (e != GRPC_CALL_OK)
            return vr_error_set(err, VR_ERR_INTERNAL, "rpc %s: grpc_call_start_batch: %s", s->method,
                                grpc_call_error_to_string(e));
        grpc_completion_queue_pluck(s->cq, &s->tag_recv, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        s->got_init_md = 1;
        if (recv) {
            vr_status st = vr_rpc_buffer_read(recv, msg, len, err);
            grpc_byte_buffer_destroy(recv);
            if (st != VR_OK) vr_rpc_stream_cancel(s);
            return st;
        }
        s->done = 1;
    }
    wait_status(s);
    *done = 1;
    if (s->status != GRPC_STATUS_OK) {
        /* the method string already names the target */
        return vr_error_set(err, vr_rpc_status_from_code((int)s->status), "rpc %s: %s%s%s", s->method,
                            vr_rpc_status_name((int)s->status), s->status_msg && *s->status_msg ? ": " : "",
                            s->status_msg ? s->status_msg : "");
    }
    return VR_OK;
}

void vr_rpc_stream_status(const vr_rpc_stream *s, int *code, const char **message) {
    if (code) *code = s->status_done ? (int)s->status : -1;
    if (message) *message = s->status_msg ? s->status_msg : "";
}

void vr_rpc_stream_cancel(vr_rpc_stream *s) {
    if (s && s->call) grpc_call_cancel(s->call, NULL);
}

void vr_rpc_stream_free(vr_rpc_stream *s) {
    if (!s) return;
    if (s->status_started && !s->status_done) grpc_call_cancel(s->call, NULL);
    wait_status(s);
    grpc_metadata_array_destroy(&s->init_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_slice_unref(s->details);
    grpc_call_unref(s->call);
    drain_and_destroy(s->cq);
    free(s->status_msg);
    free(s->method);
    free(s);
}
