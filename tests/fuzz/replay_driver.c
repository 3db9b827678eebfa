/* tests/fuzz/replay_driver.c — runs a libFuzzer-style target without libFuzzer: a bounded,
 * deterministic mutation loop over the target's seeds, so every CI run fuzzes a little and
 * the sanitizer pass catches what it finds. Build the same target with clang -fsanitize=fuzzer
 * (and without this file) for open-ended fuzzing. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Each target provides its seeds: returns the number of seeds and fills seeds/sizes (malloc'd). */
int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes);

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 1000;
    uint8_t **seeds = NULL;
    size_t *sizes = NULL;
    int nseeds = vr_fuzz_seeds(&seeds, &sizes);
    if (nseeds <= 0) {
        fprintf(stderr, "no seeds\n");
        return 1;
    }
    for (int i = 0; i < nseeds; i++) LLVMFuzzerTestOneInput(seeds[i], sizes[i]);
    for (long it = 0; it < iters; it++) {
        int s = (int)(rng() % (uint64_t)nseeds);
        size_t n = sizes[s];
        size_t cap = n + 64;
        uint8_t *buf = malloc(cap);
        memcpy(buf, seeds[s], n);
        int muts = 1 + (int)(rng() % 8);
        for (int m = 0; m < muts; m++) {
            switch (rng() % 5) {
            case 0: if (n) buf[rng() % n] ^= (uint8_t)(1u << (rng() % 8)); break;
            case 1: if (n) buf[rng() % n] = (uint8_t)rng(); break;
            case 2: if (n) n = rng() % n; break; /* truncate */
            case 3: if (n < cap) buf[n++] = (uint8_t)rng(); break;
            case 4: if (n >= 4) { size_t p = rng() % (n - 3); uint32_t v = (uint32_t)rng(); memcpy(buf + p, &v, 4); } break;
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
    }
    for (int i = 0; i < nseeds; i++) free(seeds[i]);
    free(seeds);
    free(sizes);
    printf("fuzz replay: %d seeds, %ld mutated inputs, no crash\n", nseeds, iters);
    return 0;
}
