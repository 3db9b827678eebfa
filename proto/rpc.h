/* proto/rpc.h — the one thin wrapper over the gRPC C core (completion-queue API), used by the
 * coordinator and the workers, server side and client side. Messages are opaque bytes here
 * (callers pack/unpack them with the protobuf-c code generated from the .proto files).
 * Must not know any vrwkv message or policy, and must stay the only code that calls
 * grpc_call_start_batch. No grpc header leaks out of this file.
 *
 * Model: sync-over-async. The server has one listener thread that accepts calls and runs each
 * call's handler on its own thread (at most VR_RPC_MAX_CALLS at once; beyond that a call is
 * refused with RESOURCE_EXHAUSTED). A handler blocks in vr_rpc_call_send/finish; it must poll
 * vr_rpc_call_is_cancelled between units of work. The client calls are blocking too.
 * gRPC itself is initialised by the first server/channel and shut down with the last. */
#ifndef VR_RPC_H
#define VR_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

enum {
    VR_RPC_MAX_MESSAGE = 64 << 20, /* bytes, both directions, both sides */
    VR_RPC_MAX_CALLS = 1024        /* concurrent handler threads per server */
};

/* gRPC status codes (same values as grpc_status_code). */
typedef enum {
    VR_RPC_STATUS_OK = 0,
    VR_RPC_STATUS_CANCELLED = 1,
    VR_RPC_STATUS_UNKNOWN = 2,
    VR_RPC_STATUS_INVALID_ARGUMENT = 3,
    VR_RPC_STATUS_DEADLINE_EXCEEDED = 4,
    VR_RPC_STATUS_NOT_FOUND = 5,
    VR_RPC_STATUS_ALREADY_EXISTS = 6,
    VR_RPC_STATUS_PERMISSION_DENIED = 7,
    VR_RPC_STATUS_RESOURCE_EXHAUSTED = 8,
    VR_RPC_STATUS_FAILED_PRECONDITION = 9,
    VR_RPC_STATUS_ABORTED = 10,
    VR_RPC_STATUS_OUT_OF_RANGE = 11,
    VR_RPC_STATUS_UNIMPLEMENTED = 12,
    VR_RPC_STATUS_INTERNAL = 13,
    VR_RPC_STATUS_UNAVAILABLE = 14,
    VR_RPC_STATUS_DATA_LOSS = 15,
    VR_RPC_STATUS_UNAUTHENTICATED = 16
} vr_rpc_code;

/* vr_status -> gRPC code: INVALID->INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE,
 * AUTH->UNAUTHENTICATED, CANCELLED, NOMEM->RESOURCE_EXHAUSTED, UNSUPPORTED->UNIMPLEMENTED,
 * FORMAT->INVALID_ARGUMENT, OK->OK, others INTERNAL. */
int vr_rpc_code_from_status(vr_status st);
/* gRPC code -> vr_status (DEADLINE_EXCEEDED -> CANCELLED, PERMISSION_DENIED -> AUTH, ...). */
vr_status vr_rpc_status_from_code(int code);
/* "OK", "UNAUTHENTICATED", ...; "UNKNOWN_CODE" for values outside 0..16. */
const char *vr_rpc_status_name(int code);

typedef struct {
    const char *key; /* lowercase ASCII; keys ending in "-bin" carry binary values */
    const char *value;
} vr_rpc_metadata;

/* ---------------------------------------------------------------- server */

typedef struct vr_rpc_server vr_rpc_server;
typedef struct vr_rpc_call vr_rpc_call;

typedef enum {
    VR_RPC_UNARY = 1,           /* one request, one response (given to vr_rpc_call_finish) */
    VR_RPC_SERVER_STREAMING = 2 /* one request, any number of vr_rpc_call_send, then finish */
} vr_rpc_kind;

/* Runs on the call's own thread. Should end with vr_rpc_call_finish; when it returns without
 * finishing, the wrapper answers INTERNAL. The call is freed after the handler returns. */
typedef void (*vr_rpc_handler)(vr_rpc_call *call, void *ctx);

/* addr: "host:port", e.g. "127.0.0.1:0" (port 0: the system picks; see vr_rpc_server_start)
 * or "0.0.0.0:50051". Plaintext (TLS is terminated in front of the service). */
vr_status vr_rpc_server_create(const char *addr, vr_rpc_server **out, vr_error *err);
/* method: the full path, "/vrwkv.v1.Vrwkv/Generate". Only before vr_rpc_server_start.
 * Calls to unregistered methods are answered UNIMPLEMENTED. */
vr_status vr_rpc_server_add_method(vr_rpc_server *srv, const char *method, vr_rpc_kind kind,
                                   vr_rpc_handler handler, void *ctx, vr_error *err);
/* Binds the address and starts serving; *bound_port (may be NULL) gets the real port. */
vr_status vr_rpc_server_start(vr_rpc_server *srv, int *bound_port, vr_error *err);
/* Stops accepting, lets in-flight calls run for up to grace_ms, then cancels them (their
 * handlers see vr_rpc_call_is_cancelled and failing sends), waits for every handler thread to
 * return, and frees everything. A handler that never polls cancellation blocks this. NULL ok. */
void vr_rpc_server_shutdown_and_free(vr_rpc_server *srv, int64_t grace_ms);
/* Calls currently being handled (for tests and load reporting). */
int vr_rpc_server_active_calls(vr_rpc_server *srv);

/* --- inside a handler (one thread at a time per call, except is_cancelled: any thread) --- */

/* The method path the call was made to. */
const char *vr_rpc_call_method(const vr_rpc_call *call);
/* The request message bytes (empty when the client sent an empty message). Valid until the
 * handler returns. */
void vr_rpc_call_request(const vr_rpc_call *call, const uint8_t **data, size_t *len);
/* The value of request metadata `key` (case-insensitive), or NULL. For "-bin" keys, *len gets
 * the decoded length (values may hold NUL bytes); len may be NULL. Valid until the handler
 * returns. */
const char *vr_rpc_call_metadata(const vr_rpc_call *call, const char *key, size_t *len);
/* "ipv4:127.0.0.1:43210"-style peer description. */
const char *vr_rpc_call_peer(const vr_rpc_call *call);
/* Milliseconds left before the client's deadline; INT64_MAX when it set none; <= 0: passed. */
int64_t vr_rpc_call_remaining_ms(const vr_rpc_call *call);
int vr_rpc_call_deadline_passed(const vr_rpc_call *call);
/* 1 when the client cancelled, disconnected, its deadline passed or the server is shutting
 * down and cancelled the call. Cheap (no blocking): poll it between tokens. */
int vr_rpc_call_is_cancelled(vr_rpc_call *call);
/* Sends one streamed message (the response headers go first, on first use). Blocks while the
 * transport applies flow control. VR_ERR_CANCELLED when the call is gone; VR_ERR_INVALID on a
 * unary call or after finish; VR_ERR_NOMEM when over VR_RPC_MAX_MESSAGE. */
vr_status vr_rpc_call_send(vr_rpc_call *call, const uint8_t *data, size_t len, vr_error *err);
/* Ends the call with a status. final_msg: a last message to send first (a unary response:
 * required on OK, and an empty protobuf message is a non-NULL pointer with final_len 0), or
 * NULL for none. message: the status text the client sees (NULL = none). Once per call.
 * CANCELLED after the deadline passed is sent as DEADLINE_EXCEEDED.
 * VR_ERR_CANCELLED when the client was already gone (nothing more to do). */
vr_status vr_rpc_call_finish(vr_rpc_call *call, int code, const char *message,
                             const uint8_t *final_msg, size_t final_len, vr_error *err);
/* Finishes with vr_rpc_code_from_status(e->code) and e->msg. */
vr_status vr_rpc_call_finish_error(vr_rpc_call *call, const vr_error *e);

/* ---------------------------------------------------------------- client */

typedef struct vr_rpc_channel vr_rpc_channel;
typedef struct vr_rpc_stream vr_rpc_stream;

/* target: "host:port" or any gRPC target URI ("dns:///coordinator:50051"). Plaintext.
 * Connects lazily: an unreachable target shows up as UNAVAILABLE on the first call. */
vr_status vr_rpc_channel_create(const char *target, vr_rpc_channel **out, vr_error *err);
/* Cancels nothing by itself: free every stream of the channel first. NULL ok. */
void vr_rpc_channel_free(vr_rpc_channel *ch);

/* One unary call. deadline_ms: relative timeout, <= 0 for none. On return (any status),
 * grpc_status (may be NULL) gets the gRPC code (or -1 when the call could not be made) and
 * *status_message (may be NULL; free() it) the server's status text or NULL. *resp (free() it)
 * is set only on success. Returns VR_OK iff the status is OK; otherwise the mapped vr_status
 * with err naming the method, the code and the server's message. */
vr_status vr_rpc_unary(vr_rpc_channel *ch, const char *method, const vr_rpc_metadata *md,
                       int n_md, const uint8_t *req, size_t req_len, int64_t deadline_ms,
                       uint8_t **resp, size_t *resp_len, int *grpc_status,
                       char **status_message, vr_error *err);

/* Starts a server-streaming call (sends the one request). */
vr_status vr_rpc_stream_open(vr_rpc_channel *ch, const char *method, const vr_rpc_metadata *md,
                             int n_md, const uint8_t *req, size_t req_len, int64_t deadline_ms,
                             vr_rpc_stream **out, vr_error *err);
/* Blocks for the next message: *msg (free() it) and *len with *done = 0; at the end of the
 * stream *done = 1 and *msg = NULL, returning VR_OK when the status is OK, else the mapped
 * vr_status (see vr_rpc_stream_status for the code and text). */
vr_status vr_rpc_stream_next(vr_rpc_stream *s, uint8_t **msg, size_t *len, int *done,
                             vr_error *err);
/* Only after next reported done: the gRPC code and the status text ("" when none). */
void vr_rpc_stream_status(const vr_rpc_stream *s, int *code, const char **message);
/* Cancels the call; a next() blocked in another thread returns with CANCELLED. Thread-safe. */
void vr_rpc_stream_cancel(vr_rpc_stream *s);
/* Cancels the call if it is not finished and frees it. NULL ok. */
void vr_rpc_stream_free(vr_rpc_stream *s);

/* ---------------------------------------------------------------- health */

/* The grpc.health.v1.Health/Check service (Watch answers UNIMPLEMENTED, which the protocol
 * allows). The health object must outlive the server it is added to. */
typedef struct vr_rpc_health vr_rpc_health;
vr_status vr_rpc_health_create(vr_rpc_health **out, vr_error *err);
/* serving: 1 SERVING, 0 NOT_SERVING. service "" is the server as a whole (SERVING at
 * creation); other names are unknown (NOT_FOUND) until set. At most 32 names. Thread-safe. */
vr_status vr_rpc_health_set(vr_rpc_health *h, const char *service, int serving, vr_error *err);
vr_status vr_rpc_health_add_to(vr_rpc_health *h, vr_rpc_server *srv, vr_error *err);
void vr_rpc_health_free(vr_rpc_health *h);

#endif
