/* model/image_preprocess.c — Pillow 9.4 BICUBIC resize (libImaging/Resample.c) and the HF
 * CLIPImageProcessor pipeline (shortest-edge resize, center crop, rescale, normalise, CHW).
 * Bit-exactness with Pillow is the contract: keep the double arithmetic in the exact order
 * Pillow uses (one operation per statement, so no compiler may fuse a multiply-add), and the
 * 22-bit fixed point with u8 rounding after each pass. Must not decode or know the model. */
#include "model/image.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2) /* Pillow's fixed point for 8-bit images */
#define VR_CLIP_MAX_SIZE 4096       /* largest crop size accepted */

/* Pillow's bicubic_filter, a = -0.5, support 2. */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) {
        double t = (a + 2.0) * x;
        t = t - (a + 3.0);
        t = t * x;
        t = t * x;
        return t + 1.0;
    }
    if (x < 2.0) {
        double t = x - 5.0;
        t = t * x;
        t = t + 8.0;
        t = t * x;
        t = t - 4.0;
        return t * a;
    }
    return 0.0;
}

/* Resampling coefficients along one axis, for the output indices [o0, o0 + n). */
struct axis {
    int ksize;
    int *bounds; /* per output index: first input index, number of taps */
    int32_t *k;  /* per output index: ksize fixed-point weights */
};

static void axis_free(struct axis *a) {
    free(a->bounds);
    free(a->k);
    memset(a, 0, sizeof *a);
}

/* precompute_coeffs + normalize_coeffs_8bpc of Resample.c, box = (0, in). */
static vr_status axis_init(struct axis *a, int in, int out, int o0, int n, vr_error *err) {
    memset(a, 0, sizeof *a);
    double scale = (double)in / (double)out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    double ss = 1.0 / filterscale;
    double ks = ceil(support) * 2.0 + 1.0;
    if (ks > (double)(INT_MAX / 8) || (double)n * ks > (double)(SIZE_MAX / sizeof(double)) / 2)
        return vr_error_set(err, VR_ERR_NOMEM, "resize from %d to %d pixels needs too large a filter", in, out);
    a->ksize = (int)ks;
    a->bounds = malloc((size_t)n * 2 * sizeof *a->bounds);
    a->k = malloc((size_t)n * (size_t)a->ksize * sizeof *a->k);
    double *w = malloc((size_t)a->ksize * sizeof *w);
    if (!a->bounds || !a->k || !w) {
        free(w);
        axis_free(a);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory for resize coefficients");
    }
    for (int i = 0; i < n; i++) {
        int xx = o0 + i;
        double center = ((double)xx + 0.5) * scale; /* in0 = 0 */
        double lo = center - support;
        lo = lo + 0.5;
        double hi = center + support;
        hi = hi + 0.5;
        int xmin = (int)lo;
        if (xmin < 0) xmin = 0;
        int xmax = (int)hi;
        if (xmax > in) xmax = in;
        xmax -= xmin;
        if (xmax > a->ksize) xmax = a->ksize; /* cannot happen; keeps w[] in bounds */
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            double t = (double)(x + xmin) - center;
            t = t + 0.5;
            t = t * ss;
            w[x] = bicubic(t);
            ww += w[x];
        }
        int32_t *k = a->k + (size_t)i * (size_t)a->ksize;
        for (int x = 0; x < a->ksize; x++) {
            double v = 0.0;
            if (x < xmax) v = ww != 0.0 ? w[x] / ww : w[x];
            double f = v * (double)(1 << PRECISION_BITS);
            k[x] = v < 0 ? (int32_t)(-0.5 + f) : (int32_t)(0.5 + f);
        }
        a->bounds[2 * i] = xmin;
        a->bounds[2 * i + 1] = xmax;
    }
    free(w);
    return VR_OK;
}

static uint8_t clip8(int64_t v) {
    if (v >= ((int64_t)1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Writes the window [x0, x0+cw) x [y0, y0+ch) of the in -> out_w x out_h Pillow BICUBIC resize
 * to dst (ch rows of cw*3 bytes). Each output pixel depends only on its own index, so the
 * window is bit-identical to cropping the full resize, without materialising it. */
static vr_status resample_window(const vr_image *in, int out_w, int out_h, int x0, int y0, int cw, int ch,
                                 uint8_t *dst, vr_error *err) {
    int need_h = out_w != in->width, need_v = out_h != in->height;
    struct axis ax = {0}, ay = {0};
    uint8_t *tmp = NULL;
    int64_t *acc = NULL;
    vr_status st = VR_OK;
    int r0 = y0, r1 = y0 + ch; /* input rows the vertical pass reads */
    if (need_v) {
        if ((st = axis_init(&ay, in->height, out_h, y0, ch, err)) != VR_OK) goto done;
        r0 = INT_MAX, r1 = 0;
        for (int i = 0; i < ch; i++) {
            if (ay.bounds[2 * i] < r0) r0 = ay.bounds[2 * i];
            if (ay.bounds[2 * i] + ay.bounds[2 * i + 1] > r1) r1 = ay.bounds[2 * i] + ay.bounds[2 * i + 1];
        }
        if (r1 < r0) r1 = r0;
    }
    /* src(y) = row y of the horizontally resampled image, columns x0.. of the window. */
    const uint8_t *src;
    size_t stride;
    int row_off;
    if (need_h) {
        if ((st = axis_init(&ax, in->width, out_w, x0, cw, err)) != VR_OK) goto done;
        stride = (size_t)cw * 3;
        tmp = malloc((size_t)(r1 - r0 > 0 ? r1 - r0 : 1) * stride);
        if (!tmp) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory for a resize to %dx%d", out_w, out_h);
            goto done;
        }
        for (int y = r0; y < r1; y++) {
            const uint8_t *s = in->rgb + (size_t)y * in->width * 3;
            uint8_t *d = tmp + (size_t)(y - r0) * stride;
            for (int i = 0; i < cw; i++) {
                int xmin = ax.bounds[2 * i], xlen = ax.bounds[2 * i + 1];
                const int32_t *k = ax.k + (size_t)i * (size_t)ax.ksize;
                int64_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < xlen; x++) {
                    const uint8_t *p = s + (size_t)(xmin + x) * 3;
                    s0 += (int64_t)p[0] * k[x];
                    s1 += (int64_t)p[1] * k[x];
                    s2 += (int64_t)p[2] * k[x];
                }
                d[3 * i] = clip8(s0);
                d[3 * i + 1] = clip8(s1);
                d[3 * i + 2] = clip8(s2);
            }
        }
        src = tmp;
        row_off = r0;
    } else {
        src = in->rgb + (size_t)x0 * 3;
        stride = (size_t)in->width * 3;
        row_off = 0;
    }
    size_t rowlen = (size_t)cw * 3;
    if (!need_v) {
        for (int i = 0; i < ch; i++) memcpy(dst + (size_t)i * rowlen, src + (size_t)(y0 + i - row_off) * stride, rowlen);
        goto done;
    }
    acc = malloc(rowlen * sizeof *acc);
    if (!acc) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory for a resize to %dx%d", out_w, out_h);
        goto done;
    }
    for (int i = 0; i < ch; i++) {
        int ymin = ay.bounds[2 * i], ylen = ay.bounds[2 * i + 1];
        const int32_t *k = ay.k + (size_t)i * (size_t)ay.ksize;
        for (size_t c = 0; c < rowlen; c++) acc[c] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < ylen; y++) {
            const uint8_t *s = src + (size_t)(ymin + y - row_off) * stride;
            int64_t kk = k[y];
            for (size_t c = 0; c < rowlen; c++) acc[c] += (int64_t)s[c] * kk;
        }
        uint8_t *d = dst + (size_t)i * rowlen;
        for (size_t c = 0; c < rowlen; c++) d[c] = clip8(acc[c]);
    }
done:
    free(acc);
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return st;
}

static vr_status check_image(const vr_image *img, vr_error *err) {
    if (!img || !img->rgb || img->width < 1 || img->height < 1)
        return vr_error_set(err, VR_ERR_INVALID, "image is empty (%dx%d); nothing to resize", img ? img->width : 0,
                            img ? img->height : 0);
    if (img->width > VR_IMAGE_MAX_SIDE || img->height > VR_IMAGE_MAX_SIDE ||
        (uint64_t)img->width * (uint64_t)img->height > VR_IMAGE_MAX_PIXELS)
        return vr_error_set(err, VR_ERR_INVALID, "image is %dx%d, over the limit of %d per side and %u pixels",
                            img->width, img->height, VR_IMAGE_MAX_SIDE, (unsigned)VR_IMAGE_MAX_PIXELS);
    return VR_OK;
}

vr_status vr_image_resize_bicubic(const vr_image *in, int out_w, int out_h, vr_image *out, vr_error *err) {
    if (!out) return vr_error_set(err, VR_ERR_INVALID, "resize: no output image given");
    memset(out, 0, sizeof *out);
    vr_status st = check_image(in, err);
    if (st != VR_OK) return st;
    if (out_w < 1 || out_h < 1 || (uint64_t)out_w * (uint64_t)out_h > VR_IMAGE_MAX_PIXELS)
        return vr_error_set(err, VR_ERR_INVALID, "resize to %dx%d: the size must be at least 1x1 and at most %u pixels",
                            out_w, out_h, (unsigned)VR_IMAGE_MAX_PIXELS);
    uint8_t *rgb = malloc((size_t)out_w * (size_t)out_h * 3);
    if (!rgb) return vr_error_set(err, VR_ERR_NOMEM, "out of memory for a %dx%d image", out_w, out_h);
    st = resample_window(in, out_w, out_h, 0, 0, out_w, out_h, rgb, err);
    if (st != VR_OK) {
        free(rgb);
        return st;
    }
    out->width = out_w;
    out->height = out_h;
    out->rgb = rgb;
    return VR_OK;
}

void vr_clip_preprocess_default(vr_clip_preprocess *p, int size) {
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    p->size = size;
    memcpy(p->mean, mean, sizeof mean);
    memcpy(p->std, std, sizeof std);
}

vr_status vr_clip_resize_geometry(int width, int height, int size, int *resized_w, int *resized_h, int *crop_top,
                                  int *crop_left, vr_error *err) {
    if (width < 1 || height < 1)
        return vr_error_set(err, VR_ERR_INVALID, "image is empty (%dx%d); nothing to preprocess", width, height);
    if (size < 1 || size > VR_CLIP_MAX_SIZE)
        return vr_error_set(err, VR_ERR_INVALID, "preprocess size %d is outside 1..%d", size, VR_CLIP_MAX_SIZE);
    int64_t shortside = width < height ? width : height, longside = width < height ? height : width;
    int64_t new_long = (int64_t)size * longside / shortside;
    if (new_long > INT_MAX)
        return vr_error_set(err, VR_ERR_INVALID, "image %dx%d is too elongated to preprocess", width, height);
    int rw = width <= height ? size : (int)new_long;
    int rh = width <= height ? (int)new_long : size;
    if (resized_w) *resized_w = rw;
    if (resized_h) *resized_h = rh;
    if (crop_top) *crop_top = (rh - size) / 2;
    if (crop_left) *crop_left = (rw - size) / 2;
    return VR_OK;
}

vr_status vr_clip_preprocess_image(const vr_clip_preprocess *p, const vr_image *img, float *pixels,
                                   vr_image *resized, vr_error *err) {
    if (resized) memset(resized, 0, sizeof *resized);
    if (!p || !pixels) return vr_error_set(err, VR_ERR_INVALID, "preprocess: no settings or output buffer given");
    vr_status st = check_image(img, err);
    if (st != VR_OK) return st;
    for (int c = 0; c < 3; c++)
        if (!(p->std[c] > 0.0f) || !isfinite(p->mean[c]) || !isfinite(p->std[c]))
            return vr_error_set(err, VR_ERR_INVALID, "preprocess: std[%d] must be positive and mean finite", c);
    int S = p->size, rw, rh, top, left;
    if ((st = vr_clip_resize_geometry(img->width, img->height, S, &rw, &rh, &top, &left, err)) != VR_OK) return st;

    size_t n = (size_t)S * (size_t)S;
    uint8_t *crop = malloc(n * 3);
    if (!crop) return vr_error_set(err, VR_ERR_NOMEM, "out of memory for a %dx%d crop", S, S);
    if (resized) {
        st = vr_image_resize_bicubic(img, rw, rh, resized, err);
        if (st == VR_OK)
            for (int y = 0; y < S; y++)
                memcpy(crop + (size_t)y * S * 3, resized->rgb + ((size_t)(top + y) * rw + (size_t)left) * 3,
                       (size_t)S * 3);
    } else {
        st = resample_window(img, rw, rh, left, top, S, S, crop, err);
    }
    if (st != VR_OK) {
        free(crop);
        if (resized) vr_image_free(resized);
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++) {
            float x = (float)((double)crop[3 * i + c] * (1.0 / 255.0));
            float d = x - p->mean[c];
            pixels[(size_t)c * n + i] = d / p->std[c];
        }
    }
    free(crop);
    return VR_OK;
}
