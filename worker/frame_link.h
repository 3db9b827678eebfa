/* worker/frame_link.h — acknowledged frames from a worker to a shard's transport listener: the
 * side path beside the activations, used for image features (vision worker -> stage 0) and for
 * session states handed from a shard to its replacement. Must not interpret payloads.
 *
 * The client connects, says hello with its role, then sends one frame per item under the
 * server's tag; the server hands each frame to its handler and answers every frame with an
 * acknowledgement under the ack tag: key u64 (the handler's, from the frame), status i32
 * (0 = done, else a vr_status), then a UTF-8 message (no terminator). A client reports success
 * only for an acknowledged frame, so what it sent has been taken when the call returns.
 *
 * NCCL for the payloads: a client told to use it (vr_frame_client_use_nccl) offers it right
 * after its hello; a server told to accept it (vr_frame_server_use_nccl) checks that the two are
 * on different GPUs, and then both join a 2-rank communicator (the client rank 0, the server,
 * which made the id when it accepted, rank 1). The TCP connection stays: it carries the control frames and the
 * acknowledgements, and each payload goes over NCCL after a small announce on TCP (its length
 * and CRC-32C), so the server posts an NCCL receive only for a frame that is coming. Whatever
 * stops NCCL (a build or a peer without it, one GPU for both ends, a join that fails, a broken
 * link) leaves the frames on TCP, and that client offers NCCL to that address no more.
 * Control frames, tag VR_FRAME_NCCL_TAG from the client and VR_FRAME_NCCL_ANSWER_TAG from the
 * server, little-endian, kind[4] then:
 *   "VRNO" offer    uuid[16] of the client's GPU
 *   "VRNA" answer   status i32: 0, then the communicator's unique id[128] (join now); else why
 *                   not, as UTF-8 (a declined offer leaves no NCCL id behind)
 *   "VRNR" ready    status i32 of the server's join, then a UTF-8 message
 *   "VRNC" confirm  status i32 of the client's join, then a UTF-8 message (NCCL is used only
 *                   when both joins succeeded)
 *   "VRND" data     length u64, CRC-32C u32 of the payload that follows over NCCL */
#ifndef VR_FRAME_LINK_H
#define VR_FRAME_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "worker/transport.h"

#define VR_FRAME_NCCL_TAG 0x54434c43434e5256ull        /* "VRNCCLCT" little-endian */
#define VR_FRAME_NCCL_ANSWER_TAG 0x4e414c43434e5256ull /* "VRNCCLAN" little-endian */
/* how long each end waits for the other's part of the NCCL handshake (the join included) */
#define VR_FRAME_NCCL_JOIN_MS 15000

/* ---- server side: one thread per connection ---- */

typedef struct vr_frame_server vr_frame_server;

/* Takes one frame: sets *key (for the ack) and returns the verdict. VR_ERR_FORMAT also ends the
 * connection after the ack: a peer that sends garbage is not served further. */
typedef vr_status (*vr_frame_handler)(void *ctx, const uint8_t *frame, size_t len, uint64_t *key, vr_error *err);

/* max_frame: the largest frame a connection may bring (its TCP frame limit); a peer that claims
 * more is cut off before anything is allocated. */
vr_status vr_frame_server_create(uint64_t tag, uint64_t ack_tag, int max_peers, size_t max_frame,
                                 vr_frame_handler handler, void *ctx, vr_frame_server **out, vr_error *err);
/* Accepts NCCL offers from clients on other GPUs, joining as CUDA device `device` (call before
 * the first serve). Without it every offer is declined and frames stay on TCP. */
void vr_frame_server_use_nccl(vr_frame_server *fs, int device);
/* Serves a connection (after its hello) from a thread of its own until the peer goes away or the
 * server is freed. Takes ownership of t, also on failure (too many peers). */
vr_status vr_frame_server_serve(vr_frame_server *fs, vr_transport *t, vr_error *err);
/* Stops the connection threads (each notices within a quarter second between frames) and
 * closes their connections. NULL is ignored. */
void vr_frame_server_free(vr_frame_server *fs);

/* ---- client side: one kept connection ---- */

typedef struct vr_frame_client vr_frame_client;

vr_status vr_frame_client_create(vr_peer_role role, uint64_t tag, uint64_t ack_tag, vr_frame_client **out,
                                 vr_error *err);
/* Sends frame to the server behind address ("host:port") and waits up to timeout_ms for its
 * acknowledgement, which must carry key (connecting takes at most VR_FRAME_CONNECT_MS of it).
 * The connection is kept for the next frame to the same address; one the server turns out to
 * have closed is replaced once and the frame sent again (a timeout is not retried: the server
 * may still take the frame). A refusal comes back as its status with the server's message (the
 * connection stays). One frame at a time per client. */
#define VR_FRAME_CONNECT_MS 2000
vr_status vr_frame_client_send(vr_frame_client *c, const char *address, uint64_t key, const void *frame, size_t len,
                               int timeout_ms, vr_error *err);
/* Offers NCCL (as CUDA device `device`) on each new connection; see the top of this file. */
void vr_frame_client_use_nccl(vr_frame_client *c, int device);
/* 1 when the kept connection sends its payloads over NCCL (for logs and tests). */
int vr_frame_client_on_nccl(vr_frame_client *c);
void vr_frame_client_free(vr_frame_client *c);

#endif
