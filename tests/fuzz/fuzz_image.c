/* tests/fuzz/fuzz_image.c — fuzz target for the image decoders (untrusted bytes) and, on a
 * successful decode, the CLIP preprocessing at 32x32. Seeds are a tiny JPEG and PNG encoded
 * here, plus the fixture images when ../shared exists. Must only report crashes (via the
 * sanitizers), never judge what a refusal says. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "common/mapped_file.h"
#include "model/image.h"
#include "tests/support/fixtures.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vr_image img = {0};
    vr_error err = {0};
    if (vr_image_decode(data, size, "fuzz", &img, &err) == VR_OK) {
        if (!img.rgb || img.width < 1 || img.height < 1) abort();
        vr_clip_preprocess p;
        vr_clip_preprocess_default(&p, 32);
        static float pixels[3 * 32 * 32];
        /* Very elongated images are legitimately refused; anything else must succeed. */
        vr_status st = vr_clip_preprocess_image(&p, &img, pixels, NULL, &err);
        if (st != VR_OK && st != VR_ERR_INVALID && st != VR_ERR_NOMEM) abort();
        vr_image_free(&img);
    } else if (img.rgb || err.msg[0] == 0) {
        abort(); /* a refusal must leave nothing allocated and say why */
    }
    return 0;
}

/* ---- seeds ------------------------------------------------------------------------------ */

struct seedbuf {
    uint8_t *p;
    size_t n, cap;
};

static void seed_put(struct seedbuf *m, const void *d, size_t n) {
    if (m->n + n > m->cap) {
        size_t cap = (m->n + n) * 2 + 64;
        uint8_t *p = realloc(m->p, cap);
        if (!p) abort();
        m->p = p, m->cap = cap;
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}

static void png_put(png_structp png, png_bytep d, size_t n) { seed_put(png_get_io_ptr(png), d, n); }
static void png_flush_noop(png_structp png) { (void)png; }

static int png_encode_run(png_structp png, png_infop info, struct seedbuf *m, int interlace) {
    if (setjmp(png_jmpbuf(png))) return -1;
    enum { W = 7, H = 5 };
    png_set_write_fn(png, m, png_put, png_flush_noop);
    png_set_IHDR(png, info, W, H, 8, PNG_COLOR_TYPE_RGB_ALPHA, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    uint8_t row[W * 4];
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < H; y++) {
            for (int i = 0; i < W * 4; i++) row[i] = (uint8_t)(y * 40 + i * 9);
            png_write_row(png, row);
        }
    png_write_end(png, info);
    return 0;
}

static uint8_t *tiny_png(size_t *size, int interlace) {
    struct seedbuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!png) abort();
    png_infop info = png_create_info_struct(png);
    if (!info) abort();
    if (png_encode_run(png, info, &m, interlace) != 0) abort();
    png_destroy_write_struct(&png, &info);
    *size = m.n;
    return m.p;
}

static uint8_t *tiny_jpeg(size_t *size, int progressive, int gray) {
    enum { W = 19, H = 11 };
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &buf, &n);
    c.image_width = W;
    c.image_height = H;
    c.input_components = gray ? 1 : 3;
    c.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 80, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[W * 3];
    while (c.next_scanline < c.image_height) {
        for (int i = 0; i < W * 3; i++) row[i] = (uint8_t)(c.next_scanline * 20 + (unsigned)i * 7);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    uint8_t *out = malloc(n);
    if (!out) abort();
    memcpy(out, buf, n);
    free(buf);
    *size = n;
    return out;
}

int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes) {
    enum { MAX_SEEDS = 16 };
    *seeds = calloc(MAX_SEEDS, sizeof **seeds);
    *sizes = calloc(MAX_SEEDS, sizeof **sizes);
    if (!*seeds || !*sizes) abort();
    int n = 0;
    (*seeds)[n] = tiny_jpeg(&(*sizes)[n], 0, 0), n++;
    (*seeds)[n] = tiny_jpeg(&(*sizes)[n], 1, 0), n++;
    (*seeds)[n] = tiny_jpeg(&(*sizes)[n], 0, 1), n++;
    (*seeds)[n] = tiny_png(&(*sizes)[n], PNG_INTERLACE_NONE), n++;
    (*seeds)[n] = tiny_png(&(*sizes)[n], PNG_INTERLACE_ADAM7), n++;
    if (vrt_shared_dir()) {
        static const char *files[] = {"images/img0.jpg", "images/img1.png", "images/img2.png", "images/img3.jpg"};
        for (size_t i = 0; i < sizeof files / sizeof files[0] && n < MAX_SEEDS; i++) {
            char *buf = NULL;
            size_t sz = 0;
            vr_error err = {0};
            if (vr_read_file(vrt_fixture_path(files[i]), (size_t)16 << 20, &buf, &sz, &err) != VR_OK) {
                fprintf(stderr, "fuzz_image: seed skipped: %s\n", err.msg);
                continue;
            }
            (*seeds)[n] = (uint8_t *)buf;
            (*sizes)[n] = sz;
            n++;
        }
    } else {
        fprintf(stderr, "fuzz_image: ../shared not found; fuzzing with the built-in seeds only\n");
    }
    return n;
}
