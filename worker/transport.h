/* worker/transport.h — the activation transport between pipeline stages: tagged, checksummed
 * frames to and from one peer, behind an ops table so NCCL can sit beside TCP.
 *
 * TCP frame (all integers little-endian), 32-byte header then the payload:
 *   0  magic    "VRTF"
 *   4  version  u16 (2: connections to a shard's listener open with a hello frame; 1 had none)
 *   6  flags    u16 (0; reserved)
 *   8  tag      u64  (the caller's: e.g. request id and step)
 *   16 length   u64  payload bytes
 *   24 crc      u32  CRC-32C of the payload
 *   28 hcrc     u32  CRC-32C of header bytes 0..27
 *
 * Errors: a frame that fails any check (magic, version, flags, header checksum, length over the
 * limit, unexpected tag, payload checksum) is refused with VR_ERR_FORMAT, and so is a frame
 * started but cut by a timeout (VR_ERR_CANCELLED): after either the connection is broken (shut
 * down) and every later call returns VR_ERR_UNAVAILABLE. A peer that closes or resets gives
 * VR_ERR_UNAVAILABLE. A receive timeout before any byte of the next frame arrived gives
 * VR_ERR_CANCELLED and leaves the connection usable.
 *
 * Threads: one thread may send while another receives on the same transport; two concurrent
 * senders (or receivers) must serialise themselves. Must not interpret payloads: tensors,
 * shapes and dtypes are the caller's business. */
#ifndef VR_TRANSPORT_H
#define VR_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vr_transport vr_transport;

typedef struct vr_transport_ops {
    vr_status (*send)(vr_transport *t, uint64_t tag, const void *data, size_t len, vr_error *err);
    /* a frame carrying tag_a or tag_b (the same tag twice: that one only); *got_tag says which */
    vr_status (*recv)(vr_transport *t, uint64_t tag_a, uint64_t tag_b, uint64_t *got_tag, void **data, size_t *len,
                      int timeout_ms, vr_error *err);
    const char *(*peer_name)(vr_transport *t);
    void (*close)(vr_transport *t);
    /* optional: 1 once a frame (or the peer's close or an error) can be received, 0 after
     * timeout_ms without; consumes nothing */
    int (*wait_readable)(vr_transport *t, int timeout_ms);
    /* breaks the link (why: for later calls' errors): a send or recv blocked in another thread
     * fails at once; safe to call while another thread uses the transport */
    void (*interrupt)(vr_transport *t, const char *why);
} vr_transport_ops;

/* Implementations embed this as their first member. */
struct vr_transport {
    const vr_transport_ops *ops;
};

#define VR_TRANSPORT_MAGIC "VRTF"
#define VR_TRANSPORT_VERSION 2
#define VR_TRANSPORT_HEADER_SIZE 32
#define VR_TRANSPORT_DEFAULT_MAX_FRAME ((size_t)1 << 30) /* 1 GiB */
/* A send that makes no progress for this long gives up (VR_ERR_CANCELLED, connection broken). */
#define VR_TRANSPORT_DEFAULT_SEND_STALL_MS 60000

/* Sends one frame (len may be 0; data may then be NULL). A frame over the sender's own limit is
 * refused with VR_ERR_INVALID before anything is written. */
vr_status vr_transport_send(vr_transport *t, uint64_t tag, const void *data, size_t len, vr_error *err);
/* Receives the next frame, which must carry expected_tag. *data is malloc'd (non-NULL even for
 * an empty frame; free it), *len its size. timeout_ms bounds the whole frame; < 0 waits forever. */
vr_status vr_transport_recv(vr_transport *t, uint64_t expected_tag, void **data, size_t *len, int timeout_ms,
                            vr_error *err);
/* The same for a frame that may carry either of two tags (a serving loop that takes data frames
 * and control frames); *got_tag (may be NULL) says which one came. */
vr_status vr_transport_recv_either(vr_transport *t, uint64_t tag_a, uint64_t tag_b, uint64_t *got_tag, void **data,
                                   size_t *len, int timeout_ms, vr_error *err);
/* Waits up to timeout_ms (< 0: forever) until recv would find something: 1, or 0 on timeout.
 * Lets a serving loop notice a stop request between frames without ever cutting a frame short
 * by a recv timeout. A transport that cannot tell returns 1 at once. */
int vr_transport_wait_readable(vr_transport *t, int timeout_ms);
/* "host:port" of the peer (for messages); never NULL. */
const char *vr_transport_peer_name(vr_transport *t);
/* Breaks the link for good: a thread blocked in send or recv on it fails at once, and every
 * later call fails saying why. Unlike close it frees nothing, so it may be called while
 * another thread uses the transport (which the caller closes once that thread is done with it).
 * NULL is ignored. */
void vr_transport_interrupt(vr_transport *t, const char *why);
/* Closes and frees; NULL is ignored. No other thread may be using t. */
void vr_transport_close(vr_transport *t);

/* ---- TCP ---- */

typedef struct vr_transport_listener vr_transport_listener;

/* Listens on bind_host (NULL = all interfaces) : port (0 = ephemeral; the port lands in
 * *bound_port, which may be NULL). */
vr_status vr_transport_tcp_listen(const char *bind_host, int port, int *bound_port, vr_transport_listener **out,
                                  vr_error *err);
/* Waits up to timeout_ms (< 0: forever) for one peer. Timeout: VR_ERR_CANCELLED. */
vr_status vr_transport_tcp_accept(vr_transport_listener *l, int timeout_ms, vr_transport **out, vr_error *err);
void vr_transport_listener_close(vr_transport_listener *l);

/* Connects within timeout_ms (< 0: the system's own limit). Refused or unreachable:
 * VR_ERR_UNAVAILABLE; timeout: VR_ERR_CANCELLED. */
vr_status vr_transport_tcp_connect(const char *host, int port, int timeout_ms, vr_transport **out, vr_error *err);

/* The same with "host:port" (an IPv6 host in brackets); a malformed address: VR_ERR_INVALID. */
vr_status vr_transport_tcp_connect_address(const char *address, int timeout_ms, vr_transport **out, vr_error *err);

/* Wraps a connected stream socket (TCP or a socketpair end) and takes ownership of fd, also on
 * failure. peer_name may be NULL (then it is asked from the socket). */
vr_status vr_transport_from_fd(int fd, const char *peer_name, vr_transport **out, vr_error *err);

/* TCP limits for one connection: max_frame bytes (0 keeps the current; default 1 GiB) applies
 * to both directions; send_stall_ms (0 keeps the current). VR_ERR_INVALID for a non-TCP
 * transport. */
vr_status vr_transport_tcp_set_limits(vr_transport *t, size_t max_frame, int send_stall_ms, vr_error *err);

/* ---- who connects: the first frame on a connection to a shard's transport listener ----
 * Tag VR_TRANSPORT_HELLO_TAG, a 1-byte payload: the connecting peer's role. The previous
 * pipeline stage sends activations on its connection; a vision worker sends image features
 * (worker/feature_delivery.h); a shard hands session states to its replacement
 * (worker/state_handoff.h). */
#define VR_TRANSPORT_HELLO_TAG 0x4f4c4c4548465256ull /* "VRFHELLO" little-endian */
typedef enum { VR_PEER_PREV_STAGE = 'P', VR_PEER_VISION = 'V', VR_PEER_SHARD_STATE = 'S' } vr_peer_role;
vr_status vr_transport_hello_send(vr_transport *t, vr_peer_role role, vr_error *err);
/* Receives the hello within timeout_ms; anything else (another tag, size or role): VR_ERR_FORMAT. */
vr_status vr_transport_hello_recv(vr_transport *t, int timeout_ms, vr_peer_role *role, vr_error *err);

/* ---- NCCL (worker/transport_nccl.c; builds with -DVRWKV_CUDA=ON and NCCL present) ----
 * Frames go as two ncclSend/ncclRecv pairs through device staging buffers: a 16-byte header
 * (tag u64, length u64, little-endian) then the payload. One process per GPU; every rank of
 * the communicator must call create concurrently (ncclCommInitRank is collective). A frame
 * to one's own rank (peer == rank, e.g. a one-rank communicator) goes through one grouped
 * ncclSend+ncclRecv at send time and waits in a queue for recv. A recv timeout aborts the
 * communicator (VR_ERR_CANCELLED, then VR_ERR_UNAVAILABLE): NCCL cannot withdraw a posted
 * receive. Frames go one way at a time: NCCL runs a communicator's operations in the order
 * they were issued, so a receive still waiting holds up a later send of the same rank (a
 * pipeline link only sends forward; the peer must not send while this rank waits to send).
 * Threads may call send and recv concurrently without harm (enqueues are serialised inside,
 * and an abort takes the same lock). The recv timeout covers the whole frame. In builds
 * without NCCL both calls return VR_ERR_UNAVAILABLE saying so. */
#define VR_NCCL_UNIQUE_ID_BYTES 128
/* VR_OK when this build has NCCL and a CUDA device is visible: the start-up check of
 * --transport nccl (unlike making an id, it leaves no NCCL bootstrap thread behind). */
vr_status vr_nccl_available(vr_error *err);
/* Writes a fresh ncclUniqueId (VR_NCCL_UNIQUE_ID_BYTES bytes) into id: rank 0 makes it and the
 * coordinator hands it to the other ranks. */
vr_status vr_nccl_unique_id(void *id, vr_error *err);
/* Joins the nranks-rank communicator named by unique_id as rank on CUDA device `device`, and
 * returns a transport that exchanges frames with rank `peer` (may equal rank). The join is
 * non-blocking underneath: when the other ranks have not all joined within timeout_ms (< 0:
 * no limit) the communicator is aborted and VR_ERR_CANCELLED returned. A pipeline link is a
 * 2-rank communicator: the receiving stage is rank 1, the sending stage rank 0. */
vr_status vr_transport_nccl_create(const void *unique_id, int nranks, int rank, int peer, int device, int timeout_ms,
                                   vr_transport **out, vr_error *err);
/* The UUID (VR_NCCL_DEVICE_UUID_BYTES) of CUDA device `device`: processes on one physical GPU see
 * the same one, whatever their CUDA_VISIBLE_DEVICES, and NCCL refuses two ranks on one GPU, so
 * two peers compare UUIDs before they try. Without NCCL: VR_ERR_UNAVAILABLE. */
#define VR_NCCL_DEVICE_UUID_BYTES 16
vr_status vr_nccl_device_uuid(int device, uint8_t *uuid, vr_error *err);

/* CRC-32C (Castagnoli) of buf, continuing from crc (start with 0). Exposed for tests and tools. */
uint32_t vr_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
