/* tests/unit/test_state.c — recurrent state blobs: a round trip restores the state exactly;
 * every corruption (magic, header, version, layer, fingerprint, shape, payload, length) is
 * refused with a message naming it and leaves the destination state untouched; snapshots
 * make the same blobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/state.h"

static vr_model_config small_cfg(void) {
    vr_model_config c;
    memset(&c, 0, sizeof c);
    c.n_embd = 32;
    c.n_head = 2;
    c.head_size = 16;
    c.n_layer = 4;
    return c;
}

static void fill(vr_state *s, float base) {
    size_t n = (size_t)(s->layer_last - s->layer_first) * s->layer_floats;
    for (size_t i = 0; i < n; i++) s->data[i] = base + (float)i * 0.25f;
}

static void test_roundtrip(void **st) {
    (void)st;
    vr_backend *be;
    vr_error err = {0};
    vr_model_config c = small_cfg();
    assert_int_equal(vr_backend_cpu_create(1, &be, &err), VR_OK);
    vr_state *a, *b;
    assert_int_equal(vr_state_create(be, &c, 1, 3, &a, &err), VR_OK);
    assert_int_equal(vr_state_create(be, &c, 1, 3, &b, &err), VR_OK);
    fill(a, 1.0f);
    size_t n = vr_state_blob_size(a);
    uint8_t *blob = malloc(n);
    for (int layer = 1; layer < 3; layer++) {
        assert_int_equal(vr_state_serialize_layer(a, layer, 42, blob, n, &err), VR_OK);
        assert_int_equal(vr_state_deserialize_layer(b, layer, 42, blob, n, &err), VR_OK);
    }
    assert_memory_equal(a->data, b->data, 2 * a->layer_floats * sizeof(float));
    /* layers outside the state are refused */
    assert_int_equal(vr_state_serialize_layer(a, 0, 42, blob, n, &err), VR_ERR_INVALID);
    assert_int_equal(vr_state_serialize_layer(a, 1, 42, blob, n - 1, &err), VR_ERR_INVALID);
    free(blob);
    vr_state_free(a);
    vr_state_free(b);
    vr_backend_free(be);
}

/* A snapshot's blobs are byte-identical to the state's own, and stay so after the state moves
 * on; the buffer is reused by the next take; layers outside are refused. */
static void test_snapshot(void **st) {
    (void)st;
    vr_backend *be;
    vr_error err = {0};
    vr_model_config c = small_cfg();
    assert_int_equal(vr_backend_cpu_create(1, &be, &err), VR_OK);
    vr_state *a;
    assert_int_equal(vr_state_create(be, &c, 1, 3, &a, &err), VR_OK);
    fill(a, 3.0f);
    size_t n = vr_state_blob_size(a);
    uint8_t *want = malloc(2 * n), *got = malloc(n);
    vr_state_snapshot snap;
    memset(&snap, 0, sizeof snap);
    assert_int_equal(vr_state_snapshot_take(a, &snap, &err), VR_OK);
    for (int layer = 1; layer < 3; layer++)
        assert_int_equal(vr_state_serialize_layer(a, layer, 7, want + (size_t)(layer - 1) * n, n, &err), VR_OK);
    fill(a, -5.0f); /* the state moves on; the snapshot does not */
    for (int layer = 1; layer < 3; layer++) {
        assert_int_equal(vr_state_snapshot_blob(&snap, layer, 7, got, n, &err), VR_OK);
        assert_memory_equal(got, want + (size_t)(layer - 1) * n, n);
    }
    float *buf = snap.data;
    assert_int_equal(vr_state_snapshot_take(a, &snap, &err), VR_OK);
    assert_ptr_equal(snap.data, buf);
    assert_int_equal(vr_state_snapshot_blob(&snap, 1, 7, got, n, &err), VR_OK);
    assert_int_equal(vr_state_serialize_layer(a, 1, 7, want, n, &err), VR_OK);
    assert_memory_equal(got, want, n);
    assert_int_equal(vr_state_snapshot_blob(&snap, 0, 7, got, n, &err), VR_ERR_INVALID);
    assert_int_equal(vr_state_snapshot_blob(&snap, 3, 7, got, n, &err), VR_ERR_INVALID);
    assert_int_equal(vr_state_snapshot_blob(&snap, 1, 7, got, n - 1, &err), VR_ERR_INVALID);
    vr_state_snapshot_release(&snap);
    assert_null(snap.data);
    free(want);
    free(got);
    vr_state_free(a);
    vr_backend_free(be);
}

typedef struct corruption {
    const char *what;
    size_t offset; /* byte to change; SIZE_MAX: truncate by one byte */
    int fix_header_checksum; /* recompute nothing: header checks come first */
    const char *needle;
    uint64_t fingerprint;
    int layer;
} corruption;

static void test_corruptions(void **st) {
    (void)st;
    vr_backend *be;
    vr_error err = {0};
    vr_model_config c = small_cfg();
    assert_int_equal(vr_backend_cpu_create(1, &be, &err), VR_OK);
    vr_state *a, *b, *other;
    assert_int_equal(vr_state_create(be, &c, 0, 4, &a, &err), VR_OK);
    assert_int_equal(vr_state_create(be, &c, 0, 4, &b, &err), VR_OK);
    vr_model_config c2 = c;
    c2.n_embd = 48;
    c2.n_head = 3;
    assert_int_equal(vr_state_create(be, &c2, 0, 4, &other, &err), VR_OK);
    fill(a, 3.0f);
    fill(b, -7.0f);
    size_t n = vr_state_blob_size(a);
    uint8_t *good = malloc(n), *bad = malloc(n + 8);
    assert_int_equal(vr_state_serialize_layer(a, 2, 99, good, n, &err), VR_OK);
    float *before = malloc(4 * b->layer_floats * sizeof(float));
    memcpy(before, b->data, 4 * b->layer_floats * sizeof(float));

    struct {
        size_t off;
        const char *needle;
    } flips[] = {{0, "magic"}, {9, "header"}, {20, "header"}, {30, "header"}, {41, "header"},
                 {64, "payload"}, {n - 1, "payload"}, {n / 2, "payload"}};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(bad, good, n);
        bad[flips[i].off] ^= 0x10;
        vr_status s = vr_state_deserialize_layer(b, 2, 99, bad, n, &err);
        assert_int_not_equal(s, VR_OK);
        if (!strstr(err.msg, flips[i].needle)) fail_msg("flip at %zu: '%s' lacks '%s'", flips[i].off, err.msg, flips[i].needle);
    }
    /* truncated and over-long */
    assert_int_equal(vr_state_deserialize_layer(b, 2, 99, good, n - 1, &err), VR_ERR_FORMAT);
    memcpy(bad, good, n);
    memset(bad + n, 0, 8);
    assert_int_equal(vr_state_deserialize_layer(b, 2, 99, bad, n + 8, &err), VR_ERR_FORMAT);
    assert_int_equal(vr_state_deserialize_layer(b, 2, 99, good, 10, &err), VR_ERR_FORMAT);
    /* another layer, another model, another shape */
    assert_int_equal(vr_state_deserialize_layer(b, 1, 99, good, n, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "layer 2"));
    assert_int_equal(vr_state_deserialize_layer(b, 2, 98, good, n, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "different model"));
    assert_int_not_equal(vr_state_deserialize_layer(other, 2, 99, good, n, &err), VR_OK);
    assert_non_null(strstr(err.msg, "shape"));
    /* nothing was applied */
    assert_memory_equal(before, b->data, 4 * b->layer_floats * sizeof(float));
    /* and the good blob still applies */
    assert_int_equal(vr_state_deserialize_layer(b, 2, 99, good, n, &err), VR_OK);
    assert_memory_equal(vr_state_wkv(a, 2), vr_state_wkv(b, 2), 2 * 16 * 16 * sizeof(float));
    free(good);
    free(bad);
    free(before);
    vr_state_free(a);
    vr_state_free(b);
    vr_state_free(other);
    vr_backend_free(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_snapshot),
                                       cmocka_unit_test(test_corruptions)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
