/* tests/unit/test_model_fixtures.c — the engine against the upstream fixtures (README §7–§11)
 * on the cpu backend; the checks themselves are in tests/support/model_checks.c (shared with
 * the GPU tests): vision intermediates and features, input embeddings, hidden states, last
 * logits, greedy generations, multi-turn, text-only and the demo path, batched decode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "tests/support/fixtures.h"
#include "tests/support/model_checks.h"

static void test_tiny_forward(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vrt_run_forward_set("tiny", "cpu");
}
static void test_grid_forward(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vrt_run_forward_set("grid", "cpu");
}
static void test_tiny_multiturn(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vrt_run_multiturn_set("tiny", "cpu");
}
static void test_grid_multiturn(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vrt_run_multiturn_set("grid", "cpu");
}
static void test_tiny_text_demo(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vrt_run_text_and_demo("tiny", "cpu");
}
static void test_grid_text_demo(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vrt_run_text_and_demo("grid", "cpu");
}

static void test_batched_step_equals_single(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vrt_batched_step_equals_single("cpu");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_forward),     cmocka_unit_test(test_grid_forward),
        cmocka_unit_test(test_tiny_multiturn),   cmocka_unit_test(test_grid_multiturn),
        cmocka_unit_test(test_tiny_text_demo),   cmocka_unit_test(test_grid_text_demo),
        cmocka_unit_test(test_batched_step_equals_single),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
