/* tests/fuzz/fuzz_state_blob.c — arbitrary bytes as a recurrent-state blob: refused or applied,
 * never a crash; an accepted blob re-serialises to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/state.h"

static vr_backend *be;
static vr_state *state;

static void setup(void) {
    if (state) return;
    vr_model_config c;
    memset(&c, 0, sizeof c);
    c.n_embd = 8;
    c.n_head = 2;
    c.head_size = 4;
    c.n_layer = 2;
    vr_backend_cpu_create(1, &be, NULL);
    vr_state_create(be, &c, 0, 2, &state, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    vr_error err;
    if (vr_state_deserialize_layer(state, 1, 7, data, size, &err) == VR_OK) {
        uint8_t *again = malloc(size);
        if (vr_state_serialize_layer(state, 1, 7, again, size, &err) != VR_OK || memcmp(again, data, size) != 0)
            abort();
        free(again);
    }
    return 0;
}

int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes) {
    setup();
    size_t n = vr_state_blob_size(state);
    *seeds = malloc(2 * sizeof **seeds);
    *sizes = malloc(2 * sizeof **sizes);
    for (int i = 0; i < 2; i++) {
        for (size_t j = 0; j < state->layer_floats * 2; j++) state->data[j] = (float)j * (i ? -1.0f : 0.5f);
        (*seeds)[i] = malloc(n);
        (*sizes)[i] = n;
        vr_state_serialize_layer(state, 1, 7, (*seeds)[i], n, NULL);
    }
    return 2;
}

/* the state and backend live for the whole process */
