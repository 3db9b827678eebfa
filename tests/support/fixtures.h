/* tests/support/fixtures.h — finding ../shared, reading fixture JSON and raw arrays, and
 * comparing float arrays. Tests only; the library never reads fixtures. */
#ifndef VR_TEST_FIXTURES_H
#define VR_TEST_FIXTURES_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* The shared/ folder (env VRWKV_SHARED_DIR, else the build-time default), or NULL when absent.
 * When absent, tests call skip() after printing a loud message. */
const char *vrt_shared_dir(void);
/* "<shared>/fixtures/<rel>" in a static buffer (one at a time). */
const char *vrt_fixture_path(const char *rel);
/* Skips the current cmocka test loudly when shared/ is missing. Returns the fixtures path. */
#define VRT_REQUIRE_SHARED()                                                                 \
    do {                                                                                     \
        if (!vrt_shared_dir()) {                                                             \
            fprintf(stderr, "SKIP: ../shared not found (set VRWKV_SHARED_DIR); fixture "     \
                            "test %s cannot run\n", __func__);                               \
            skip();                                                                          \
        }                                                                                    \
    } while (0)

/* Fails the current test with a message: cmocka's fail (tests/support/fail_cmocka.c) in the
 * unit tests, print-and-exit(1) in the plain-C GPU tests (tests/gpu/fail_plain.c). */
void vrt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Parses fixtures/<rel> (e.g. "tiny/forward.json"). Fails the test on error. */
cJSON *vrt_load_json(const char *rel);
/* Loads an array reference {"file","dtype","shape"}; returns malloc'd data and element count.
 * Fails the test when the file is missing or its size does not match the shape. */
void *vrt_load_array(const cJSON *ref, size_t *count);
/* JSON int array -> malloc'd int32 array. */
int32_t *vrt_json_ints(const cJSON *arr, int *count);
/* max |a-b| over n floats. */
float vrt_max_abs_diff(const float *a, const float *b, size_t n);

#endif
