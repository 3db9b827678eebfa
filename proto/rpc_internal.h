/* proto/rpc_internal.h — helpers shared by rpc_server.c and rpc_client.c (gRPC library
 * reference count, byte buffers, deadlines). Private to proto/: must not be included elsewhere. */
#ifndef VR_RPC_INTERNAL_H
#define VR_RPC_INTERNAL_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include "proto/rpc.h"

/* grpc_init / grpc_shutdown, counted: the first ref initialises, the last unref shuts down. */
void vr_rpc_lib_ref(void);
void vr_rpc_lib_unref(void);

/* A byte buffer holding a copy of data (never NULL for len 0). Caller destroys it. */
grpc_byte_buffer *vr_rpc_buffer_from(const uint8_t *data, size_t len);
/* Copies a received buffer into a malloc'd block (1 byte minimum so a 0-length message still
 * gets a non-NULL pointer). VR_ERR_NOMEM when over VR_RPC_MAX_MESSAGE or out of memory. */
vr_status vr_rpc_buffer_read(grpc_byte_buffer *bb, uint8_t **out, size_t *len, vr_error *err);

/* Absolute monotonic deadline deadline_ms from now; infinite for deadline_ms <= 0. */
gpr_timespec vr_rpc_deadline(int64_t deadline_ms);

/* A NUL-terminated malloc'd copy of a slice (NULL when out of memory). */
char *vr_rpc_slice_strdup(grpc_slice s);

/* Fills the channel arguments (message size limits; for a server also no SO_REUSEPORT);
 * out points into args. */
void vr_rpc_channel_args(grpc_arg args[3], grpc_channel_args *out, int server);

#endif
