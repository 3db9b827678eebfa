/* tests/unit/test_sampler.c — the sampler: greedy/argmax ties and NaN, parameter checks, seeded
 * determinism, top-k/top-p limits and distributions (chi-square with a fixed seed and a generous
 * bound), presence/frequency penalties and their decay computed by hand. Needs no fixtures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <cmocka.h>

#include "model/sampler.h"

static vr_sampler *make(const vr_sampling_params *p, int n) {
    vr_sampler *s = NULL;
    vr_error err = {0};
    if (vr_sampler_create(p, n, &s, &err) != VR_OK) fail_msg("%s", err.msg);
    return s;
}

static void test_argmax(void **state) {
    (void)state;
    const float a[] = {1, 3, 2, 3};
    assert_int_equal(vr_argmax(a, 4), 1);
    const float b[] = {NAN, -1, NAN, 5, 5, NAN};
    assert_int_equal(vr_argmax(b, 6), 3);
    const float c[] = {NAN, NAN};
    assert_int_equal(vr_argmax(c, 2), 0);
    const float d[] = {-INFINITY, -INFINITY, -5};
    assert_int_equal(vr_argmax(d, 3), 2);
    const float e[] = {1, INFINITY, INFINITY};
    assert_int_equal(vr_argmax(e, 3), 1);
}

static void test_params(void **state) {
    (void)state;
    vr_sampling_params p;
    vr_sampling_params_default(&p);
    vr_error err = {0};
    assert_int_equal(vr_sampling_params_check(&p, &err), VR_OK);
    assert_true(p.temperature <= 0);
    assert_true(p.top_p == 1.0f);
    assert_true(fabsf(p.penalty_decay - 0.996f) < 1e-7f);
    struct {
        float temperature, top_p, decay, pres;
        int top_k;
        const char *needle;
    } bad[] = {
        {-1, 1, 0.996f, 0, 0, "temperature"},     {NAN, 1, 0.996f, 0, 0, "temperature"},
        {INFINITY, 1, 0.996f, 0, 0, "temperature"}, {1, 0, 0.996f, 0, 0, "top_p"},
        {1, 1.5f, 0.996f, 0, 0, "top_p"},         {1, NAN, 0.996f, 0, 0, "top_p"},
        {1, 1, 0.996f, 0, -1, "top_k"},           {1, 1, 1.5f, 0, 0, "penalty_decay"},
        {1, 1, -0.1f, 0, 0, "penalty_decay"},     {1, 1, 0.996f, NAN, 0, "presence_penalty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vr_sampling_params q = p;
        q.temperature = bad[i].temperature;
        q.top_p = bad[i].top_p;
        q.penalty_decay = bad[i].decay;
        q.presence_penalty = bad[i].pres;
        q.top_k = bad[i].top_k;
        assert_int_equal(vr_sampling_params_check(&q, &err), VR_ERR_INVALID);
        if (!strstr(err.msg, bad[i].needle)) fail_msg("case %zu: \"%s\" lacks %s", i, err.msg, bad[i].needle);
        vr_sampler *s = NULL;
        assert_int_equal(vr_sampler_create(&q, 10, &s, &err), VR_ERR_INVALID);
        assert_null(s);
    }
    vr_sampler *s = NULL;
    assert_int_equal(vr_sampler_create(&p, 0, &s, &err), VR_ERR_INVALID);
    vr_sampler_free(NULL);
}

static void test_greedy(void **state) {
    (void)state;
    vr_sampling_params p;
    vr_sampling_params_default(&p);
    vr_sampler *s = make(&p, 5);
    const float l[] = {NAN, 0.5f, 2.0f, 2.0f, NAN};
    for (int i = 0; i < 5; i++) assert_int_equal(vr_sampler_sample(s, l), 2);
    vr_sampler_free(s);
}

/* random logits with a fixed generator (for tests only) */
static void fill_logits(float *l, int n, unsigned seed) {
    uint64_t x = seed * 2654435761u + 1;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 8.0 - 4.0);
    }
}

static void test_determinism(void **state) {
    (void)state;
    enum { N = 1000, STEPS = 200 };
    float *l = malloc(sizeof(float) * N);
    vr_sampling_params p;
    vr_sampling_params_default(&p);
    p.temperature = 1.0f;
    p.top_p = 0.9f;
    p.top_k = 50;
    p.presence_penalty = 0.3f;
    p.frequency_penalty = 0.3f;
    p.seed = 1234;
    vr_sampler *a = make(&p, N), *b = make(&p, N);
    p.seed = 1235;
    vr_sampler *c = make(&p, N);
    int32_t first[STEPS];
    int differ = 0;
    for (int t = 0; t < STEPS; t++) {
        fill_logits(l, N, (unsigned)t);
        int32_t x = vr_sampler_sample(a, l), y = vr_sampler_sample(b, l), z = vr_sampler_sample(c, l);
        assert_int_equal(x, y);
        differ += x != z;
        first[t] = x;
        assert_true(x >= 0 && x < N);
    }
    assert_true(differ > 0);
    /* reset replays the same sequence */
    vr_sampler_reset(a);
    for (int t = 0; t < STEPS; t++) {
        fill_logits(l, N, (unsigned)t);
        assert_int_equal(vr_sampler_sample(a, l), first[t]);
    }
    vr_sampler_free(a);
    vr_sampler_free(b);
    vr_sampler_free(c);
    free(l);
}

static void test_topk1_and_tiny_topp_are_greedy(void **state) {
    (void)state;
    enum { N = 4096 };
    float *l = malloc(sizeof(float) * N);
    for (int mode = 0; mode < 2; mode++) {
        vr_sampling_params p;
        vr_sampling_params_default(&p);
        p.temperature = 1.5f;
        p.seed = 7;
        if (mode == 0) p.top_k = 1;
        else p.top_p = 1e-6f;
        vr_sampler *s = make(&p, N);
        for (int t = 0; t < 50; t++) {
            fill_logits(l, N, (unsigned)t + 100);
            l[(t * 37) % N] = 10.0f; /* a tie: the first index must win */
            l[(t * 37 + 11) % N] = 10.0f;
            int32_t want = vr_argmax(l, N);
            assert_int_equal(vr_sampler_sample(s, l), want);
        }
        vr_sampler_free(s);
    }
    free(l);
}

static void test_nan_never_sampled(void **state) {
    (void)state;
    vr_sampling_params p;
    vr_sampling_params_default(&p);
    p.temperature = 1.0f;
    p.seed = 3;
    vr_sampler *s = make(&p, 6);
    const float l[] = {NAN, 0.0f, NAN, 0.0f, -INFINITY, NAN};
    for (int i = 0; i < 500; i++) {
        int32_t t = vr_sampler_sample(s, l);
        assert_true(t == 1 || t == 3);
    }
    /* +inf dominates */
    const float m[] = {0.0f, INFINITY, 5.0f, INFINITY, NAN, -INFINITY};
    for (int i = 0; i < 200; i++) {
        int32_t t = vr_sampler_sample(s, m);
        assert_true(t == 1 || t == 3);
    }
    vr_sampler_free(s);
}

/* Draws n samples and returns the chi-square statistic against want[] (over k categories). */
static double chi_square(vr_sampler *s, const float *l, int k, const double *want, int n, int *hist) {
    memset(hist, 0, sizeof(int) * (size_t)k);
    for (int i = 0; i < n; i++) {
        int32_t t = vr_sampler_sample(s, l);
        assert_true(t >= 0 && t < k);
        hist[t]++;
    }
    double chi = 0;
    for (int i = 0; i < k; i++) {
        double e = want[i] * n;
        if (e == 0) {
            if (hist[i] != 0) fail_msg("token %d drawn %d times but has probability 0", i, hist[i]);
            continue;
        }
        chi += (hist[i] - e) * (hist[i] - e) / e;
    }
    return chi;
}

static void test_distribution(void **state) {
    (void)state;
    enum { K = 8, DRAWS = 40000 };
    const double pr[K] = {0.30, 0.20, 0.15, 0.12, 0.10, 0.07, 0.04, 0.02};
    float l[K];
    for (int i = 0; i < K; i++) l[i] = (float)log(pr[i]);
    int hist[K];
    double want[K];

    /* T = 1, no cut: the softmax itself. 7 degrees of freedom; 50 is far beyond p = 1e-7 */
    vr_sampling_params p;
    vr_sampling_params_default(&p);
    p.temperature = 1.0f;
    p.seed = 42;
    vr_sampler *s = make(&p, K);
    for (int i = 0; i < K; i++) want[i] = pr[i];
    double chi = chi_square(s, l, K, want, DRAWS, hist);
    printf("chi-square T=1: %.2f\n", chi);
    assert_true(chi < 50);
    vr_sampler_free(s);

    /* T = 2: p^(1/2) renormalised */
    p.temperature = 2.0f;
    s = make(&p, K);
    double z = 0;
    for (int i = 0; i < K; i++) z += sqrt(pr[i]);
    for (int i = 0; i < K; i++) want[i] = sqrt(pr[i]) / z;
    chi = chi_square(s, l, K, want, DRAWS, hist);
    printf("chi-square T=2: %.2f\n", chi);
    assert_true(chi < 50);
    vr_sampler_free(s);

    /* top_k = 3 */
    p.temperature = 1.0f;
    p.top_k = 3;
    s = make(&p, K);
    for (int i = 0; i < K; i++) want[i] = i < 3 ? pr[i] / 0.65 : 0;
    chi = chi_square(s, l, K, want, DRAWS, hist);
    printf("chi-square top_k=3: %.2f\n", chi);
    assert_true(chi < 50);
    vr_sampler_free(s);

    /* top_p = 0.6: 0.30 + 0.20 = 0.50 < 0.6, + 0.15 = 0.65 >= 0.6 -> the first three */
    p.top_k = 0;
    p.top_p = 0.6f;
    s = make(&p, K);
    chi = chi_square(s, l, K, want, DRAWS, hist);
    printf("chi-square top_p=0.6: %.2f\n", chi);
    assert_true(chi < 50);
    vr_sampler_free(s);

    /* top_k = 5 then top_p = 0.7 of the renormalised top-5 mass (0.87): 0.30+0.20 = 0.5 < 0.609,
     * + 0.15 = 0.65 >= 0.609 -> the first three again */
    p.top_k = 5;
    p.top_p = 0.7f;
    s = make(&p, K);
    chi = chi_square(s, l, K, want, DRAWS, hist);
    assert_true(chi < 50);
    vr_sampler_free(s);
}

static void test_penalties(void **state) {
    (void)state;
    vr_sampling_params p;
    vr_sampling_params_default(&p);

    /* presence: logits {1.0, 0.9, 0.5}; after token 0, 1.0 - 0.2 = 0.8 < 0.9 */
    p.presence_penalty = 0.2f;
    vr_sampler *s = make(&p, 3);
    const float a[] = {1.0f, 0.9f, 0.5f};
    assert_int_equal(vr_sampler_sample(s, a), 0);
    assert_int_equal(vr_sampler_sample(s, a), 1);
    /* now both 0 and 1 carry the penalty: 0.8 vs 0.7 */
    assert_int_equal(vr_sampler_sample(s, a), 0);
    vr_sampler_free(s);

    /* frequency with decay 0.996: logits {2, 1, 0}, freq 0.6.
     * step 1: no counts -> 0; counts {1}.  step 2: 2 - 0.6 = 1.4 -> 0; counts {0.996 + 1 = 1.996}.
     * step 3: 2 - 1.1976 = 0.8024 < 1 -> 1. */
    vr_sampling_params_default(&p);
    p.frequency_penalty = 0.6f;
    s = make(&p, 3);
    const float b[] = {2.0f, 1.0f, 0.0f};
    assert_int_equal(vr_sampler_sample(s, b), 0);
    assert_int_equal(vr_sampler_sample(s, b), 0);
    assert_int_equal(vr_sampler_sample(s, b), 1);
    vr_sampler_free(s);

    /* decay: freq 1, decay 0.5; accept 0 then 1 -> counts {0.5, 1}; logits {1, 1, 0.6}:
     * 0.5, 0.0, 0.6 -> 2. With decay 1: counts {1, 1} -> 0, 0, 0.6 -> 2 as well, so also check
     * a case where decay decides: logits {1.45, 1.0, 0.6}: decay 0.5 -> 0.95 wins; decay 1 -> 0.6 wins. */
    vr_sampling_params_default(&p);
    p.frequency_penalty = 1.0f;
    p.penalty_decay = 0.5f;
    s = make(&p, 3);
    vr_sampler_accept(s, 0);
    vr_sampler_accept(s, 1);
    const float c[] = {1.45f, 1.0f, 0.6f};
    assert_int_equal(vr_sampler_sample(s, c), 0);
    vr_sampler_free(s);
    p.penalty_decay = 1.0f;
    s = make(&p, 3);
    vr_sampler_accept(s, 0);
    vr_sampler_accept(s, 1);
    assert_int_equal(vr_sampler_sample(s, c), 2);
    /* reset forgets the counts */
    vr_sampler_reset(s);
    assert_int_equal(vr_sampler_sample(s, c), 0);
    vr_sampler_free(s);

    /* decay 0: the count vanishes but, as in upstream's dict, the presence penalty stays */
    vr_sampling_params_default(&p);
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 10.0f;
    p.penalty_decay = 0.0f;
    s = make(&p, 3);
    vr_sampler_accept(s, 0);
    vr_sampler_accept(s, 2); /* count[0] -> 0 */
    const float d[] = {1.0f, 0.6f, -5.0f};
    assert_int_equal(vr_sampler_sample(s, d), 1); /* 1.0 - 0.5 = 0.5 < 0.6 */
    vr_sampler_free(s);

    /* out-of-range tokens (the image placeholder) are ignored by accept */
    vr_sampling_params_default(&p);
    p.presence_penalty = 1.0f;
    s = make(&p, 3);
    vr_sampler_accept(s, -200);
    vr_sampler_accept(s, 3);
    assert_int_equal(vr_sampler_sample(s, a), 0);
    vr_sampler_free(s);
}

/* The choice rule itself (kernels/sample.c, which a GPU follows too): the draw walks the kept
 * tokens in increasing id order; top-k keeps ties by the smaller id; top-p keeps the smallest
 * best-ranked set reaching its share; NaN and -inf never count. */
static void test_pick_rule(void **state) {
    (void)state;
    vr_sample_cand cand[6];
    uint8_t kept[6];
    const float flat[4] = {0, 0, 0, 0};
    vr_sample_row row = {1.0f, 1.0f, 0, 0.6};
    assert_int_equal(vr_sample_pick(flat, 4, &row, cand, kept), 2); /* r = 2.4: third of four equal shares */
    row.u = 0.0;
    assert_int_equal(vr_sample_pick(flat, 4, &row, cand, kept), 0);
    row.u = 0.999999;
    assert_int_equal(vr_sample_pick(flat, 4, &row, cand, kept), 3);
    row.top_k = 2; /* ties: ids 0 and 1 are kept */
    row.u = 0.6;
    assert_int_equal(vr_sample_pick(flat, 4, &row, cand, kept), 1); /* r = 1.2 of 2 */
    const float ranked[4] = {0, 3, 2, 1}; /* p ~ e^-3, 1, e^-1, e^-2 */
    vr_sample_row nucleus = {1.0f, 0.5f, 0, 0.99};
    assert_int_equal(vr_sample_pick(ranked, 4, &nucleus, cand, kept), 1); /* only id 1 reaches half */
    nucleus.top_p = 0.7f; /* 1 / 1.553 = 0.644 < 0.7: ids 1 and 2 are kept, walked as 1 then 2 */
    nucleus.u = 0.1;
    assert_int_equal(vr_sample_pick(ranked, 4, &nucleus, cand, kept), 1);
    nucleus.u = 0.9;
    assert_int_equal(vr_sample_pick(ranked, 4, &nucleus, cand, kept), 2);
    const float odd[6] = {NAN, -INFINITY, 1, NAN, 1, -INFINITY};
    vr_sample_row any = {1.0f, 1.0f, 0, 0.75};
    assert_int_equal(vr_sample_pick(odd, 6, &any, cand, kept), 4); /* ids 2 and 4 only; r = 1.5 */
    const float none[3] = {NAN, -INFINITY, NAN};
    assert_int_equal(vr_sample_pick(none, 3, &any, cand, kept), 1); /* nothing positive: argmax */
    vr_sample_row greedy = {0.0f, 1.0f, 0, 0.5};
    assert_int_equal(vr_sample_pick(ranked, 4, &greedy, cand, kept), 1);
}

static void test_speed(void **state) {
    (void)state;
    enum { N = 65536, STEPS = 200 };
    float *l = malloc(sizeof(float) * N);
    vr_sampling_params p;
    vr_sampling_params_default(&p);
    p.temperature = 1.0f;
    p.top_p = 0.9f;
    p.presence_penalty = 0.1f;
    p.frequency_penalty = 0.1f;
    p.seed = 9;
    vr_sampler *s = make(&p, N);
    double total = 0;
    for (int t = 0; t < STEPS; t++) {
        fill_logits(l, N, (unsigned)t);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int32_t tok = vr_sampler_sample(s, l);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        total += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        assert_true(tok >= 0 && tok < N);
    }
    printf("sampler: %.3f ms per token (vocab %d, T=1, top_p=0.9)\n", 1e3 * total / STEPS, N);
    vr_sampler_free(s);
    free(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argmax),       cmocka_unit_test(test_params),
        cmocka_unit_test(test_greedy),       cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_topk1_and_tiny_topp_are_greedy),
        cmocka_unit_test(test_nan_never_sampled),
        cmocka_unit_test(test_distribution), cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_pick_rule),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
