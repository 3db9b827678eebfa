/* tests/fuzz/service/fuzz_state_frame.c — arbitrary bytes as a session-state handoff frame
 * (worker/state_handoff.h): parsed or refused with a message, never a crash or an overread; a
 * frame that parses is written back byte for byte by vr_state_frame_begin plus its blobs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/state_handoff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) size = 1 << 16;
    uint8_t *copy = malloc(size ? size : 1); /* exact size: an overread shows under ASan */
    memcpy(copy, data, size);
    vr_state_frame f;
    vr_error err = {0};
    vr_status st = vr_state_frame_parse(copy, size, &f, &err);
    if (st != VR_OK) {
        if (st != VR_ERR_FORMAT || !err.msg[0]) abort();
        free(copy);
        return 0;
    }
    int n = f.layer_last - f.layer_first;
    size_t len = vr_state_frame_size(f.tenant, f.session, n, f.blob_size);
    if (len != size) abort();
    uint8_t *out = malloc(len);
    uint8_t *blobs = vr_state_frame_begin(&f, out, len, &err);
    if (!blobs) abort();
    memcpy(blobs, f.blobs, (size_t)n * f.blob_size);
    if (memcmp(out, copy, len) != 0) abort();
    free(out);
    free(copy);
    return 0;
}

int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes) {
    *seeds = malloc(2 * sizeof **seeds);
    *sizes = malloc(2 * sizeof **sizes);
    for (int i = 0; i < 2; i++) {
        vr_state_frame f;
        memset(&f, 0, sizeof f);
        f.key = 7 + (uint64_t)i;
        f.turn = i;
        f.tokens = 100 * i;
        f.layer_first = i;
        f.layer_last = i + 2;
        f.blob_size = 8;
        strcpy(f.tenant, "acme");
        strcpy(f.session, i ? "s-2" : "0123abcd");
        size_t n = vr_state_frame_size(f.tenant, f.session, 2, 8);
        uint8_t *b = malloc(n);
        uint8_t *blobs = vr_state_frame_begin(&f, b, n, NULL);
        for (int k = 0; k < 16; k++) blobs[k] = (uint8_t)(k * 7);
        (*seeds)[i] = b;
        (*sizes)[i] = n;
    }
    return 2;
}
