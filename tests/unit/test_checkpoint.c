/* tests/unit/test_checkpoint.c — the .pth / .safetensors loader and writers: the fixture
 * checkpoints against model.json (names, order, dtypes, shapes, sha256, sums), error paths on
 * corrupt input (each naming the file and tensor), and write → re-open round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mapped_file.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/pickle.h"
#include "tests/support/fixtures.h"
#include "tests/support/sha256.h"

/* ---------------------------------------------------------------------------------------------
 * helpers */

static char g_tmpdir[256];

static int setup_tmp(void **state) {
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/vrt_ckpt_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_tmpdir)) return -1;
    return 0;
}

static int teardown_tmp(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name) {
    static char p[2][512];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s", g_tmpdir, name);
    return p[k];
}

static uint8_t *read_all(const char *path, size_t *size) {
    char *data = NULL;
    vr_error err = {0};
    if (vr_read_file(path, (size_t)1 << 31, &data, size, &err) != VR_OK) fail_msg("%s", err.msg);
    return (uint8_t *)data;
}

/* Asserts st == code and that the message contains each of the given substrings. */
static void expect_error(vr_status st, const vr_error *err, vr_status code, const char *s1, const char *s2) {
    if (st != code) fail_msg("expected %s, got %s: %s", vr_status_name(code), vr_status_name(st), err->msg);
    if (s1 && !strstr(err->msg, s1)) fail_msg("message \"%s\" does not mention \"%s\"", err->msg, s1);
    if (s2 && !strstr(err->msg, s2)) fail_msg("message \"%s\" does not mention \"%s\"", err->msg, s2);
}

static vr_dtype dtype_of(const char *s) {
    if (!strcmp(s, "bfloat16")) return VR_BF16;
    if (!strcmp(s, "float16")) return VR_F16;
    if (!strcmp(s, "float32")) return VR_F32;
    if (!strcmp(s, "int64")) return VR_I64;
    if (!strcmp(s, "int32")) return VR_I32;
    fail_msg("unknown dtype %s", s);
    return VR_U8;
}

static double tensor_sum(const vr_tensor *t) {
    int64_t n = vr_tensor_numel(t);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case VR_BF16: s += vr_bf16_to_f32(((const uint16_t *)t->data)[i]); break;
        case VR_F16: s += vr_f16_to_f32(((const uint16_t *)t->data)[i]); break;
        case VR_F32: s += ((const float *)t->data)[i]; break;
        case VR_I64: s += (double)((const int64_t *)t->data)[i]; break;
        case VR_I32: s += ((const int32_t *)t->data)[i]; break;
        case VR_U8: s += ((const uint8_t *)t->data)[i]; break;
        }
    }
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * fixtures against model.json */

static void check_fixture(const char *set, int expect_position_ids) {
    char rel[64];
    snprintf(rel, sizeof rel, "%s/model.json", set);
    cJSON *mj = vrt_load_json(rel);
    snprintf(rel, sizeof rel, "%s/model.pth", set);
    vr_checkpoint *ck = NULL;
    vr_error err = {0};
    if (vr_checkpoint_open(vrt_fixture_path(rel), &ck, &err) != VR_OK) fail_msg("%s", err.msg);
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(mj, "tensors");
    assert_int_equal(vr_checkpoint_count(ck), cJSON_GetArraySize(tensors));
    int i = 0;
    const cJSON *tj;
    cJSON_ArrayForEach(tj, tensors) {
        const vr_checkpoint_entry *e = vr_checkpoint_entry_at(ck, i);
        const char *name = cJSON_GetObjectItemCaseSensitive(tj, "name")->valuestring;
        assert_string_equal(e->name, name);
        assert_ptr_equal(vr_checkpoint_find(ck, name), &e->tensor);
        assert_int_equal(e->tensor.dtype, dtype_of(cJSON_GetObjectItemCaseSensitive(tj, "dtype")->valuestring));
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(tj, "shape");
        assert_int_equal(e->tensor.ndim, cJSON_GetArraySize(shape));
        for (int d = 0; d < e->tensor.ndim; d++)
            assert_int_equal(e->tensor.shape[d], (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble);
        char hex[65];
        vrt_sha256_hex(e->tensor.data, vr_tensor_nbytes(&e->tensor), hex);
        const char *want = cJSON_GetObjectItemCaseSensitive(tj, "sha256_le")->valuestring;
        if (strcmp(hex, want) != 0) fail_msg("%s: sha256 %s, expected %s", name, hex, want);
        double sum = tensor_sum(&e->tensor);
        double ref = cJSON_GetObjectItemCaseSensitive(tj, "sum_f64")->valuedouble;
        if (fabs(sum - ref) > 1e-6 * fmax(1.0, fabs(ref))) fail_msg("%s: sum %.10g, expected %.10g", name, sum, ref);
        i++;
    }
    const vr_tensor *pos = vr_checkpoint_find(ck, "vit.vision_model.embeddings.position_ids");
    if (expect_position_ids) {
        assert_non_null(pos);
        assert_int_equal(pos->dtype, VR_I64);
        assert_int_equal(pos->ndim, 2);
        assert_int_equal(pos->shape[0], 1);
        assert_int_equal(pos->shape[1], 17);
        for (int k = 0; k < 17; k++) assert_int_equal(((const int64_t *)pos->data)[k], k);
    } else {
        assert_null(pos);
    }
    assert_null(vr_checkpoint_find(ck, "no.such.tensor"));
    assert_null(vr_checkpoint_entry_at(ck, -1));
    assert_null(vr_checkpoint_entry_at(ck, vr_checkpoint_count(ck)));
    assert_string_equal(vr_checkpoint_path(ck), vrt_fixture_path(rel));
    /* A few exact elements: emb[0][0..] upcast equals the bf16 bits shifted. */
    const vr_tensor *emb = vr_checkpoint_find(ck, "rwkv.emb.weight");
    uint16_t b0 = ((const uint16_t *)emb->data)[0];
    uint32_t u = (uint32_t)b0 << 16;
    float f;
    memcpy(&f, &u, 4);
    assert_true(vr_bf16_to_f32(b0) == f);
    vr_checkpoint_free(ck);
    cJSON_Delete(mj);
}

static void test_fixture_tiny(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    check_fixture("tiny", 1);
}

static void test_fixture_grid(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    check_fixture("grid", 0);
}

/* ---------------------------------------------------------------------------------------------
 * corrupt .pth input */

static void test_truncated_pth(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    size_t size;
    uint8_t *data = read_all(vrt_fixture_path("tiny/model.pth"), &size);
    size_t cuts[] = {0, 1, 2, 3, 4, 29, 30, 64, 100, 5000, 23000, 23600, 30000, 4000000, 8412303, size / 2,
                     size - 100, size - 60, size - 23, size - 22, size - 21, size - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        vr_checkpoint *ck = NULL;
        vr_error err = {0};
        uint8_t *copy = malloc(cuts[k] ? cuts[k] : 1);
        memcpy(copy, data, cuts[k]);
        vr_status st = vr_checkpoint_open_memory(copy, cuts[k], "cut.pth", &ck, &err);
        if (st == VR_OK) fail_msg("a cut at %zu of %zu bytes was accepted", cuts[k], size);
        assert_null(ck);
        expect_error(st, &err, VR_ERR_FORMAT, "cut.pth", NULL);
        free(copy);
    }
    /* Many more cuts, no crash and no acceptance. */
    for (size_t cut = 0; cut < size; cut += 104729) {
        vr_checkpoint *ck = NULL;
        vr_error err = {0};
        assert_int_not_equal(vr_checkpoint_open_memory(data, cut, "cut.pth", &ck, &err), VR_OK);
        assert_non_null(strstr(err.msg, "cut.pth"));
    }
    free(data);
}

/* data.pkl of the tiny fixture, located through the zip's first local header. */
static const uint8_t *find_pickle(const uint8_t *data, size_t size, size_t *len) {
    assert_true(size > 30);
    size_t name_len = (size_t)(data[26] | (data[27] << 8)), extra = (size_t)(data[28] | (data[29] << 8));
    assert_memory_equal(data + 30, "model/data.pkl", 14);
    *len = 23508; /* from the central directory; the local header has a data descriptor */
    return data + 30 + name_len + extra;
}

static void test_truncated_pickle(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    size_t size, plen;
    uint8_t *data = read_all(vrt_fixture_path("tiny/model.pth"), &size);
    const uint8_t *pkl = find_pickle(data, size, &plen);
    vr_pickle *pk = NULL;
    vr_error err = {0};
    assert_int_equal(vr_pickle_load(pkl, plen, "data.pkl", &pk, &err), VR_OK);
    const vr_pk_value *root = vr_pickle_root(pk);
    assert_int_equal(root->kind, VR_PK_DICT);
    assert_int_equal(root->n, 2 * 159);
    vr_pickle_free(pk);
    for (size_t cut = 0; cut < plen; cut += (cut < 400 ? 1 : 37)) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, pkl, cut);
        pk = NULL;
        vr_status st = vr_pickle_load(copy, cut, "data.pkl", &pk, &err);
        if (st == VR_OK) fail_msg("pickle cut at %zu accepted", cut);
        expect_error(st, &err, VR_ERR_FORMAT, "data.pkl", NULL);
        assert_null(pk);
        free(copy);
    }
    free(data);
}

static void test_wrong_magic(void **state) {
    (void)state;
    vr_checkpoint *ck = NULL;
    vr_error err = {0};
    const char *text = "this is not a checkpoint at all, just some text\n";
    expect_error(vr_checkpoint_open_memory(text, strlen(text), "text.bin", &ck, &err), &err, VR_ERR_FORMAT,
                 "text.bin", "header length");
    expect_error(vr_checkpoint_open_memory("", 0, "empty.pth", &ck, &err), &err, VR_ERR_FORMAT, "empty.pth", NULL);
    uint8_t pk[64] = {'P', 'K', 3, 4};
    expect_error(vr_checkpoint_open_memory(pk, sizeof pk, "bad.pth", &ck, &err), &err, VR_ERR_FORMAT, "bad.pth",
                 "end-of-central-directory");
    expect_error(vr_checkpoint_open("/nonexistent/dir/model.pth", &ck, &err), &err, VR_ERR_IO,
                 "/nonexistent/dir/model.pth", NULL);
    assert_null(ck);
}

static void test_unsupported_opcode(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    size_t size, plen;
    uint8_t *data = read_all(vrt_fixture_path("tiny/model.pth"), &size);
    uint8_t *pkl = (uint8_t *)find_pickle(data, size, &plen);
    assert_int_equal(pkl[34], 'X'); /* BINUNICODE 'rwkv.emb.weight' */
    pkl[34] = 'I';                  /* INT (text protocol 0): not in the subset */
    vr_checkpoint *ck = NULL;
    vr_error err = {0};
    expect_error(vr_checkpoint_open_memory(data, size, "model.pth", &ck, &err), &err, VR_ERR_UNSUPPORTED,
                 "opcode 0x49", "offset 34");
    assert_non_null(strstr(err.msg, "model.pth"));
    pkl[34] = 'X';
    /* A memo reference that was never stored. */
    assert_int_equal(pkl[179], 'h');
    pkl[180] = 200;
    expect_error(vr_checkpoint_open_memory(data, size, "model.pth", &ck, &err), &err, VR_ERR_FORMAT, "model.pth",
                 "memo");
    pkl[180] = 0;
    /* Unknown storage class. */
    uint8_t *p = memmem(pkl, plen, "torch\nBFloat16Storage\n", 22);
    assert_non_null(p);
    memcpy(p + 6, "BFloat32", 8);
    expect_error(vr_checkpoint_open_memory(data, size, "model.pth", &ck, &err), &err, VR_ERR_UNSUPPORTED,
                 "rwkv.emb.weight", "BFloat32Storage");
    memcpy(p + 6, "BFloat16", 8);
    /* Compressed member: patch the method in the first central-directory entry. */
    uint8_t *cd = memmem(data, size, "PK\1\2", 4);
    assert_non_null(cd);
    cd[10] = 8;
    expect_error(vr_checkpoint_open_memory(data, size, "model.pth", &ck, &err), &err, VR_ERR_UNSUPPORTED,
                 "model/data.pkl", "compressed");
    cd[10] = 0;
    vr_status st = vr_checkpoint_open_memory(data, size, "model.pth", &ck, &err);
    if (st != VR_OK) fail_msg("%s", err.msg);
    vr_checkpoint_free(ck);
    free(data);
}

/* A small .pth with one [4, 8] bf16 tensor named "w". */
static uint8_t *small_pth(size_t *size) {
    static uint16_t buf[32];
    for (int i = 0; i < 32; i++) buf[i] = vr_f32_to_bf16((float)i);
    vr_checkpoint_entry e = {.name = "w", .tensor = {.dtype = VR_BF16, .ndim = 2, .shape = {4, 8}, .data = buf}};
    vr_error err = {0};
    if (vr_pth_write(tmp_path("small.pth"), &e, 1, &err) != VR_OK) fail_msg("%s", err.msg);
    return read_all(tmp_path("small.pth"), size);
}

static void test_non_contiguous(void **state) {
    (void)state;
    size_t size;
    uint8_t *data = small_pth(&size);
    vr_checkpoint *ck = NULL;
    vr_error err = {0};
    vr_status st = vr_checkpoint_open_memory(data, size, "small.pth", &ck, &err);
    if (st != VR_OK) fail_msg("%s", err.msg);
    const vr_tensor *w = vr_checkpoint_find(ck, "w");
    assert_non_null(w);
    assert_float_equal(vr_bf16_to_f32(((const uint16_t *)w->data)[9]), 9.0f, 0);
    vr_checkpoint_free(ck);
    /* stride (8, 1) -> (1, 4): a transposed view. */
    uint8_t *p = memmem(data, size, "K\x04K\x08\x86K\x08K\x01\x86", 10);
    assert_non_null(p);
    p[6] = 1;
    p[8] = 4;
    expect_error(vr_checkpoint_open_memory(data, size, "small.pth", &ck, &err), &err, VR_ERR_UNSUPPORTED,
                 "small.pth", "tensor w is not contiguous");
    /* size (4, 8) -> (5, 8) with stride (8, 1): needs more than the storage holds. */
    p[6] = 8;
    p[8] = 1;
    p[1] = 5;
    expect_error(vr_checkpoint_open_memory(data, size, "small.pth", &ck, &err), &err, VR_ERR_FORMAT, "tensor w",
                 "holds only 32");
    p[1] = 4;
    /* storage key "0" -> "9": the storage member is missing. */
    p = memmem(data, size, "X\x01\x00\x00\x00" "0", 6);
    assert_non_null(p);
    p[5] = '9';
    expect_error(vr_checkpoint_open_memory(data, size, "small.pth", &ck, &err), &err, VR_ERR_FORMAT, "tensor w",
                 "archive/data/9");
    free(data);
}

static uint32_t rd32le(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint16_t rd16le(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites small.pth's central directory the way a > 4 GiB checkpoint has it: every size and
 * offset saturated to 0xFFFFFFFF with the real values in zip64 extra fields, and the EOCD's
 * directory fields saturated too. The reader must take the zip64 values. */
static void test_zip64_fields(void **state) {
    (void)state;
    size_t size;
    uint8_t *data = small_pth(&size);
    uint8_t *cd = memmem(data, size, "PK\1\2", 4);
    uint8_t *e64 = memmem(data, size, "PK\6\6", 4);
    assert_non_null(cd);
    assert_non_null(e64);
    size_t cd_off = (size_t)(cd - data), n = (size_t)rd16le(data + size - 22 + 10);
    uint8_t *out = calloc(1, size + n * 28 + 200);
    memcpy(out, data, cd_off);
    size_t o = cd_off;
    const uint8_t *p = cd;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rd32le(p), 0x02014b50u);
        size_t nl = rd16le(p + 28), xl = rd16le(p + 30), cl = rd16le(p + 32);
        assert_int_equal(xl, 0);
        uint32_t csize = rd32le(p + 20), usize = rd32le(p + 24), loff = rd32le(p + 42);
        memcpy(out + o, p, 46 + nl);
        put_le(out + o + 20, 0xFFFFFFFFu, 4);
        put_le(out + o + 24, 0xFFFFFFFFu, 4);
        put_le(out + o + 42, 0xFFFFFFFFu, 4);
        put_le(out + o + 30, 28, 2);
        put_le(out + o + 32, 0, 2);
        uint8_t *x = out + o + 46 + nl;
        put_le(x, 1, 2);
        put_le(x + 2, 24, 2);
        put_le(x + 4, usize, 8);
        put_le(x + 12, csize, 8);
        put_le(x + 20, loff, 8);
        o += 46 + nl + 28;
        p += 46 + nl + xl + cl;
    }
    size_t new_cd_size = o - cd_off, e64_off = o;
    memcpy(out + o, e64, 56); /* zip64 EOCD with the new directory size */
    put_le(out + o + 40, new_cd_size, 8);
    o += 56;
    put_le(out + o, 0x07064b50u, 4); /* locator */
    put_le(out + o + 4, 0, 4);
    put_le(out + o + 8, e64_off, 8);
    put_le(out + o + 16, 1, 4);
    o += 20;
    put_le(out + o, 0x06054b50u, 4); /* EOCD, every directory field saturated */
    put_le(out + o + 4, 0, 4);
    put_le(out + o + 8, 0xFFFF, 2);
    put_le(out + o + 10, 0xFFFF, 2);
    put_le(out + o + 12, 0xFFFFFFFFu, 4);
    put_le(out + o + 16, 0xFFFFFFFFu, 4);
    put_le(out + o + 20, 0, 2);
    o += 22;
    vr_checkpoint *ck = NULL;
    vr_error err = {0};
    if (vr_checkpoint_open_memory(out, o, "zip64.pth", &ck, &err) != VR_OK) fail_msg("%s", err.msg);
    const vr_tensor *w = vr_checkpoint_find(ck, "w");
    assert_non_null(w);
    assert_float_equal(vr_bf16_to_f32(((const uint16_t *)w->data)[31]), 31.0f, 0);
    vr_checkpoint_free(ck);
    /* The same without the locator: the saturated EOCD cannot be resolved. */
    memmove(out + e64_off, out + o - 22, 22);
    expect_error(vr_checkpoint_open_memory(out, e64_off + 22, "zip64.pth", &ck, &err), &err, VR_ERR_FORMAT,
                 "zip64.pth", "zip64");
    free(out);
    free(data);
}

/* ---------------------------------------------------------------------------------------------
 * safetensors */

/* A safetensors image: 8-byte length, json padded with spaces to a multiple of 8 unless raw, payload. */
static vr_status open_st_raw(const char *json, int raw, const void *payload, size_t plen, vr_checkpoint **ck,
                             vr_error *err) {
    static uint8_t buf[4096] __attribute__((aligned(16)));
    size_t jl = strlen(json);
    assert_true(8 + jl + 8 + plen <= sizeof buf);
    memcpy(buf + 8, json, jl);
    while (!raw && jl % 8) buf[8 + jl++] = ' ';
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)jl >> (8 * i));
    if (plen) memcpy(buf + 8 + jl, payload, plen);
    return vr_checkpoint_open_memory(buf, 8 + jl + plen, "x.safetensors", ck, err);
}

static vr_status open_st(const char *json, const void *payload, size_t plen, vr_checkpoint **ck, vr_error *err) {
    return open_st_raw(json, 0, payload, plen, ck, err);
}

static void test_safetensors_errors(void **state) {
    (void)state;
    vr_checkpoint *ck = NULL;
    vr_error err = {0};
    float payload[4] = {1, 2, 3, 4};
    /* A valid one first (header padded to 8 bytes so the data is aligned). */
    vr_status st = open_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                           "\"__metadata__\":{\"format\":\"pt\"}}  ",
                           payload, 16, &ck, &err);
    if (st != VR_OK) fail_msg("%s", err.msg);
    assert_int_equal(vr_checkpoint_count(ck), 1);
    const vr_tensor *a = vr_checkpoint_find(ck, "a");
    assert_non_null(a);
    assert_float_equal(((const float *)a->data)[3], 4.0f, 0);
    vr_checkpoint_free(ck);

    expect_error(open_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}   ",
                         payload, 16, &ck, &err),
                 &err, VR_ERR_FORMAT, "x.safetensors", "tensor a appears twice");
    expect_error(open_st("{\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", payload, 16, &ck, &err),
                 &err, VR_ERR_FORMAT, "tensor b", "outside");
    expect_error(open_st("{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", payload, 16, &ck, &err),
                 &err, VR_ERR_FORMAT, "tensor b", "shape needs 12");
    /* 2^62 elements of 4 bytes: numel * 4 wraps to 0 and used to match an empty span */
    expect_error(open_st("{\"b\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,0]}}",
                         payload, 16, &ck, &err),
                 &err, VR_ERR_FORMAT, "tensor b", "more than the 16-byte data section holds");
    expect_error(open_st("{\"b\":{\"dtype\":\"I64\",\"shape\":[9007199254740992,512],\"data_offsets\":[0,0]}}",
                         payload, 16, &ck, &err),
                 &err, VR_ERR_FORMAT, "tensor b", "data section");
    expect_error(open_st("{\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", payload, 16, &ck, &err),
                 &err, VR_ERR_FORMAT, "tensor b", NULL);
    expect_error(open_st("{\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", payload, 16, &ck, &err),
                 &err, VR_ERR_UNSUPPORTED, "tensor b", "F64");
    expect_error(open_st("{\"b\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,16]}}", payload, 16, &ck, &err),
                 &err, VR_ERR_FORMAT, "tensor b", "shape[0]");
    expect_error(open_st("{\"b\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", payload, 16, &ck,
                         &err),
                 &err, VR_ERR_UNSUPPORTED, "tensor b", "dimensions");
    expect_error(open_st("{\"b\":{\"dtype\":\"F32\",\"shape\":[1]}}", payload, 16, &ck, &err), &err, VR_ERR_FORMAT,
                 "tensor b", "data_offsets");
    expect_error(open_st("{\"b\": [1, 2", payload, 16, &ck, &err), &err, VR_ERR_FORMAT, "x.safetensors",
                 "not valid JSON");
    expect_error(open_st("[1, 2, 3]", payload, 16, &ck, &err), &err, VR_ERR_FORMAT, "x.safetensors", "JSON object");
    /* misaligned data: a 1-byte longer header shifts the F32 data off its alignment */
    expect_error(open_st_raw("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} ", 1, payload, 16, &ck,
                             &err),
                 &err, VR_ERR_UNSUPPORTED, "tensor b", "aligned");
    /* a huge header length */
    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, '{', '}'};
    expect_error(vr_checkpoint_open_memory(huge, sizeof huge, "huge.safetensors", &ck, &err), &err, VR_ERR_FORMAT,
                 "huge.safetensors", "header length");
    assert_null(ck);
}

/* ---------------------------------------------------------------------------------------------
 * writers: round trips, then modified checkpoints that vr_config_load must refuse */

static void compare_checkpoints(const vr_checkpoint *a, const vr_checkpoint *b) {
    assert_int_equal(vr_checkpoint_count(a), vr_checkpoint_count(b));
    for (int i = 0; i < vr_checkpoint_count(a); i++) {
        const vr_checkpoint_entry *x = vr_checkpoint_entry_at(a, i), *y = vr_checkpoint_entry_at(b, i);
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->tensor.dtype, y->tensor.dtype);
        assert_int_equal(x->tensor.ndim, y->tensor.ndim);
        for (int d = 0; d < x->tensor.ndim; d++) assert_int_equal(x->tensor.shape[d], y->tensor.shape[d]);
        assert_int_equal(vr_tensor_nbytes(&x->tensor), vr_tensor_nbytes(&y->tensor));
        assert_memory_equal(x->tensor.data, y->tensor.data, vr_tensor_nbytes(&x->tensor));
    }
}

static void test_round_trip(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    vr_checkpoint *ck = NULL, *back = NULL;
    vr_error err = {0};
    if (vr_checkpoint_open(vrt_fixture_path("tiny/model.pth"), &ck, &err) != VR_OK) fail_msg("%s", err.msg);
    const vr_checkpoint_entry *all = vr_checkpoint_entry_at(ck, 0);
    int n = vr_checkpoint_count(ck);
    const char *outs[2] = {tmp_path("rt.pth"), NULL};
    outs[0] = strdup(outs[0]);
    outs[1] = strdup(tmp_path("rt.safetensors"));
    if (vr_pth_write(outs[0], all, n, &err) != VR_OK) fail_msg("%s", err.msg);
    if (vr_safetensors_write(outs[1], all, n, &err) != VR_OK) fail_msg("%s", err.msg);
    for (int k = 0; k < 2; k++) {
        if (vr_checkpoint_open(outs[k], &back, &err) != VR_OK) fail_msg("%s", err.msg);
        compare_checkpoints(ck, back);
        /* The .pth writer aligns every storage to 64 bytes in the file (the mapping is page-aligned). */
        if (k == 0)
            for (int i = 0; i < vr_checkpoint_count(back); i++)
                assert_int_equal((uintptr_t)vr_checkpoint_entry_at(back, i)->tensor.data % 64, 0);
        vr_model_config cfg;
        if (vr_config_load(back, vrt_fixture_path("tiny/model.json"), &cfg, &err) != VR_OK) fail_msg("%s", err.msg);
        assert_int_equal(cfg.num_image_tokens, 17);
        vr_checkpoint_free(back);
        assert_int_equal(access(tmp_path("rt.pth.tmp"), F_OK), -1); /* no temporary left behind */
    }
    /* Python's zipfile (when present) agrees that the .pth is a valid zip with correct CRCs. */
    if (access("/usr/bin/python3", X_OK) == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); "
                 "sys.exit(1 if z.testzip() else 0)\" '%s'",
                 outs[0]);
        assert_int_equal(system(cmd), 0);
    }
    free((void *)outs[0]);
    free((void *)outs[1]);
    vr_checkpoint_free(ck);
}

/* Copies tiny's entries, lets edit() change them, writes with the given writer, and returns
 * vr_config_load's status on the result (err filled). */
typedef void (*edit_fn)(vr_checkpoint_entry *e, int *n);
static vr_status modified_load(edit_fn edit, int pth, const char *fname, vr_error *err) {
    vr_checkpoint *ck = NULL, *mod = NULL;
    if (vr_checkpoint_open(vrt_fixture_path("tiny/model.pth"), &ck, err) != VR_OK) fail_msg("%s", err->msg);
    int n = vr_checkpoint_count(ck);
    vr_checkpoint_entry *e = malloc((size_t)n * sizeof *e);
    memcpy(e, vr_checkpoint_entry_at(ck, 0), (size_t)n * sizeof *e);
    edit(e, &n);
    const char *path = tmp_path(fname);
    vr_status st = pth ? vr_pth_write(path, e, n, err) : vr_safetensors_write(path, e, n, err);
    if (st != VR_OK) fail_msg("%s", err->msg);
    free(e);
    vr_checkpoint_free(ck);
    if (vr_checkpoint_open(path, &mod, err) != VR_OK) fail_msg("%s", err->msg);
    vr_model_config cfg;
    st = vr_config_load(mod, vrt_fixture_path("tiny/model.json"), &cfg, err);
    vr_checkpoint_free(mod);
    return st;
}

static vr_checkpoint_entry *by_name(vr_checkpoint_entry *e, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(e[i].name, name)) return &e[i];
    fail_msg("no %s", name);
    return NULL;
}

static int32_t g_i32[64];
static void edit_dtype(vr_checkpoint_entry *e, int *n) {
    vr_checkpoint_entry *x = by_name(e, *n, "rwkv.blocks.0.ln1.weight");
    x->tensor.dtype = VR_I32;
    x->tensor.data = g_i32;
}
static void edit_shape(vr_checkpoint_entry *e, int *n) {
    vr_checkpoint_entry *x = by_name(e, *n, "rwkv.blocks.3.att.key.weight");
    x->tensor.shape[1] = 32;
}
static void edit_missing(vr_checkpoint_entry *e, int *n) {
    vr_checkpoint_entry *x = by_name(e, *n, "rwkv.blocks.2.ffn.value.weight");
    int i = (int)(x - e);
    memmove(e + i, e + i + 1, (size_t)(*n - i - 1) * sizeof *e);
    (*n)--;
}
static void edit_vision_shape(vr_checkpoint_entry *e, int *n) {
    vr_checkpoint_entry *x = by_name(e, *n, "vit.vision_model.encoder.layers.1.mlp.fc2.weight");
    x->tensor.shape[0] = 16;
    x->tensor.shape[1] = 32;
}

static void test_modified_checkpoints(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    vr_error err = {0};
    char want[256];
    expect_error(modified_load(edit_dtype, 0, "dtype.safetensors", &err), &err, VR_ERR_FORMAT, "dtype.safetensors",
                 "tensor rwkv.blocks.0.ln1.weight has dtype i32");
    expect_error(modified_load(edit_dtype, 1, "dtype.pth", &err), &err, VR_ERR_FORMAT, "dtype.pth",
                 "tensor rwkv.blocks.0.ln1.weight has dtype i32");
    snprintf(want, sizeof want, "%s: tensor rwkv.blocks.3.att.key.weight has shape [64, 32], expected [64, 64]",
             tmp_path("shape.pth"));
    expect_error(modified_load(edit_shape, 1, "shape.pth", &err), &err, VR_ERR_FORMAT, want, NULL);
    expect_error(modified_load(edit_shape, 0, "shape.safetensors", &err), &err, VR_ERR_FORMAT,
                 "rwkv.blocks.3.att.key.weight has shape [64, 32], expected [64, 64]", NULL);
    expect_error(modified_load(edit_missing, 0, "missing.safetensors", &err), &err, VR_ERR_FORMAT,
                 "missing.safetensors", "tensor rwkv.blocks.2.ffn.value.weight is missing");
    expect_error(modified_load(edit_vision_shape, 1, "vis.pth", &err), &err, VR_ERR_FORMAT,
                 "vit.vision_model.encoder.layers.1.mlp.fc2.weight has shape [16, 32], expected [32, 64]", NULL);
}

static void test_writer_errors(void **state) {
    (void)state;
    vr_error err = {0};
    float x[2] = {1, 2};
    vr_checkpoint_entry e[2] = {{.name = "a", .tensor = {.dtype = VR_F32, .ndim = 1, .shape = {2}, .data = x}},
                                {.name = "a", .tensor = {.dtype = VR_F32, .ndim = 1, .shape = {2}, .data = x}}};
    expect_error(vr_pth_write(tmp_path("dup.pth"), e, 2, &err), &err, VR_ERR_INVALID, "tensor a", "twice");
    expect_error(vr_safetensors_write(tmp_path("dup.st"), e, 2, &err), &err, VR_ERR_INVALID, "tensor a", "twice");
    expect_error(vr_pth_write("/nonexistent/dir/x.pth", e, 1, &err), &err, VR_ERR_IO, "/nonexistent/dir/x.pth",
                 NULL);
    /* An empty state dict, and every dtype, 0-d and 4-d tensors round-trip through both writers. */
    static int64_t i64[3] = {-1, 0, 1LL << 40};
    static uint16_t h16[16];
    static uint8_t u8[5] = {1, 2, 3, 4, 5};
    static int32_t i32[2] = {-7, 7};
    vr_checkpoint_entry many[5] = {
        {.name = "i64", .tensor = {.dtype = VR_I64, .ndim = 1, .shape = {3}, .data = i64}},
        {.name = "scalar", .tensor = {.dtype = VR_F32, .ndim = 0, .data = x}},
        {.name = "f16.4d", .tensor = {.dtype = VR_F16, .ndim = 4, .shape = {2, 2, 2, 2}, .data = h16}},
        {.name = "u8 \"quoted\"\\", .tensor = {.dtype = VR_U8, .ndim = 1, .shape = {5}, .data = u8}},
        {.name = "i32", .tensor = {.dtype = VR_I32, .ndim = 2, .shape = {1, 2}, .data = i32}},
    };
    for (int k = 0; k < 16; k++) h16[k] = vr_f32_to_f16((float)k);
    for (int w = 0; w < 2; w++) {
        for (int count = 0; count <= 5; count += 5) {
            const char *p = tmp_path(w ? "many.pth" : "many.safetensors");
            vr_status st = w ? vr_pth_write(p, many, count, &err) : vr_safetensors_write(p, many, count, &err);
            if (st != VR_OK) fail_msg("%s", err.msg);
            vr_checkpoint *ck = NULL;
            if (vr_checkpoint_open(p, &ck, &err) != VR_OK) fail_msg("%s", err.msg);
            assert_int_equal(vr_checkpoint_count(ck), count);
            for (int i = 0; i < count; i++) {
                const vr_checkpoint_entry *g = vr_checkpoint_entry_at(ck, i);
                assert_string_equal(g->name, many[i].name);
                assert_int_equal(g->tensor.dtype, many[i].tensor.dtype);
                assert_int_equal(g->tensor.ndim, many[i].tensor.ndim);
                assert_memory_equal(g->tensor.data, many[i].tensor.data, vr_tensor_nbytes(&many[i].tensor));
            }
            vr_checkpoint_free(ck);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_tiny),     cmocka_unit_test(test_fixture_grid),
        cmocka_unit_test(test_truncated_pth),    cmocka_unit_test(test_truncated_pickle),
        cmocka_unit_test(test_wrong_magic),      cmocka_unit_test(test_unsupported_opcode),
        cmocka_unit_test(test_non_contiguous),   cmocka_unit_test(test_zip64_fields),
        cmocka_unit_test(test_safetensors_errors),
        cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_modified_checkpoints),
        cmocka_unit_test(test_writer_errors),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
