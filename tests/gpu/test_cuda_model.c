/* tests/gpu/test_cuda_model.c — the fixture cases (tests/support/model_checks.c, the same
 * checks the cpu backend passes in tests/unit/test_model_fixtures.c) on the cuda backend:
 * vision intermediates ≤ 1e-4, hidden states and logits ≤ 1e-3, greedy tokens identical up
 * to the first fragile step, the device argmax equal to the host's, batched decode equal to
 * single. Plain C; 77 without a GPU or without the fixtures (VRWKV_SHARED_DIR). */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "tests/support/fixtures.h"
#include "tests/support/model_checks.h"

int main(int argc, char **argv) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("SKIP: no CUDA device (cudaGetDeviceCount found none): the fixture cases on cuda need a GPU\n");
        return 77;
    }
    if (!vrt_shared_dir()) {
        printf("SKIP: fixtures not found: set VRWKV_SHARED_DIR to a folder with fixtures/README.md "
               "(tests/gpu/stage-fixtures.sh fills .gpu-fixtures/)\n");
        return 77;
    }
    const char *only = argc > 1 ? argv[1] : NULL; /* e.g. "tiny" */
    const char *sets[2] = {"tiny", "grid"};
    for (int i = 0; i < 2; i++) {
        if (only && strcmp(only, sets[i])) continue;
        printf("%s: forward (3 scan modes)...\n", sets[i]);
        fflush(stdout);
        vrt_run_forward_set(sets[i], "cuda");
        printf("ok   %s forward\n%s: multi-turn...\n", sets[i], sets[i]);
        fflush(stdout);
        vrt_run_multiturn_set(sets[i], "cuda");
        printf("ok   %s multiturn\n%s: text-only and demo...\n", sets[i], sets[i]);
        fflush(stdout);
        vrt_run_text_and_demo(sets[i], "cuda");
        printf("ok   %s text-only and demo\n", sets[i]);
    }
    vrt_batched_step_equals_single("cuda");
    printf("ok   batched decode equals single on cuda\nall fixture cases passed on cuda\n");
    return 0;
}
