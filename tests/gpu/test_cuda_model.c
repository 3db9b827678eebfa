/* tests/gpu/test_cuda_model.c — the fixture cases (tests/support/model_checks.c, the same
 * checks the cpu backend passes in tests/unit/test_model_fixtures.c) on the cuda backend:
 * vision intermediates ≤ 1e-4, hidden states and logits ≤ 1e-3, greedy tokens identical up
 * to the first fragile step, the device argmax equal to the host's, batched decode equal to
 * single. Plain C; 77 without a GPU or without the fixtures (VRWKV_SHARED_DIR). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/sampler.h"
#include "model/state.h"

#include "tests/support/fixtures.h"
#include "tests/support/model_checks.h"

/* Decode steps replayed from CUDA graphs give bit-identical logits to eager steps: three
 * sessions stepped 10 times, with batch sizes 3, 3, 2, 3, 1, ... (recording, replaying and
 * switching between recordings), once with graphs and once without, from equal states. */
static void graphs_equal_eager(void) {
    vr_engine *e = vrt_open_set("tiny", "cuda");
    vr_error err = {0};
    const int S = 3, STEPS = 10, V = e->cfg.vocab_size;
    static const int batch_of_step[10] = {3, 3, 3, 2, 3, 1, 3, 2, 2, 3};
    vr_session *a[3], *b[3];
    for (int i = 0; i < S; i++) {
        int32_t prompt[4] = {100 + i, 2000 + 7 * i, 33, 40000 + i};
        if (vr_session_create(e, VR_SCAN_BI, &a[i], &err) || vr_session_create(e, VR_SCAN_BI, &b[i], &err) ||
            vr_session_prefill(e, a[i], prompt, 4, NULL, 0, NULL, NULL, &err) ||
            vr_state_copy(b[i]->state, a[i]->state, &err))
            vrt_fail("graphs: setting up sessions: %s", err.msg);
    }
    float *la = malloc((size_t)S * V * sizeof(float)), *lb = malloc((size_t)S * V * sizeof(float));
    int32_t ta[3] = {5, 6, 7}, tb[3] = {5, 6, 7};
    for (int s = 0; s < STEPS; s++) {
        /* the sessions rotate: a replay must take this step's state pointers, not the recording's */
        int n = batch_of_step[s];
        vr_session *sa[3], *sb[3];
        int32_t ia[3], ib[3], who[3];
        for (int i = 0; i < n; i++) {
            who[i] = (i + s) % S;
            sa[i] = a[who[i]], sb[i] = b[who[i]], ia[i] = ta[who[i]], ib[i] = tb[who[i]];
        }
        e->graphs = 1;
        if (vr_sessions_step(e, sa, ia, n, la, &err) != VR_OK) vrt_fail("graphs: step %d with graphs: %s", s, err.msg);
        e->graphs = 0;
        if (vr_sessions_step(e, sb, ib, n, lb, &err) != VR_OK) vrt_fail("graphs: step %d eager: %s", s, err.msg);
        if (memcmp(la, lb, (size_t)n * V * sizeof(float)))
            vrt_fail("graphs: step %d (batch %d): replayed logits differ from eager ones", s, n);
        for (int i = 0; i < n; i++) ta[who[i]] = tb[who[i]] = vr_argmax(la + (size_t)i * V, V);
    }
    int recorded = e->be->ops->graph_ready && e->be->ops->graph_ready(e->be, 3) && e->be->ops->graph_ready(e->be, 2);
    if (!recorded) vrt_fail("graphs: the steps of batch 3 and 2 were not recorded");
    /* a replay that cannot refill its tables falls back to an eager step with the same logits:
     * only the failure count shows it (each key's last step here is a replay) */
    if (e->graph_fail[3] || e->graph_fail[2])
        vrt_fail("graphs: replays fell back to eager steps (failures in a row: batch 3: %d, batch 2: %d)",
                 e->graph_fail[3], e->graph_fail[2]);
    for (int i = 0; i < S; i++) {
        vr_session_free(a[i]);
        vr_session_free(b[i]);
    }
    free(la);
    free(lb);
    vr_engine_free(e);
}

/* A sampled turn chosen on the device (sample_rows, penalties included) equals the same turn
 * chosen by the host sampler from the same GPU logits: 3 parameter sets x 20 tokens. */
static void device_sampling_equals_host(void) {
    vr_engine *e = vrt_open_set("tiny", "cuda");
    vr_error err = {0};
    const int V = e->cfg.vocab_size, N = 20;
    static const float temps[3] = {1.0f, 0.8f, 1.3f}, tops[3] = {0.9f, 1.0f, 0.6f};
    static const int topk[3] = {0, 40, 0};
    float *logits = malloc((size_t)V * sizeof(float));
    for (int k = 0; k < 3; k++) {
        vr_sampling_params p;
        vr_sampling_params_default(&p);
        p.temperature = temps[k];
        p.top_p = tops[k];
        p.top_k = topk[k];
        p.presence_penalty = k == 2 ? 0.0f : 0.4f;
        p.frequency_penalty = k == 1 ? 0.0f : 0.3f;
        p.seed = 1000 + (uint64_t)k;
        vr_sampler *sd, *sh;
        vr_session *a, *b;
        int32_t prompt[5] = {11, 2222, 333, 44, 5555};
        if (vr_sampler_create(&p, V, &sd, &err) || vr_sampler_create(&p, V, &sh, &err) ||
            vr_session_create(e, VR_SCAN_BI, &a, &err) || vr_session_create(e, VR_SCAN_BI, &b, &err) ||
            vr_session_prefill(e, a, prompt, 5, NULL, 0, logits, NULL, &err) ||
            vr_session_prefill(e, b, prompt, 5, NULL, 0, NULL, NULL, &err))
            vrt_fail("sampling: setting up: %s", err.msg);
        int32_t td = vr_sampler_sample(sd, logits), th = vr_sampler_sample(sh, logits);
        for (int i = 0; i < N; i++) {
            if (td != th) vrt_fail("sampling set %d, token %d: device chose %d, host %d", k, i, td, th);
            int32_t in = td;
            float lg = 0, lp = 0;
            if (vr_sessions_step_sample(e, &a, &in, 1, &sd, &td, &lg, &lp, &err) != VR_OK)
                vrt_fail("sampling: device step: %s", err.msg);
            if (vr_sessions_step(e, &b, &in, 1, logits, &err) != VR_OK) vrt_fail("sampling: host step: %s", err.msg);
            th = vr_sampler_sample(sh, logits);
            if (td == th && (lg != logits[th] || fabs((double)lp - vr_logprob(logits, V, th)) > 1e-5))
                vrt_fail("sampling set %d, token %d: logit/logprob %g/%g, host %g/%g", k, i, (double)lg, (double)lp,
                         (double)logits[th], vr_logprob(logits, V, th));
        }
        vr_session_free(a);
        vr_session_free(b);
        vr_sampler_free(sd);
        vr_sampler_free(sh);
    }
    free(logits);
    vr_engine_free(e);
}

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
    graphs_equal_eager();
    printf("ok   decode steps replayed from CUDA graphs equal eager steps bit for bit\n");
    device_sampling_equals_host();
    printf("ok   sampled turns chosen on the GPU equal the host sampler's\n");
    printf("ok   batched decode equals single on cuda\nall fixture cases passed on cuda\n");
    return 0;
}
