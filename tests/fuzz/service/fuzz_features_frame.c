/* tests/fuzz/service/fuzz_features_frame.c — arbitrary bytes sent to a real features inbox (over a
 * socketpair, as one VR_FEATURES_TAG frame from a vision peer): the inbox answers every frame with
 * an acknowledgement whose verdict matches vr_features_frame_check, stores exactly the frame's
 * floats when it accepts, holds nothing when it refuses, and never crashes, hangs or leaks. The
 * one frame not acknowledged: one over the connection's frame limit (worker/frame_link.h cuts
 * such a peer off before reading it), which must be longer than this model's features frame,
 * and the cut must be a closed connection (never a timeout) with nothing stored. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/bytes.h"
#include "common/log.h"
#include "worker/feature_delivery.h"

enum { N_IMG = 2, N_EMBD = 3 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) size = 4096;
    vr_log_set_level(VR_LOG_ERROR); /* every refusal is logged as a warning: thousands of lines */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
    vr_transport *peer = NULL, *mine = NULL;
    vr_feature_inbox *in = NULL;
    vr_error err = {0};
    vr_feature_inbox_options o = {N_IMG, N_EMBD, 1 << 20, 60000, 1};
    if (vr_transport_from_fd(sv[0], "inbox", &peer, &err) != VR_OK) abort();
    if (vr_transport_from_fd(sv[1], "fuzz", &mine, &err) != VR_OK) abort();
    if (vr_feature_inbox_create(&o, &in, &err) != VR_OK) abort();
    if (vr_feature_inbox_serve(in, peer, &err) != VR_OK) abort();
    if (vr_transport_send(mine, VR_FEATURES_TAG, data, size, &err) != VR_OK) abort();
    void *ack = NULL;
    size_t alen = 0;
    vr_status rs = vr_transport_recv(mine, VR_FEATURES_ACK_TAG, &ack, &alen, 10000, &err);
    if (rs != VR_OK) {
        int entries = -1;
        vr_feature_inbox_usage(in, &entries, NULL);
        if (rs != VR_ERR_UNAVAILABLE || size <= VR_FEATURES_HEADER_SIZE + N_IMG * N_EMBD * sizeof(float) ||
            entries != 0)
            abort();
        vr_transport_close(mine);
        vr_feature_inbox_free(in);
        return 0;
    }
    if (alen < 12) abort();
    uint64_t key = 0;
    const uint8_t *floats = NULL;
    vr_error cerr = {0};
    vr_status want = vr_features_frame_check(data, size, N_IMG, N_EMBD, &key, &floats, &cerr);
    if ((vr_status)(int32_t)vr_get_u32le((uint8_t *)ack + 8) != want || vr_get_u64le(ack) != key) abort();
    free(ack);
    int entries = -1;
    vr_feature_inbox_usage(in, &entries, NULL);
    if (entries != (want == VR_OK)) abort();
    if (want == VR_OK) {
        float *got = NULL;
        if (vr_feature_inbox_take(in, key, &got, &err) != VR_OK) abort();
        if (memcmp(got, floats, N_IMG * N_EMBD * sizeof(float)) != 0) abort();
        free(got);
    } else if (cerr.msg[0] == 0) {
        abort(); /* a refusal always says why */
    }
    vr_transport_close(mine);
    vr_feature_inbox_free(in);
    return 0;
}

int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes) {
    *seeds = malloc(3 * sizeof **seeds);
    *sizes = malloc(3 * sizeof **sizes);
    for (int i = 0; i < 2; i++) {
        size_t n = VR_FEATURES_HEADER_SIZE + (size_t)N_IMG * N_EMBD * sizeof(float);
        uint8_t *f = calloc(1, n);
        memcpy(f, VR_FEATURES_MAGIC, 4);
        vr_put_u32le(f + 4, VR_FEATURES_VERSION);
        vr_put_u64le(f + 8, 0x1122334455667788ull + (uint64_t)i);
        vr_put_u32le(f + 16, N_IMG);
        vr_put_u32le(f + 20, i ? N_EMBD + 1 : N_EMBD); /* the second seed: another shape */
        for (int k = 0; k < N_IMG * N_EMBD; k++) {
            float v = 0.5f * (float)k - 1.0f;
            memcpy(f + VR_FEATURES_HEADER_SIZE + 4 * k, &v, 4);
        }
        (*seeds)[i] = f;
        (*sizes)[i] = n;
    }
    /* seed 2, like the 418-byte frame libFuzzer found: over the connection's frame limit, so it is
     * cut off without an ack (the target used to expect an ack for every frame and aborted) */
    size_t n = 418;
    uint8_t *f = calloc(1, n);
    memcpy(f, VR_FEATURES_MAGIC, 4);
    vr_put_u32le(f + 4, VR_FEATURES_VERSION);
    vr_put_u64le(f + 8, 0x89);
    (*seeds)[2] = f;
    (*sizes)[2] = n;
    return 3;
}
