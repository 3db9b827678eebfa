/* tests/unit/test_image.c — image decoding (JPEG/PNG) and CLIP preprocessing against the
 * Pillow/HF fixtures, Pillow's pixel semantics on PNG variants built here with libpng, and
 * refusal of truncated, corrupt, oversized and foreign files. Does not test the vision tower. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <jpeglib.h>
#include <png.h>

#include "common/mapped_file.h"
#include "model/image.h"
#include "tests/support/fixtures.h"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                  */

static const char *set_names[] = {"tiny", "grid"};

static uint8_t *read_bytes(const char *path, size_t *size) {
    char *buf = NULL;
    vr_error err = {0};
    if (vr_read_file(path, (size_t)64 << 20, &buf, size, &err) != VR_OK) fail_msg("%s", err.msg);
    return (uint8_t *)buf;
}

static int json_int(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("missing number %s", key);
    return v->valueint;
}

static int shape_dim(const cJSON *ref, int i) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(ref, "shape");
    const cJSON *d = cJSON_GetArrayItem(shape, i);
    if (!cJSON_IsNumber(d)) fail_msg("bad shape");
    return d->valueint;
}

/* An HWC u8 fixture array as a vr_image (owned). */
static vr_image fixture_image(const cJSON *ref) {
    size_t n = 0;
    vr_image img = {0};
    img.rgb = vrt_load_array(ref, &n);
    img.height = shape_dim(ref, 0);
    img.width = shape_dim(ref, 1);
    assert_int_equal(shape_dim(ref, 2), 3);
    assert_int_equal(n, (size_t)img.width * img.height * 3);
    return img;
}

static int max_u8_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d;
    }
    return m;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Expects a refusal with the given status and a message containing want (and the name). */
static void expect_refused(const uint8_t *data, size_t size, vr_status code, const char *want, const char *what) {
    vr_image img = {0};
    vr_error err = {0};
    double t0 = now_s();
    vr_status st = vr_image_decode(data, size, "probe.img", &img, &err);
    double dt = now_s() - t0;
    if (st != code || !strstr(err.msg, want) || !strstr(err.msg, "probe.img"))
        fail_msg("%s: got status %d (%s) \"%s\"; expected status %d with \"%s\"", what, (int)st, vr_status_name(st),
                 err.msg, (int)code, want);
    assert_null(img.rgb);
    if (dt > 2.0) fail_msg("%s: refusal took %.2f s", what, dt);
}

/* In-memory growable buffer for the encoders. */
struct membuf {
    uint8_t *p;
    size_t n, cap;
};

static void membuf_put(struct membuf *m, const void *d, size_t n) {
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2 + 64;
        m->p = realloc(m->p, m->cap);
        assert_non_null(m->p);
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}

static void png_w_write(png_structp png, png_bytep d, size_t n) { membuf_put(png_get_io_ptr(png), d, n); }
static void png_w_flush(png_structp png) { (void)png; }

/* A PNG to write: samples are given unpacked (one byte per sample below 8 bits, big-endian
 * pairs at 16 bits); libpng packs them. */
struct png_spec {
    int w, h, depth, color_type, interlace;
    const uint8_t *samples;
    const png_color *plte;
    int nplte;
    const uint8_t *trns_alpha; /* palette tRNS */
    int ntrns;
    const png_color_16 *trns_color; /* gray / RGB tRNS */
};

static int png_channels(int color_type) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_PALETTE: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    default: return 4;
    }
}

static int png_write_run(png_structp png, png_infop info, const struct png_spec *s, struct membuf *m) {
    if (setjmp(png_jmpbuf(png))) return -1;
    png_set_write_fn(png, m, png_w_write, png_w_flush);
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->color_type, s->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->plte) png_set_PLTE(png, info, s->plte, s->nplte);
    if (s->trns_alpha || s->trns_color) png_set_tRNS(png, info, s->trns_alpha, s->ntrns, s->trns_color);
    png_set_check_for_invalid_index(png, 0);
    png_write_info(png, info);
    if (s->depth < 8) png_set_packing(png);
    int passes = png_set_interlace_handling(png);
    size_t rowlen = (size_t)s->w * png_channels(s->color_type) * (s->depth == 16 ? 2 : 1);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < s->h; y++) png_write_row(png, s->samples + (size_t)y * rowlen);
    png_write_end(png, info);
    return 0;
}

static void png_w_error(png_structp png, png_const_charp msg) {
    fprintf(stderr, "libpng write error: %s\n", msg);
    png_longjmp(png, 1);
}

static uint8_t *make_png(const struct png_spec *s, size_t *size) {
    struct membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_w_error, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    int rc = png_write_run(png, info, s, &m);
    png_destroy_write_struct(&png, &info);
    if (rc != 0) fail_msg("could not write the test PNG");
    *size = m.n;
    return m.p;
}

/* JPEG encoder for the test images (quality 100, 4:4:4). */
static uint8_t *make_jpeg_ex(int w, int h, int comps, J_COLOR_SPACE in_space, J_COLOR_SPACE file_space,
                             const uint8_t *pixels, int progressive, size_t *size) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &buf, &n);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = in_space;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, file_space);
    for (int i = 0; i < c.num_components; i++) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_set_quality(&c, 100, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    uint8_t *out = malloc(n);
    memcpy(out, buf, n);
    free(buf);
    *size = n;
    return out;
}

static uint8_t *make_jpeg(int w, int h, int comps, J_COLOR_SPACE in_space, J_COLOR_SPACE file_space,
                          const uint8_t *pixels, size_t *size) {
    return make_jpeg_ex(w, h, comps, in_space, file_space, pixels, 0, size);
}

static uint32_t crc32_png(const uint8_t *d, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Signature + IHDR (8-bit RGB, valid CRC) + an empty IDAT + IEND: a header claiming w x h. */
static size_t craft_png_header(uint8_t *out, uint32_t w, uint32_t h) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n = 0;
    memcpy(out, sig, 8), n = 8;
    put_be32(out + n, 13), n += 4;
    uint8_t *type = out + n;
    memcpy(out + n, "IHDR", 4), n += 4;
    put_be32(out + n, w), n += 4;
    put_be32(out + n, h), n += 4;
    out[n++] = 8, out[n++] = 2, out[n++] = 0, out[n++] = 0, out[n++] = 0;
    put_be32(out + n, crc32_png(type, 17)), n += 4;
    put_be32(out + n, 0), n += 4;
    memcpy(out + n, "IEND", 4), n += 4;
    put_be32(out + n, crc32_png(out + n - 4, 4)), n += 4;
    return n;
}

/* Offset of the first chunk of the given type in a PNG (its length field). */
static size_t png_chunk_at(const uint8_t *d, size_t n, const char *type) {
    size_t p = 8;
    while (p + 12 <= n) {
        uint32_t len = ((uint32_t)d[p] << 24) | ((uint32_t)d[p + 1] << 16) | ((uint32_t)d[p + 2] << 8) | d[p + 3];
        if (memcmp(d + p + 4, type, 4) == 0) return p;
        p += 12 + (size_t)len;
    }
    fail_msg("no %s chunk", type);
    return 0;
}

/* Offset of a JPEG marker 0xFF <code>. */
static size_t jpeg_marker_at(const uint8_t *d, size_t n, uint8_t code) {
    for (size_t i = 2; i + 1 < n; i++)
        if (d[i] == 0xFF && d[i + 1] == code) return i;
    fail_msg("no marker ff %02x", code);
    return 0;
}

static void decode_ok(const uint8_t *d, size_t n, vr_image *img) {
    vr_error err = {0};
    if (vr_image_decode(d, n, "made.png", img, &err) != VR_OK) fail_msg("%s", err.msg);
}

/* ---------------------------------------------------------------------------------------- */
/* fixtures                                                                                 */

/* Our decoder against Pillow's decode: PNG exact, JPEG within the README's 3 levels. */
static void test_fixture_decode(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *j = vrt_load_json("images/images.json");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(j, "images");
    const cJSON *it;
    int count = 0;
    cJSON_ArrayForEach(it, images) {
        const char *file = cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring;
        const char *format = cJSON_GetObjectItemCaseSensitive(it, "format")->valuestring;
        vr_image ref = fixture_image(cJSON_GetObjectItemCaseSensitive(it, "decoded_rgb_u8"));
        vr_image img = {0};
        vr_error err = {0};
        if (vr_image_load(vrt_fixture_path(file), &img, &err) != VR_OK) fail_msg("%s", err.msg);
        assert_int_equal(img.width, json_int(it, "width"));
        assert_int_equal(img.height, json_int(it, "height"));
        assert_int_equal(img.width, ref.width);
        assert_int_equal(img.height, ref.height);
        int d = max_u8_diff(img.rgb, ref.rgb, (size_t)img.width * img.height * 3);
        printf("  decode %s (%s %dx%d): max |ours - Pillow| = %d\n", it->string, format, img.width, img.height, d);
        if (strcmp(format, "PNG") == 0) assert_int_equal(d, 0);
        else assert_true(d <= 3);
        vr_image_free(&img);
        vr_image_free(&ref);
        count++;
    }
    assert_true(count >= 4);
    cJSON_Delete(j);
}

/* The fixture's own decoded pixels through our resize and preprocessing: exact. */
static void test_fixture_preprocess(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *ij = vrt_load_json("images/images.json");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(ij, "images");
    for (size_t s = 0; s < 2; s++) {
        char rel[64];
        snprintf(rel, sizeof rel, "%s/preprocess.json", set_names[s]);
        cJSON *pj = vrt_load_json(rel);
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pj, "images")) {
            const char *name = cJSON_GetObjectItemCaseSensitive(it, "image")->valuestring;
            const cJSON *im = cJSON_GetObjectItemCaseSensitive(images, name);
            vr_image src = fixture_image(cJSON_GetObjectItemCaseSensitive(im, "decoded_rgb_u8"));
            const cJSON *rref = cJSON_GetObjectItemCaseSensitive(it, "resized_u8");
            vr_image want = fixture_image(rref);
            const cJSON *pref = cJSON_GetObjectItemCaseSensitive(it, "pixel_values");
            size_t npix = 0;
            float *want_px = vrt_load_array(pref, &npix);
            int S = shape_dim(pref, 1);
            assert_int_equal(shape_dim(pref, 2), S);
            const cJSON *src_wh = cJSON_GetObjectItemCaseSensitive(it, "source_size_wh");
            const cJSON *res_wh = cJSON_GetObjectItemCaseSensitive(it, "resized_size_wh");
            assert_int_equal(cJSON_GetArrayItem(src_wh, 0)->valueint, src.width);
            assert_int_equal(cJSON_GetArrayItem(src_wh, 1)->valueint, src.height);

            /* geometry */
            int rw, rh, top, left;
            vr_error err = {0};
            assert_int_equal(vr_clip_resize_geometry(src.width, src.height, S, &rw, &rh, &top, &left, &err), VR_OK);
            assert_int_equal(rw, cJSON_GetArrayItem(res_wh, 0)->valueint);
            assert_int_equal(rh, cJSON_GetArrayItem(res_wh, 1)->valueint);
            assert_int_equal(rw, want.width);
            assert_int_equal(rh, want.height);
            assert_int_equal(top, json_int(it, "crop_top"));
            assert_int_equal(left, json_int(it, "crop_left"));

            /* resize: bit-exact */
            vr_image res = {0};
            if (vr_image_resize_bicubic(&src, rw, rh, &res, &err) != VR_OK) fail_msg("%s", err.msg);
            int dres = max_u8_diff(res.rgb, want.rgb, (size_t)rw * rh * 3);

            /* full pipeline, with and without the resized image */
            vr_clip_preprocess p;
            vr_clip_preprocess_default(&p, S);
            float *px = malloc(npix * sizeof *px), *px2 = malloc(npix * sizeof *px2);
            vr_image res2 = {0};
            if (vr_clip_preprocess_image(&p, &src, px, &res2, &err) != VR_OK) fail_msg("%s", err.msg);
            if (vr_clip_preprocess_image(&p, &src, px2, NULL, &err) != VR_OK) fail_msg("%s", err.msg);
            assert_int_equal(res2.width, rw);
            assert_int_equal(res2.height, rh);
            assert_memory_equal(res2.rgb, want.rgb, (size_t)rw * rh * 3);
            assert_memory_equal(px, px2, npix * sizeof *px);
            float dpx = vrt_max_abs_diff(px, want_px, npix);
            printf("  %s/%s %dx%d -> %dx%d crop %d,%d S=%d: resized max diff %d, pixel_values max diff %g\n",
                   set_names[s], name, src.width, src.height, rw, rh, top, left, S, dres, (double)dpx);
            assert_int_equal(dres, 0);
            assert_true(dpx <= 1e-6f);

            vr_image_free(&res);
            vr_image_free(&res2);
            vr_image_free(&src);
            vr_image_free(&want);
            free(px);
            free(px2);
            free(want_px);
        }
        cJSON_Delete(pj);
    }
    cJSON_Delete(ij);
}

/* Our own decode then preprocessing, against the fixture pixel_values. */
static void test_fixture_end_to_end(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *ij = vrt_load_json("images/images.json");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(ij, "images");
    for (size_t s = 0; s < 2; s++) {
        char rel[64];
        snprintf(rel, sizeof rel, "%s/preprocess.json", set_names[s]);
        cJSON *pj = vrt_load_json(rel);
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pj, "images")) {
            const char *name = cJSON_GetObjectItemCaseSensitive(it, "image")->valuestring;
            const cJSON *im = cJSON_GetObjectItemCaseSensitive(images, name);
            const char *file = cJSON_GetObjectItemCaseSensitive(im, "file")->valuestring;
            int is_png = strcmp(cJSON_GetObjectItemCaseSensitive(im, "format")->valuestring, "PNG") == 0;
            const cJSON *pref = cJSON_GetObjectItemCaseSensitive(it, "pixel_values");
            size_t npix = 0;
            float *want_px = vrt_load_array(pref, &npix);
            int S = shape_dim(pref, 1);
            vr_image img = {0};
            vr_error err = {0};
            if (vr_image_load(vrt_fixture_path(file), &img, &err) != VR_OK) fail_msg("%s", err.msg);
            vr_clip_preprocess p;
            vr_clip_preprocess_default(&p, S);
            float *px = malloc(npix * sizeof *px);
            if (vr_clip_preprocess_image(&p, &img, px, NULL, &err) != VR_OK) fail_msg("%s", err.msg);
            float d = vrt_max_abs_diff(px, want_px, npix);
            /* 1 level = 1/255/min(std) = 0.0150; a JPEG decoder may differ by 3 levels, and
             * the resize may move that by one more. */
            float tol = is_png ? 1e-6f : 4.0f / 255.0f / 0.26130258f + 1e-5f;
            printf("  own decode -> %s/%s pixel_values max diff %g (%.2f levels, tolerance %g)\n", set_names[s], name,
                   (double)d, (double)(d * 255.0f * 0.26130258f), (double)tol);
            assert_true(d <= tol);
            vr_image_free(&img);
            free(px);
            free(want_px);
        }
        cJSON_Delete(pj);
    }
    cJSON_Delete(ij);
}

/* ---------------------------------------------------------------------------------------- */
/* refusals                                                                                 */

/* Sample files to damage: made here (always), plus the fixture images when present. */
struct sample {
    char name[64];
    uint8_t *data;
    size_t size;
    int is_png;
};

static int make_samples(struct sample *out, int max) {
    enum { W = 61, H = 47 };
    static uint8_t px[W * H * 4];
    for (int i = 0; i < W * H * 4; i++) px[i] = (uint8_t)((i * 2654435761u) >> 24) / 2 + (uint8_t)(i % 97);
    int n = 0;
    snprintf(out[n].name, sizeof out[n].name, "made.jpg");
    out[n].data = make_jpeg(W, H, 3, JCS_RGB, JCS_YCbCr, px, &out[n].size), out[n].is_png = 0, n++;
    struct png_spec s = {W, H, 8, PNG_COLOR_TYPE_RGB_ALPHA, 0, px, NULL, 0, NULL, 0, NULL};
    snprintf(out[n].name, sizeof out[n].name, "made.png");
    out[n].data = make_png(&s, &out[n].size), out[n].is_png = 1, n++;
    if (!vrt_shared_dir()) {
        fprintf(stderr, "NOTE: ../shared not found; damaging only the images made here\n");
        return n;
    }
    const char *files[] = {"images/img0.jpg", "images/img3.jpg", "images/img1.png", "images/img2.png"};
    for (int f = 0; f < 4 && n < max; f++, n++) {
        snprintf(out[n].name, sizeof out[n].name, "%s", files[f]);
        out[n].data = read_bytes(vrt_fixture_path(files[f]), &out[n].size);
        out[n].is_png = strstr(files[f], ".png") != NULL;
    }
    return n;
}

static void test_refuse_truncated(void **state) {
    (void)state;
    struct sample smp[8];
    int ns = make_samples(smp, 8);
    for (int f = 0; f < ns; f++) {
        const uint8_t *d = smp[f].data;
        size_t n = smp[f].size;
        int is_png = smp[f].is_png;
        /* the image data ends before the final IEND (12 bytes) + IDAT CRC (4) or EOI (2) */
        size_t tail = is_png ? 20 : 40;
        size_t cuts[] = {is_png ? 9 : 3, 20, 33, 60, 200, n / 4, n / 2, 3 * n / 4, n - tail};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            if (cuts[c] >= n) continue;
            char what[160];
            snprintf(what, sizeof what, "%.64s cut at %zu of %zu", smp[f].name, cuts[c], n);
            vr_image img = {0};
            vr_error err = {0};
            vr_status st = vr_image_decode(d, cuts[c], "probe.img", &img, &err);
            if (st != VR_ERR_FORMAT || !strstr(err.msg, "probe.img") ||
                !(strstr(err.msg, "truncated") || strstr(err.msg, "corrupt")))
                fail_msg("%s: got %d \"%s\"", what, (int)st, err.msg);
            assert_null(img.rgb);
        }
        /* cuts inside the image data say "truncated" */
        expect_refused(d, n / 2, VR_ERR_FORMAT, "truncated", smp[f].name);
        expect_refused(d, n - tail, VR_ERR_FORMAT, "truncated", smp[f].name);
        /* the whole file decodes */
        vr_image img = {0};
        decode_ok(d, n, &img);
        vr_image_free(&img);
        free(smp[f].data);
    }
}

static void test_refuse_corrupt(void **state) {
    (void)state;
    struct sample smp[8];
    int ns = make_samples(smp, 8);
    for (int f = 0; f < ns; f++) {
        const uint8_t *d = smp[f].data;
        size_t n = smp[f].size;
        uint8_t *c = malloc(n);
        if (smp[f].is_png) {
            /* a byte of IHDR: CRC mismatch */
            memcpy(c, d, n);
            c[18] ^= 0x01;
            expect_refused(c, n, VR_ERR_FORMAT, "corrupt PNG", "IHDR bit flip");
            /* a byte of IDAT data: zlib or CRC error, whichever libpng meets first */
            memcpy(c, d, n);
            size_t idat = png_chunk_at(c, n, "IDAT");
            c[idat + 8 + 5] ^= 0x40;
            expect_refused(c, n, VR_ERR_FORMAT, "corrupt PNG", "IDAT bit flip");
            /* the CRC of the (first) IDAT itself */
            memcpy(c, d, n);
            uint32_t len = ((uint32_t)c[idat] << 24) | ((uint32_t)c[idat + 1] << 16) |
                           ((uint32_t)c[idat + 2] << 8) | c[idat + 3];
            c[idat + 8 + len + 1] ^= 0x01;
            expect_refused(c, n, VR_ERR_FORMAT, "CRC", "IDAT CRC flip");
            /* corrupt deflate data with a valid CRC */
            memcpy(c, d, n);
            memset(c + idat + 8 + 2, 0xff, len > 40 ? 30 : len - 4);
            put_be32(c + idat + 8 + len, crc32_png(c + idat + 4, len + 4));
            expect_refused(c, n, VR_ERR_FORMAT, "corrupt PNG", "garbage deflate data");
        } else {
            size_t sof = jpeg_marker_at(d, n, 0xC0);
            memcpy(c, d, n);
            c[sof + 4] = 7; /* sample precision */
            expect_refused(c, n, VR_ERR_FORMAT, "corrupt JPEG", "JPEG precision 7");
            memcpy(c, d, n);
            c[sof + 9] = 0; /* number of components */
            expect_refused(c, n, VR_ERR_FORMAT, "corrupt JPEG", "JPEG with 0 components");
            memcpy(c, d, n);
            memset(c + 20, 0, n - 20); /* everything after the JFIF header zeroed */
            expect_refused(c, n, VR_ERR_FORMAT, "JPEG", "zeroed JPEG");
            /* corrupt entropy data decodes (libjpeg warns), as in Pillow; must not crash */
            memcpy(c, d, n);
            size_t sos = jpeg_marker_at(d, n, 0xDA);
            for (size_t i = sos + 20; i + 2 < n; i += 37) c[i] = (uint8_t)(c[i] * 7 + 1);
            vr_image img = {0};
            vr_error err = {0};
            vr_status st = vr_image_decode(c, n, "noisy.jpg", &img, &err);
            assert_true(st == VR_OK || st == VR_ERR_FORMAT);
            vr_image_free(&img);
        }
        free(c);
        free(smp[f].data);
    }
}

static void test_refuse_foreign_and_empty(void **state) {
    (void)state;
    static const uint8_t gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00";
    static const uint8_t webp[] = "RIFF\x10\x00\x00\x00WEBPVP8 ";
    static const uint8_t text[] = "hello, this is not an image";
    static const uint8_t jpeg_soi[] = {0xFF, 0xD8, 0xFF};
    static const uint8_t png_sig[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t zero = 0;
    expect_refused(gif, sizeof gif - 1, VR_ERR_UNSUPPORTED, "not a JPEG or PNG", "GIF");
    expect_refused(webp, sizeof webp - 1, VR_ERR_UNSUPPORTED, "not a JPEG or PNG", "WebP");
    expect_refused(text, sizeof text - 1, VR_ERR_UNSUPPORTED, "not a JPEG or PNG", "text");
    expect_refused(png_sig, 4, VR_ERR_UNSUPPORTED, "not a JPEG or PNG", "4 bytes of PNG signature");
    expect_refused(&zero, 0, VR_ERR_FORMAT, "empty", "zero-length");
    expect_refused(NULL, 0, VR_ERR_FORMAT, "empty", "NULL");
    expect_refused(jpeg_soi, sizeof jpeg_soi, VR_ERR_FORMAT, "JPEG", "JPEG SOI only");
    expect_refused(png_sig, sizeof png_sig, VR_ERR_FORMAT, "truncated PNG", "PNG signature only");
    vr_image img = {0};
    vr_error err = {0};
    assert_int_equal(vr_image_load("/nonexistent/dir/x.png", &img, &err), VR_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/x.png"));
    assert_int_equal(vr_image_decode(gif, 8, "x", NULL, &err), VR_ERR_INVALID);
}

static void test_refuse_huge(void **state) {
    (void)state;
    uint8_t buf[64];
    size_t n = craft_png_header(buf, 100000, 100000);
    expect_refused(buf, n, VR_ERR_NOMEM, "limit", "PNG 100000x100000");
    n = craft_png_header(buf, 20000, 1);
    expect_refused(buf, n, VR_ERR_NOMEM, "limit", "PNG 20000x1");
    n = craft_png_header(buf, 10000, 10000); /* each side allowed, 1e8 pixels not */
    expect_refused(buf, n, VR_ERR_NOMEM, "limit", "PNG 10000x10000");
    n = craft_png_header(buf, 0x7fffffffu, 0x7fffffffu);
    expect_refused(buf, n, VR_ERR_NOMEM, "limit", "PNG 2^31-1 square");
    n = craft_png_header(buf, 0, 5);
    expect_refused(buf, n, VR_ERR_FORMAT, "corrupt PNG", "PNG 0x5");
    /* a plausible header with no image data */
    n = craft_png_header(buf, 64, 64);
    expect_refused(buf, n, VR_ERR_FORMAT, "PNG", "PNG without IDAT");

    /* JPEG: SOF dimensions are 16-bit; claim 65000x65000 and 16000x16000 (256 Mpixels) */
    uint8_t px[16 * 8 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 13);
    size_t jn = 0;
    uint8_t *j = make_jpeg(16, 8, 3, JCS_RGB, JCS_YCbCr, px, &jn);
    size_t sof = jpeg_marker_at(j, jn, 0xC0);
    uint16_t dims[][2] = {{65000, 65000}, {16000, 16000}, {20000, 8}};
    for (size_t i = 0; i < 3; i++) {
        uint8_t *c = malloc(jn);
        memcpy(c, j, jn);
        c[sof + 5] = (uint8_t)(dims[i][1] >> 8), c[sof + 6] = (uint8_t)dims[i][1];
        c[sof + 7] = (uint8_t)(dims[i][0] >> 8), c[sof + 8] = (uint8_t)dims[i][0];
        char what[64];
        snprintf(what, sizeof what, "JPEG %ux%u", dims[i][0], dims[i][1]);
        expect_refused(c, jn, VR_ERR_NOMEM, "limit", what);
        free(c);
    }
    free(j);
}

/* ---------------------------------------------------------------------------------------- */
/* PNG variants built here, checked against Pillow's semantics by construction               */

static void check_pixels(const vr_image *img, int w, int h, const uint8_t *want, const char *what) {
    if (img->width != w || img->height != h) fail_msg("%s: got %dx%d, want %dx%d", what, img->width, img->height, w, h);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        if (img->rgb[i] != want[i])
            fail_msg("%s: pixel %zu channel %zu: got %d, want %d", what, i / 3, i % 3, img->rgb[i], want[i]);
}

static void test_png_palette(void **state) {
    (void)state;
    enum { W = 9, H = 7 };
    png_color plte[10];
    uint8_t alpha[10];
    for (int i = 0; i < 10; i++) {
        plte[i].red = (png_byte)(20 * i + 3), plte[i].green = (png_byte)(255 - 17 * i), plte[i].blue = (png_byte)(i * i);
        alpha[i] = (uint8_t)(i * 25); /* alpha 0 for entry 0: dropped, not composited */
    }
    uint8_t idx[W * H], want[W * H * 3];
    for (int i = 0; i < W * H; i++) {
        idx[i] = (uint8_t)(i % 10);
        if (i == 5) idx[i] = 200; /* past PLTE: Pillow's palette entries there are black */
        const png_color *c = idx[i] < 10 ? &plte[idx[i]] : NULL;
        want[3 * i] = c ? c->red : 0;
        want[3 * i + 1] = c ? c->green : 0;
        want[3 * i + 2] = c ? c->blue : 0;
    }
    for (int interlace = 0; interlace < 2; interlace++) {
        struct png_spec s = {W, H, 8, PNG_COLOR_TYPE_PALETTE, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                             idx, plte, 10, alpha, 10, NULL};
        size_t n;
        uint8_t *d = make_png(&s, &n);
        vr_image img = {0};
        decode_ok(d, n, &img);
        check_pixels(&img, W, H, want, interlace ? "palette+tRNS interlaced" : "palette+tRNS");
        vr_image_free(&img);
        free(d);
    }
    /* 2-bit palette */
    uint8_t idx2[W * H], want2[W * H * 3];
    for (int i = 0; i < W * H; i++) {
        idx2[i] = (uint8_t)((i * 7) % 4);
        memcpy(want2 + 3 * i, &plte[idx2[i]], 3);
    }
    struct png_spec s2 = {W, H, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx2, plte, 4, NULL, 0, NULL};
    size_t n;
    uint8_t *d = make_png(&s2, &n);
    vr_image img = {0};
    decode_ok(d, n, &img);
    check_pixels(&img, W, H, want2, "2-bit palette");
    vr_image_free(&img);
    free(d);
}

static void test_png_gray(void **state) {
    (void)state;
    enum { W = 11, H = 5 };
    /* 1, 2, 4, 8-bit gray, scaled to 0..255 as Pillow's "1", "L;2", "L;4" */
    int depths[] = {1, 2, 4, 8};
    for (int k = 0; k < 4; k++) {
        int depth = depths[k], maxv = (1 << depth) - 1;
        uint8_t smp[W * H], want[W * H * 3];
        for (int i = 0; i < W * H; i++) {
            smp[i] = (uint8_t)((i * 37 + 3) % (maxv + 1));
            want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = (uint8_t)(smp[i] * 255 / maxv);
        }
        png_color_16 trns = {0};
        trns.gray = (png_uint_16)(maxv / 2); /* tRNS on gray: ignored */
        for (int interlace = 0; interlace < 2; interlace++) {
            struct png_spec s = {W, H, depth, PNG_COLOR_TYPE_GRAY, interlace ? PNG_INTERLACE_ADAM7 : 0, smp,
                                 NULL, 0, NULL, 0, &trns};
            size_t n;
            uint8_t *d = make_png(&s, &n);
            vr_image img = {0};
            decode_ok(d, n, &img);
            char what[64];
            snprintf(what, sizeof what, "%d-bit gray%s", depth, interlace ? " interlaced" : "");
            check_pixels(&img, W, H, want, what);
            vr_image_free(&img);
            free(d);
        }
    }
    /* 16-bit gray: Pillow mode "I"; convert('RGB') clamps to 255 */
    static const unsigned vals[] = {0, 1, 100, 254, 255, 256, 1000, 32768, 65535, 0x00ff, 0x0100};
    uint8_t smp16[W * H * 2], want[W * H * 3];
    for (int i = 0; i < W * H; i++) {
        unsigned v = vals[i % 11];
        smp16[2 * i] = (uint8_t)(v >> 8), smp16[2 * i + 1] = (uint8_t)v;
        want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = (uint8_t)(v > 255 ? 255 : v);
    }
    for (int interlace = 0; interlace < 2; interlace++) {
        struct png_spec s = {W, H, 16, PNG_COLOR_TYPE_GRAY, interlace ? PNG_INTERLACE_ADAM7 : 0, smp16, NULL, 0,
                             NULL, 0, NULL};
        size_t n;
        uint8_t *d = make_png(&s, &n);
        vr_image img = {0};
        decode_ok(d, n, &img);
        check_pixels(&img, W, H, want, interlace ? "16-bit gray interlaced" : "16-bit gray");
        vr_image_free(&img);
        free(d);
    }
}

static void test_png_alpha_and_16bit(void **state) {
    (void)state;
    enum { W = 13, H = 11 };
    /* 8-bit gray+alpha: gray replicated, alpha dropped */
    {
        uint8_t smp[W * H * 2], want[W * H * 3];
        for (int i = 0; i < W * H; i++) {
            smp[2 * i] = (uint8_t)(i * 3), smp[2 * i + 1] = (uint8_t)(i % 3 == 0 ? 0 : i * 7);
            want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = smp[2 * i];
        }
        struct png_spec s = {W, H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, 0, smp, NULL, 0, NULL, 0, NULL};
        size_t n;
        uint8_t *d = make_png(&s, &n);
        vr_image img = {0};
        decode_ok(d, n, &img);
        check_pixels(&img, W, H, want, "gray+alpha");
        vr_image_free(&img);
        free(d);
    }
    /* 16-bit gray+alpha: high byte of gray */
    {
        uint8_t smp[W * H * 4], want[W * H * 3];
        for (int i = 0; i < W * H; i++) {
            smp[4 * i] = (uint8_t)(i * 5), smp[4 * i + 1] = (uint8_t)(255 - i), smp[4 * i + 2] = 0,
                    smp[4 * i + 3] = (uint8_t)i;
            want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = smp[4 * i];
        }
        struct png_spec s = {W, H, 16, PNG_COLOR_TYPE_GRAY_ALPHA, 0, smp, NULL, 0, NULL, 0, NULL};
        size_t n;
        uint8_t *d = make_png(&s, &n);
        vr_image img = {0};
        decode_ok(d, n, &img);
        check_pixels(&img, W, H, want, "16-bit gray+alpha");
        vr_image_free(&img);
        free(d);
    }
    /* 8-bit RGB (with tRNS, ignored) and RGBA, plain and interlaced */
    for (int alpha = 0; alpha < 2; alpha++) {
        int ch = alpha ? 4 : 3;
        uint8_t smp[W * H * 4], want[W * H * 3];
        for (int i = 0; i < W * H; i++) {
            for (int c = 0; c < 3; c++) want[3 * i + c] = smp[ch * i + c] = (uint8_t)(i * (c + 3) + 11 * c);
            if (alpha) smp[4 * i + 3] = (uint8_t)(i < 20 ? 0 : 255 - i); /* a transparent band */
        }
        png_color_16 trns = {0};
        trns.red = smp[0], trns.green = smp[1], trns.blue = smp[2];
        for (int interlace = 0; interlace < 2; interlace++) {
            struct png_spec s = {W, H, 8, alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
                                 interlace ? PNG_INTERLACE_ADAM7 : 0, smp, NULL, 0, NULL, 0, alpha ? NULL : &trns};
            size_t n;
            uint8_t *d = make_png(&s, &n);
            vr_image img = {0};
            decode_ok(d, n, &img);
            char what[64];
            snprintf(what, sizeof what, "%s%s", alpha ? "RGBA" : "RGB+tRNS", interlace ? " interlaced" : "");
            check_pixels(&img, W, H, want, what);
            vr_image_free(&img);
            free(d);
        }
    }
    /* 16-bit RGB and RGBA: Pillow's "RGB;16B"/"RGBA;16B" unpackers keep the high byte */
    for (int alpha = 0; alpha < 2; alpha++) {
        int ch = alpha ? 4 : 3;
        uint8_t smp[W * H * 8], want[W * H * 3];
        for (int i = 0; i < W * H; i++) {
            for (int c = 0; c < ch; c++) {
                unsigned v = (unsigned)(i * 977 + c * 12345 + 255) & 0xffffu;
                smp[(ch * i + c) * 2] = (uint8_t)(v >> 8), smp[(ch * i + c) * 2 + 1] = (uint8_t)v;
                if (c < 3) want[3 * i + c] = (uint8_t)(v >> 8);
            }
        }
        for (int interlace = 0; interlace < 2; interlace++) {
            struct png_spec s = {W, H, 16, alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
                                 interlace ? PNG_INTERLACE_ADAM7 : 0, smp, NULL, 0, NULL, 0, NULL};
            size_t n;
            uint8_t *d = make_png(&s, &n);
            vr_image img = {0};
            decode_ok(d, n, &img);
            char what[64];
            snprintf(what, sizeof what, "16-bit %s%s", alpha ? "RGBA" : "RGB", interlace ? " interlaced" : "");
            check_pixels(&img, W, H, want, what);
            vr_image_free(&img);
            free(d);
        }
    }
    /* 1x1 */
    {
        uint8_t smp[3] = {1, 2, 3};
        struct png_spec s = {1, 1, 8, PNG_COLOR_TYPE_RGB, 0, smp, NULL, 0, NULL, 0, NULL};
        size_t n;
        uint8_t *d = make_png(&s, &n);
        vr_image img = {0};
        decode_ok(d, n, &img);
        check_pixels(&img, 1, 1, smp, "1x1 RGB");
        vr_image_free(&img);
        free(d);
    }
}

/* JPEG gray and CMYK/YCCK, made here at quality 100 from flat 8x8 blocks (near lossless). */
static void test_jpeg_variants(void **state) {
    (void)state;
    enum { W = 32, H = 24 };
    uint8_t gray[W * H], cmyk[W * H * 4], rgb[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int b = (y / 8) * 4 + x / 8, i = y * W + x;
            gray[i] = (uint8_t)(b * 21);
            for (int c = 0; c < 4; c++) cmyk[4 * i + c] = (uint8_t)((b * (37 + 50 * c) + 60 * c) % 256);
            for (int c = 0; c < 3; c++) rgb[3 * i + c] = (uint8_t)((b * (29 + 40 * c)) % 256);
        }
    size_t n;
    vr_image img = {0};
    uint8_t want[W * H * 3];

    uint8_t *d = make_jpeg(W, H, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, gray, &n);
    decode_ok(d, n, &img);
    for (int i = 0; i < W * H; i++) want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = gray[i];
    assert_int_equal(img.width, W);
    assert_int_equal(img.height, H);
    for (int i = 0; i < W * H; i++) {
        assert_int_equal(img.rgb[3 * i], img.rgb[3 * i + 1]);
        assert_int_equal(img.rgb[3 * i], img.rgb[3 * i + 2]);
    }
    int dg = max_u8_diff(img.rgb, want, sizeof want);
    vr_image_free(&img);
    free(d);

    /* rgb via YCbCr at q100 4:4:4; progressive holds the same coefficients: same pixels */
    d = make_jpeg(W, H, 3, JCS_RGB, JCS_YCbCr, rgb, &n);
    decode_ok(d, n, &img);
    int drgb = max_u8_diff(img.rgb, rgb, sizeof rgb);
    free(d);
    vr_image prog = {0};
    d = make_jpeg_ex(W, H, 3, JCS_RGB, JCS_YCbCr, rgb, 1, &n);
    decode_ok(d, n, &prog);
    assert_memory_equal(prog.rgb, img.rgb, sizeof rgb);
    vr_image_free(&prog);
    vr_image_free(&img);
    /* a progressive file with 600 scans (its last scan repeated): refused, bounded time */
    {
        size_t last = 0;
        for (size_t i = 2; i + 1 < n; i++)
            if (d[i] == 0xFF && d[i + 1] == 0xDA) last = i;
        assert_true(last > 0 && d[n - 2] == 0xFF && d[n - 1] == 0xD9);
        size_t seg = n - 2 - last, bn = last + 600 * seg + 2;
        uint8_t *b = malloc(bn);
        memcpy(b, d, last);
        for (int r = 0; r < 600; r++) memcpy(b + last + (size_t)r * seg, d + last, seg);
        b[bn - 2] = 0xFF, b[bn - 1] = 0xD9;
        expect_refused(b, bn, VR_ERR_UNSUPPORTED, "scans", "progressive JPEG with 600 scans");
        free(b);
    }
    /* a truncated progressive file is refused too (the cut lands in a later scan) */
    expect_refused(d, n - 30, VR_ERR_FORMAT, "truncated", "progressive JPEG cut");
    expect_refused(d, n / 2, VR_ERR_FORMAT, "truncated", "progressive JPEG cut in half");
    free(d);

    /* CMYK stored raw (Adobe-inverted by convention): Pillow reads "CMYK;I" then cmyk2rgb */
    for (int i = 0; i < W * H; i++) {
        unsigned nk = cmyk[4 * i + 3];
        for (int c = 0; c < 3; c++) {
            unsigned C = 255u - cmyk[4 * i + c], tmp = C * nk + 128u;
            want[3 * i + c] = (uint8_t)((int)nk - (int)(((tmp >> 8) + tmp) >> 8));
        }
    }
    J_COLOR_SPACE spaces[2] = {JCS_CMYK, JCS_YCCK};
    int dc[2];
    for (int k = 0; k < 2; k++) {
        d = make_jpeg(W, H, 4, JCS_CMYK, spaces[k], cmyk, &n);
        decode_ok(d, n, &img);
        dc[k] = max_u8_diff(img.rgb, want, sizeof want);
        vr_image_free(&img);
        free(d);
    }
    printf("  q100 JPEG max diff from source: gray %d, RGB %d, CMYK %d, YCCK %d\n", dg, drgb, dc[0], dc[1]);
    assert_true(dg <= 2);
    assert_true(drgb <= 3);
    assert_true(dc[0] <= 3);
    assert_true(dc[1] <= 3);
}

/* ---------------------------------------------------------------------------------------- */
/* resize and preprocessing sanity                                                          */

static void test_resize_sanity(void **state) {
    (void)state;
    vr_image in = {0};
    in.width = 37, in.height = 23;
    in.rgb = malloc(37 * 23 * 3);
    for (int i = 0; i < 37 * 23 * 3; i++) in.rgb[i] = (uint8_t)((i * 7919) >> 3);
    vr_image out = {0};
    vr_error err = {0};
    /* identity */
    assert_int_equal(vr_image_resize_bicubic(&in, 37, 23, &out, &err), VR_OK);
    assert_memory_equal(out.rgb, in.rgb, 37 * 23 * 3);
    vr_image_free(&out);
    /* constant images stay constant, up and down, one axis or both */
    vr_image cst = {0};
    cst.width = 19, cst.height = 31;
    cst.rgb = malloc(19 * 31 * 3);
    for (int i = 0; i < 19 * 31; i++) cst.rgb[3 * i] = 0, cst.rgb[3 * i + 1] = 137, cst.rgb[3 * i + 2] = 255;
    int sizes[][2] = {{1, 1}, {19, 5}, {7, 31}, {64, 64}, {3, 100}, {200, 2}, {19, 31}, {20, 31}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        assert_int_equal(vr_image_resize_bicubic(&cst, sizes[s][0], sizes[s][1], &out, &err), VR_OK);
        for (int i = 0; i < out.width * out.height; i++) {
            assert_int_equal(out.rgb[3 * i], 0);
            assert_int_equal(out.rgb[3 * i + 1], 137);
            assert_int_equal(out.rgb[3 * i + 2], 255);
        }
        vr_image_free(&out);
    }
    /* 1x1 up to anything: constant */
    vr_image one = {0};
    uint8_t px[3] = {9, 99, 199};
    one.width = one.height = 1, one.rgb = px;
    assert_int_equal(vr_image_resize_bicubic(&one, 5, 3, &out, &err), VR_OK);
    for (int i = 0; i < 15; i++) assert_memory_equal(out.rgb + 3 * i, px, 3);
    vr_image_free(&out);
    /* refusals */
    assert_int_equal(vr_image_resize_bicubic(&in, 0, 5, &out, &err), VR_ERR_INVALID);
    assert_int_equal(vr_image_resize_bicubic(&in, 5, -1, &out, &err), VR_ERR_INVALID);
    assert_int_equal(vr_image_resize_bicubic(&in, 100000, 100000, &out, &err), VR_ERR_INVALID);
    vr_image empty = {0};
    assert_int_equal(vr_image_resize_bicubic(&empty, 5, 5, &out, &err), VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "empty"));
    vr_image_free(&cst);
    vr_image_free(&in);
}

static void test_preprocess_sanity(void **state) {
    (void)state;
    vr_clip_preprocess p;
    vr_clip_preprocess_default(&p, 16);
    assert_int_equal(p.size, 16);
    assert_true(p.mean[0] == 0.48145466f && p.std[2] == 0.27577711f);
    vr_error err = {0};
    /* geometry: HF shortest edge, floor, crop offsets */
    int rw, rh, top, left;
    assert_int_equal(vr_clip_resize_geometry(200, 150, 56, &rw, &rh, &top, &left, &err), VR_OK);
    assert_int_equal(rw, 74), assert_int_equal(rh, 56), assert_int_equal(top, 0), assert_int_equal(left, 9);
    assert_int_equal(vr_clip_resize_geometry(3, 3000, 448, &rw, &rh, &top, &left, &err), VR_OK);
    assert_int_equal(rw, 448), assert_int_equal(rh, 448000), assert_int_equal(top, (448000 - 448) / 2);
    assert_int_equal(vr_clip_resize_geometry(0, 3, 16, &rw, &rh, &top, &left, &err), VR_ERR_INVALID);
    assert_int_equal(vr_clip_resize_geometry(3, 3, 0, &rw, &rh, &top, &left, &err), VR_ERR_INVALID);

    /* a very elongated image: the crop is computed without materialising the 448x448000
     * resize, and equals cropping the full resize (checked on a smaller one) */
    vr_image tall = {0};
    tall.width = 3, tall.height = 700;
    tall.rgb = malloc(3 * 700 * 3);
    for (int i = 0; i < 3 * 700 * 3; i++) tall.rgb[i] = (uint8_t)(i * 31 + (i >> 5));
    float *a = malloc(sizeof(float) * 3 * 448 * 448), *b = malloc(sizeof(float) * 3 * 448 * 448);
    vr_clip_preprocess big;
    vr_clip_preprocess_default(&big, 448);
    assert_int_equal(vr_clip_preprocess_image(&big, &tall, a, NULL, &err), VR_OK); /* 448 x 104533 */
    vr_clip_preprocess_default(&big, 40);
    vr_image res = {0};
    assert_int_equal(vr_clip_preprocess_image(&big, &tall, a, &res, &err), VR_OK);
    assert_int_equal(res.width, 40), assert_int_equal(res.height, 9333);
    assert_int_equal(vr_clip_preprocess_image(&big, &tall, b, NULL, &err), VR_OK);
    assert_memory_equal(a, b, sizeof(float) * 3 * 40 * 40);
    vr_image_free(&res);

    /* value mapping: 0 and 255 */
    vr_image px = {0};
    uint8_t v[3] = {0, 255, 128};
    px.width = px.height = 1, px.rgb = v;
    vr_clip_preprocess_default(&p, 2);
    float out[12];
    assert_int_equal(vr_clip_preprocess_image(&p, &px, out, NULL, &err), VR_OK);
    for (int i = 0; i < 4; i++) {
        assert_true(out[i] == (0.0f - p.mean[0]) / p.std[0]);
        assert_true(out[4 + i] == (1.0f - p.mean[1]) / p.std[1]);
        assert_true(out[8 + i] == ((float)(128.0 / 255.0) - p.mean[2]) / p.std[2]);
    }
    /* refusals */
    vr_image empty = {0};
    assert_int_equal(vr_clip_preprocess_image(&p, &empty, out, NULL, &err), VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "empty"));
    assert_int_equal(vr_clip_preprocess_image(&p, &px, NULL, NULL, &err), VR_ERR_INVALID);
    vr_clip_preprocess bad = p;
    bad.size = 0;
    assert_int_equal(vr_clip_preprocess_image(&bad, &px, out, NULL, &err), VR_ERR_INVALID);
    bad = p;
    bad.std[1] = 0.0f;
    assert_int_equal(vr_clip_preprocess_image(&bad, &px, out, NULL, &err), VR_ERR_INVALID);
    free(a);
    free(b);
    vr_image_free(&tall);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_decode),
        cmocka_unit_test(test_fixture_preprocess),
        cmocka_unit_test(test_fixture_end_to_end),
        cmocka_unit_test(test_refuse_truncated),
        cmocka_unit_test(test_refuse_corrupt),
        cmocka_unit_test(test_refuse_foreign_and_empty),
        cmocka_unit_test(test_refuse_huge),
        cmocka_unit_test(test_png_palette),
        cmocka_unit_test(test_png_gray),
        cmocka_unit_test(test_png_alpha_and_16bit),
        cmocka_unit_test(test_jpeg_variants),
        cmocka_unit_test(test_resize_sanity),
        cmocka_unit_test(test_preprocess_sanity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
