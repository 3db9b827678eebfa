/* tests/fuzz/fuzz_transport_frame.c — arbitrary bytes arriving on a transport connection (through
 * a socketpair) are read as frames until the stream ends: every frame is accepted intact or
 * refused with an error, never a crash, hang or leak; an accepted frame's bytes match its
 * checksum. The frame limit is lowered to 1 MiB so a forged length cannot allocate much. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "worker/transport.h"

#define FUZZ_TAG 7
#define MAX_INPUT (64 * 1024) /* stays below the socket buffer, so one thread can write it all */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > MAX_INPUT) size = MAX_INPUT;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
    int bufsz = 4 * MAX_INPUT;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) abort();
        off += (size_t)w;
    }
    close(sv[1]); /* end of stream after the input */

    vr_transport *t = NULL;
    vr_error err = {0};
    if (vr_transport_from_fd(sv[0], "fuzz", &t, &err) != VR_OK) abort();
    if (vr_transport_tcp_set_limits(t, (size_t)1 << 20, 0, &err) != VR_OK) abort();
    for (int i = 0; i < 1000; i++) {
        void *frame = NULL;
        size_t len = 0;
        err.msg[0] = 0;
        vr_status s = vr_transport_recv(t, FUZZ_TAG, &frame, &len, 1000, &err);
        if (s != VR_OK) {
            /* the input is all there and the stream ends: never a timeout */
            if (s == VR_ERR_CANCELLED || frame || err.msg[0] == 0) abort();
            break;
        }
        if (!frame) abort();
        free(frame);
    }
    vr_transport_close(t);
    return 0;
}

static void frame_into(uint8_t *out, const void *payload, size_t len) {
    /* the real sender writes it: send into a socketpair and read the bytes back */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
    vr_transport *t = NULL;
    if (vr_transport_from_fd(sv[0], "seed", &t, NULL) != VR_OK) abort();
    if (vr_transport_send(t, FUZZ_TAG, payload, len, NULL) != VR_OK) abort();
    size_t got = 0, want = VR_TRANSPORT_HEADER_SIZE + len;
    while (got < want) {
        ssize_t r = read(sv[1], out + got, want - got);
        if (r <= 0) abort();
        got += (size_t)r;
    }
    vr_transport_close(t);
    close(sv[1]);
}

int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes) {
    static const char p1[] = "activations";
    float p2[16];
    for (int i = 0; i < 16; i++) p2[i] = (float)i * 0.5f - 3.0f;
    *seeds = malloc(3 * sizeof **seeds);
    *sizes = malloc(3 * sizeof **sizes);
    /* seed 0: one small frame; seed 1: an empty frame then a float frame; seed 2: header only */
    size_t n0 = VR_TRANSPORT_HEADER_SIZE + sizeof p1;
    (*seeds)[0] = malloc(n0);
    frame_into((*seeds)[0], p1, sizeof p1);
    (*sizes)[0] = n0;
    size_t n1 = 2 * VR_TRANSPORT_HEADER_SIZE + sizeof p2;
    (*seeds)[1] = malloc(n1);
    frame_into((*seeds)[1], NULL, 0);
    frame_into((*seeds)[1] + VR_TRANSPORT_HEADER_SIZE, p2, sizeof p2);
    (*sizes)[1] = n1;
    (*seeds)[2] = malloc(VR_TRANSPORT_HEADER_SIZE);
    frame_into((*seeds)[2], NULL, 0);
    (*sizes)[2] = VR_TRANSPORT_HEADER_SIZE;
    return 3;
}
