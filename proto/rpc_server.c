/* proto/rpc_server.c — the server half of the gRPC wrapper: a listener thread accepts calls on
 * a completion queue and runs each one's handler on its own thread; handlers block on per-call
 * pluck queues. Must not interpret messages or hold policy (auth, routing): handlers do that. */
#include "proto/rpc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>

#define MAX_METHODS 64
#define UNREGISTERED MAX_METHODS /* index of the catch-all acceptor in armed[] */

typedef struct {
    char *name;
    vr_rpc_kind kind;
    vr_rpc_handler fn;
    void *ctx;
    void *reg; /* grpc_server_register_method handle */
} method_entry;

struct vr_rpc_server {
    grpc_server *server;
    grpc_completion_queue *cq; /* accept notifications + the shutdown tag */
    char *addr;
    method_entry methods[MAX_METHODS];
    int n_methods;
    int started;
    int listener_ok;
    pthread_t listener;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int shutting_down;
    int shutdown_done;
    int n_active;              /* handler threads not yet finished */
    int armed[MAX_METHODS + 1];/* outstanding accept requests per method (listener only) */
    vr_rpc_call *done;         /* finished handler threads waiting to be joined */
    char shutdown_tag;
};

struct vr_rpc_call {
    vr_rpc_server *srv;
    int method; /* index into srv->methods, or UNREGISTERED */
    grpc_call *call;
    grpc_completion_queue *cq; /* pluck queue bound to this call */
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_call_details details;
    grpc_byte_buffer *payload;
    uint8_t *req;
    size_t req_len;
    char *method_name;
    char *peer;
    size_t n_md;
    char **md_keys;
    char **md_vals;
    size_t *md_lens;
    pthread_mutex_t mu; /* guards the close_* fields (is_cancelled may run on any thread) */
    int close_started, close_done, recv_cancelled;
    int md_sent, finished;
    pthread_t thread;
    vr_rpc_call *next;
    char tag_batch, tag_close;
};

/* ------------------------------------------------------------------ call lifetime */

static vr_rpc_call *call_new(vr_rpc_server *srv, int method) {
    vr_rpc_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->srv = srv;
    c->method = method;
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata_array_init(&c->md);
    grpc_call_details_init(&c->details);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

/* Releases everything gRPC-side (call, queue, metadata); every tag must have been plucked. */
static void call_release_grpc(vr_rpc_call *c) {
    if (c->call) grpc_call_unref(c->call);
    c->call = NULL;
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(c->cq);
        c->cq = NULL;
    }
    grpc_metadata_array_destroy(&c->md);
    grpc_call_details_destroy(&c->details);
    if (c->payload) grpc_byte_buffer_destroy(c->payload);
    c->payload = NULL;
}

static void call_free(vr_rpc_call *c) {
    for (size_t i = 0; i < c->n_md; i++) {
        free(c->md_keys[i]);
        free(c->md_vals[i]);
    }
    free(c->md_keys);
    free(c->md_vals);
    free(c->md_lens);
    free(c->req);
    free(c->peer);
    if (c->method == UNREGISTERED) free(c->method_name);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Requests one more call for `method` (listener thread or start only). */
static void arm(vr_rpc_server *srv, int method) {
    vr_rpc_call *c = call_new(srv, method);
    if (!c) return;
    grpc_call_error e;
    if (method == UNREGISTERED) {
        e = grpc_server_request_call(srv->server, &c->call, &c->details, &c->md, c->cq, srv->cq, c);
    } else {
        e = grpc_server_request_registered_call(srv->server, srv->methods[method].reg, &c->call,
                                                &c->deadline, &c->md, &c->payload, c->cq, srv->cq, c);
    }
    if (e != GRPC_CALL_OK) {
        call_release_grpc(c);
        call_free(c);
        return; /* retried on the listener's next tick */
    }
    srv->armed[method]++;
}

/* Copies what the handler may read (metadata, peer, request) out of gRPC's structures. */
static vr_status call_prepare(vr_rpc_call *c, vr_error *err) {
    if (c->method == UNREGISTERED) {
        c->method_name = vr_rpc_slice_strdup(c->details.method);
        if (!c->method_name) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        c->deadline = c->details.deadline;
    } else {
        c->method_name = c->srv->methods[c->method].name;
    }
    char *peer = grpc_call_get_peer(c->call);
    c->peer = strdup(peer ? peer : "");
    gpr_free(peer);
    if (!c->peer) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    size_t n = c->md.count;
    if (n) {
        c->md_keys = calloc(n, sizeof *c->md_keys);
        c->md_vals = calloc(n, sizeof *c->md_vals);
        c->md_lens = calloc(n, sizeof *c->md_lens);
        if (!c->md_keys || !c->md_vals || !c->md_lens) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            c->n_md = i + 1;
            c->md_keys[i] = vr_rpc_slice_strdup(c->md.metadata[i].key);
            c->md_vals[i] = vr_rpc_slice_strdup(c->md.metadata[i].value);
            c->md_lens[i] = GRPC_SLICE_LENGTH(c->md.metadata[i].value);
            if (!c->md_keys[i] || !c->md_vals[i]) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        }
    }
    if (c->method != UNREGISTERED) {
        vr_status st = vr_rpc_buffer_read(c->payload, &c->req, &c->req_len, err);
        if (st != VR_OK) return st;
    }
    return VR_OK;
}

/* Waits for the RECV_CLOSE_ON_SERVER op (it completes once the call is over). */
static void call_wait_close(vr_rpc_call *c) {
    pthread_mutex_lock(&c->mu);
    if (c->close_started && !c->close_done) {
        grpc_completion_queue_pluck(c->cq, &c->tag_close, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        c->close_done = 1;
    }
    pthread_mutex_unlock(&c->mu);
}

static void *handler_main(void *arg) {
    vr_rpc_call *c = arg;
    vr_rpc_server *srv = c->srv;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->recv_cancelled;
    c->close_started = grpc_call_start_batch(c->call, &op, 1, &c->tag_close, NULL) == GRPC_CALL_OK;

    vr_error err = {0};
    if (call_prepare(c, &err) != VR_OK) {
        vr_rpc_call_finish_error(c, &err);
    } else if (c->method == UNREGISTERED) {
        char msg[256];
        snprintf(msg, sizeof msg, "method %.200s is not implemented by this server", c->method_name);
        vr_rpc_call_finish(c, VR_RPC_STATUS_UNIMPLEMENTED, msg, NULL, 0, NULL);
    } else {
        method_entry *m = &srv->methods[c->method];
        m->fn(c, m->ctx);
    }
    if (!c->finished)
        vr_rpc_call_finish(c, VR_RPC_STATUS_INTERNAL, "the server's handler returned without a status",
                           NULL, 0, NULL);
    call_wait_close(c);
    call_release_grpc(c);

    pthread_mutex_lock(&srv->mu);
    srv->n_active--;
    c->next = srv->done;
    srv->done = c;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

static void reap(vr_rpc_server *srv) {
    pthread_mutex_lock(&srv->mu);
    vr_rpc_call *list = srv->done;
    srv->done = NULL;
    pthread_mutex_unlock(&srv->mu);
    while (list) {
        vr_rpc_call *next = list->next;
        pthread_join(list->thread, NULL);
        call_free(list);
        list = next;
    }
}

static void dispatch(vr_rpc_server *srv, vr_rpc_call *c) {
    pthread_mutex_lock(&srv->mu);
    int closing = srv->shutting_down;
    int ok = !closing && srv->n_active < VR_RPC_MAX_CALLS;
    if (ok) srv->n_active++;
    pthread_mutex_unlock(&srv->mu);
    if (ok && pthread_create(&c->thread, NULL, handler_main, c) != 0) {
        pthread_mutex_lock(&srv->mu);
        srv->n_active--;
        pthread_cond_broadcast(&srv->cv);
        pthread_mutex_unlock(&srv->mu);
        ok = 0;
    }
    if (ok) return;
    if (closing)
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE, "server is shutting down", NULL);
    else
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                     "server busy: too many calls in flight, retry later", NULL);
    call_release_grpc(c);
    call_free(c);
}

static void *listener_main(void *arg) {
    vr_rpc_server *srv = arg;
    for (;;) {
        gpr_timespec tick = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(100, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(srv->cq, tick, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        pthread_mutex_lock(&srv->mu);
        int closing = srv->shutting_down;
        pthread_mutex_unlock(&srv->mu);
        if (ev.type == GRPC_OP_COMPLETE) {
            if (ev.tag == &srv->shutdown_tag) {
                pthread_mutex_lock(&srv->mu);
                srv->shutdown_done = 1;
                pthread_cond_broadcast(&srv->cv);
                pthread_mutex_unlock(&srv->mu);
            } else {
                vr_rpc_call *c = ev.tag;
                srv->armed[c->method]--;
                if (!ev.success) {
                    call_release_grpc(c);
                    call_free(c);
                } else {
                    if (!closing) arm(srv, c->method);
                    dispatch(srv, c);
                }
            }
        }
        if (!closing) {
            for (int m = 0; m < srv->n_methods; m++)
                if (srv->armed[m] == 0) arm(srv, m);
            if (srv->armed[UNREGISTERED] == 0) arm(srv, UNREGISTERED);
        }
        reap(srv);
    }
    reap(srv);
    return NULL;
}

/* ------------------------------------------------------------------ server API */

vr_status vr_rpc_server_create(const char *addr, vr_rpc_server **out, vr_error *err) {
    *out = NULL;
    if (!addr || !*addr || !strchr(addr, ':'))
        return vr_error_set(err, VR_ERR_INVALID, "server address '%s' must be host:port (e.g. 0.0.0.0:50051)",
                            addr ? addr : "");
    vr_rpc_server *srv = calloc(1, sizeof *srv);
    if (!srv || !(srv->addr = strdup(addr))) {
        free(srv);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    vr_rpc_lib_ref();
    grpc_arg args[3];
    grpc_channel_args cargs;
    vr_rpc_channel_args(args, &cargs, 1);
    srv->server = grpc_server_create(&cargs, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = srv;
    return VR_OK;
}

vr_status vr_rpc_server_add_method(vr_rpc_server *srv, const char *method, vr_rpc_kind kind,
                                   vr_rpc_handler handler, void *ctx, vr_error *err) {
    if (!method || method[0] != '/' || !strchr(method + 1, '/'))
        return vr_error_set(err, VR_ERR_INVALID, "method '%s' must be a full path like /pkg.Service/Method",
                            method ? method : "");
    if (!handler || (kind != VR_RPC_UNARY && kind != VR_RPC_SERVER_STREAMING))
        return vr_error_set(err, VR_ERR_INVALID, "method %s: a handler and a known kind are required", method);
    if (srv->started)
        return vr_error_set(err, VR_ERR_INVALID, "method %s: methods must be added before the server starts", method);
    if (srv->n_methods == MAX_METHODS)
        return vr_error_set(err, VR_ERR_NOMEM, "method %s: more than %d methods", method, MAX_METHODS);
    for (int i = 0; i < srv->n_methods; i++)
        if (strcmp(srv->methods[i].name, method) == 0)
            return vr_error_set(err, VR_ERR_INVALID, "method %s is registered twice", method);
    method_entry *m = &srv->methods[srv->n_methods];
    m->name = strdup(method);
    if (!m->name) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    m->reg = grpc_server_register_method(srv->server, method, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (!m->reg) {
        free(m->name);
        m->name = NULL;
        return vr_error_set(err, VR_ERR_INVALID, "method %s could not be registered with gRPC", method);
    }
    m->kind = kind;
    m->fn = handler;
    m->ctx = ctx;
    srv->n_methods++;
    return VR_OK;
}

vr_status vr_rpc_server_start(vr_rpc_server *srv, int *bound_port, vr_error *err) {
    if (srv->started) return vr_error_set(err, VR_ERR_INVALID, "server on %s is already started", srv->addr);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(srv->server, srv->addr, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0)
        return vr_error_set(err, VR_ERR_UNAVAILABLE,
                            "cannot listen on %s: the address is in use or not a local host:port", srv->addr);
    grpc_server_start(srv->server);
    srv->started = 1;
    for (int m = 0; m < srv->n_methods; m++) arm(srv, m);
    arm(srv, UNREGISTERED);
    if (pthread_create(&srv->listener, NULL, listener_main, srv) != 0)
        return vr_error_set(err, VR_ERR_NOMEM, "cannot start the server's listener thread: %s", strerror(errno));
    srv->listener_ok = 1;
    if (bound_port) *bound_port = port;
    return VR_OK;
}

int vr_rpc_server_active_calls(vr_rpc_server *srv) {
    pthread_mutex_lock(&srv->mu);
    int n = srv->n_active;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

/* Waits on srv->cv until *flag is set or the absolute monotonic time `until` (NULL: forever). */
static int wait_flag(vr_rpc_server *srv, const int *flag, const struct timespec *until) {
    pthread_mutex_lock(&srv->mu);
    int timed_out = 0;
    while (!*flag && !timed_out) {
        if (until)
            timed_out = pthread_cond_timedwait(&srv->cv, &srv->mu, until) == ETIMEDOUT;
        else
            pthread_cond_wait(&srv->cv, &srv->mu);
    }
    int r = *flag;
    pthread_mutex_unlock(&srv->mu);
    return r;
}

void vr_rpc_server_shutdown_and_free(vr_rpc_server *srv, int64_t grace_ms) {
    if (!srv) return;
    if (srv->started && srv->listener_ok) {
        pthread_mutex_lock(&srv->mu);
        srv->shutting_down = 1;
        pthread_mutex_unlock(&srv->mu);
        grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        if (grace_ms < 0) grace_ms = 0;
        until.tv_sec += (time_t)(grace_ms / 1000);
        until.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (!wait_flag(srv, &srv->shutdown_done, &until)) grpc_server_cancel_all_calls(srv->server);
        wait_flag(srv, &srv->shutdown_done, NULL);
        pthread_mutex_lock(&srv->mu);
        while (srv->n_active > 0) pthread_cond_wait(&srv->cv, &srv->mu);
        pthread_mutex_unlock(&srv->mu);
        reap(srv);
        grpc_server_destroy(srv->server);
        grpc_completion_queue_shutdown(srv->cq);
        pthread_join(srv->listener, NULL);
    } else {
        /* Never served (or the listener failed to start): drive the queue here. */
        if (srv->started) {
            grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
            grpc_server_cancel_all_calls(srv->server);
        }
        int destroyed = !srv->started;
        if (destroyed) {
            grpc_server_destroy(srv->server);
            grpc_completion_queue_shutdown(srv->cq);
        }
        for (;;) {
            grpc_event ev = grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
            if (ev.type == GRPC_OP_COMPLETE && ev.tag != &srv->shutdown_tag) {
                vr_rpc_call *c = ev.tag;
                if (ev.success)
                    grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE, "server is shutting down", NULL);
                call_release_grpc(c);
                call_free(c);
                continue;
            }
            if (!destroyed) { /* the shutdown tag: nothing more will arrive */
                destroyed = 1;
                grpc_server_destroy(srv->server);
                grpc_completion_queue_shutdown(srv->cq);
            }
        }
    }
    grpc_completion_queue_destroy(srv->cq);
    for (int i = 0; i < srv->n_methods; i++) free(srv->methods[i].name);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv->addr);
    free(srv);
    vr_rpc_lib_unref();
}

/* ------------------------------------------------------------------ inside a handler */

const char *vr_rpc_call_method(const vr_rpc_call *c) { return c->method_name ? c->method_name : ""; }

void vr_rpc_call_request(const vr_rpc_call *c, const uint8_t **data, size_t *len) {
    static const uint8_t empty[1] = {0};
    *data = c->req ? c->req : empty;
    *len = c->req_len;
}

const char *vr_rpc_call_metadata(const vr_rpc_call *c, const char *key, size_t *len) {
    for (size_t i = 0; i < c->n_md; i++) {
        if (strcasecmp(c->md_keys[i], key) == 0) {
            if (len) *len = c->md_lens[i];
            return c->md_vals[i];
        }
    }
    if (len) *len = 0;
    return NULL;
}

const char *vr_rpc_call_peer(const vr_rpc_call *c) { return c->peer ? c->peer : ""; }

int64_t vr_rpc_call_remaining_ms(const vr_rpc_call *c) {
    gpr_timespec d = c->deadline;
    if (d.clock_type == GPR_TIMESPAN || gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0) return INT64_MAX;
    d = gpr_convert_clock_type(d, GPR_CLOCK_MONOTONIC);
    gpr_timespec left = gpr_time_sub(d, gpr_now(GPR_CLOCK_MONOTONIC));
    return (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
}

int vr_rpc_call_deadline_passed(const vr_rpc_call *c) { return vr_rpc_call_remaining_ms(c) <= 0; }

int vr_rpc_call_is_cancelled(vr_rpc_call *c) {
    pthread_mutex_lock(&c->mu);
    if (c->close_started && !c->close_done) {
        grpc_event ev = grpc_completion_queue_pluck(c->cq, &c->tag_close, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_OP_COMPLETE) c->close_done = 1;
    }
    int r = c->close_done && c->recv_cancelled;
    pthread_mutex_unlock(&c->mu);
    return r || vr_rpc_call_deadline_passed(c);
}

vr_status vr_rpc_call_send(vr_rpc_call *c, const uint8_t *data, size_t len, vr_error *err) {
    if (c->finished) return vr_error_set(err, VR_ERR_INVALID, "%s: send after finish", c->method_name);
    if (c->method == UNREGISTERED || c->srv->methods[c->method].kind != VR_RPC_SERVER_STREAMING)
        return vr_error_set(err, VR_ERR_INVALID, "%s: send on a unary call (use vr_rpc_call_finish)", c->method_name);
    if (len > (size_t)VR_RPC_MAX_MESSAGE)
        return vr_error_set(err, VR_ERR_NOMEM, "%s: a %zu byte message is over the %d byte limit", c->method_name,
                            len, VR_RPC_MAX_MESSAGE);
    if (vr_rpc_call_is_cancelled(c))
        return vr_error_set(err, VR_ERR_CANCELLED, "%s: the client cancelled or its deadline passed", c->method_name);
    grpc_byte_buffer *bb = vr_rpc_buffer_from(data, len);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (!c->md_sent) ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = bb;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tag_batch, NULL);
    if (e != GRPC_CALL_OK) {
        grpc_byte_buffer_destroy(bb);
        return vr_error_set(err, VR_ERR_INTERNAL, "%s: grpc_call_start_batch: %s", c->method_name,
                            grpc_call_error_to_string(e));
    }
    grpc_event ev = grpc_completion_queue_pluck(c->cq, &c->tag_batch, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    grpc_byte_buffer_destroy(bb);
    c->md_sent = 1;
    if (!ev.success)
        return vr_error_set(err, VR_ERR_CANCELLED, "%s: the client cancelled or went away", c->method_name);
    return VR_OK;
}

vr_status vr_rpc_call_finish(vr_rpc_call *c, int code, const char *message, const uint8_t *final_msg,
                             size_t final_len, vr_error *err) {
    if (c->finished) return vr_error_set(err, VR_ERR_INVALID, "%s: finished twice", vr_rpc_call_method(c));
    if (code < 0 || code > VR_RPC_STATUS_UNAUTHENTICATED) code = VR_RPC_STATUS_UNKNOWN;
    /* A handler that stops because the call is cancelled says CANCELLED; when the reason was
     * the deadline, the client must see DEADLINE_EXCEEDED whichever side noticed first. */
    if (code == VR_RPC_STATUS_CANCELLED && vr_rpc_call_deadline_passed(c)) code = VR_RPC_STATUS_DEADLINE_EXCEEDED;
    if (final_msg && final_len > (size_t)VR_RPC_MAX_MESSAGE) {
        final_msg = NULL;
        code = VR_RPC_STATUS_RESOURCE_EXHAUSTED;
        message = "the response is over the server's message size limit";
    }
    grpc_slice details = grpc_slice_from_copied_string(message ? message : "");
    grpc_byte_buffer *bb = final_msg ? vr_rpc_buffer_from(final_msg, final_len) : NULL;
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (!c->md_sent) ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = bb;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)code;
    ops[n++].data.send_status_from_server.status_details = &details;
    c->finished = 1;
    c->md_sent = 1;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tag_batch, NULL);
    vr_status st = VR_OK;
    if (e != GRPC_CALL_OK) {
        st = vr_error_set(err, VR_ERR_INTERNAL, "%s: grpc_call_start_batch: %s", vr_rpc_call_method(c),
                          grpc_call_error_to_string(e));
        grpc_call_cancel(c->call, NULL); /* so that the close op below completes */
    } else {
        grpc_event ev = grpc_completion_queue_pluck(c->cq, &c->tag_batch, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (!ev.success)
            st = vr_error_set(err, VR_ERR_CANCELLED, "%s: the client went away before the status", vr_rpc_call_method(c));
    }
    if (bb) grpc_byte_buffer_destroy(bb);
    grpc_slice_unref(details);
    call_wait_close(c);
    return st;
}

vr_status vr_rpc_call_finish_error(vr_rpc_call *c, const vr_error *e) {
    return vr_rpc_call_finish(c, vr_rpc_code_from_status(e->code), e->msg, NULL, 0, NULL);
}
