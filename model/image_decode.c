/* model/image_decode.c — JPEG (libjpeg-turbo) and PNG (libpng) bytes to RGB u8, with the
 * pixel semantics of PIL Image.open(...).convert('RGB'): grayscale replicated, alpha dropped
 * (never composited), palette expanded, 16-bit reduced as Pillow does, no EXIF orientation,
 * no gamma or colour management.
 * The bytes are untrusted. This file must never exit, print or allocate beyond the limits in
 * image.h: every malformed, truncated or oversized file is refused with a vr_error. */
#include "model/image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "common/mapped_file.h"

/* A progressive JPEG can hold thousands of tiny scans that take minutes to decode (the
 * libjpeg-turbo "LIMITSCANS" advice); real files have a few dozen at most. */
#define VR_JPEG_MAX_SCANS 500
/* libjpeg's whole-image buffers (progressive / multi-scan files) may not exceed this. */
#define VR_JPEG_MAX_MEMORY ((long)1024 * 1024 * 1024)
/* Largest single PNG ancillary chunk libpng may buffer (text, ICC profile, ...). */
#define VR_PNG_MAX_CHUNK ((png_alloc_size_t)16 * 1024 * 1024)

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static const char *display_name(const char *name) { return name && *name ? name : "image"; }

/* Refuses dimensions over the limits; called before any pixel buffer exists. */
static vr_status check_dims(const char *name, const char *fmt, unsigned long w, unsigned long h, vr_error *err) {
    if (w == 0 || h == 0)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: %s declares an empty image (%lux%lu)", name, fmt, w, h);
    if (w > VR_IMAGE_MAX_SIDE || h > VR_IMAGE_MAX_SIDE || (unsigned long long)w * h > VR_IMAGE_MAX_PIXELS)
        return vr_error_set(err, VR_ERR_NOMEM,
                            "%s: %s is %lux%lu pixels, over the limit of %d per side and %u pixels in all; "
                            "downscale it first",
                            name, fmt, w, h, VR_IMAGE_MAX_SIDE, (unsigned)VR_IMAGE_MAX_PIXELS);
    return VR_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* JPEG                                                                                     */

struct jpeg_job {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us a pointer to it */
    struct jpeg_progress_mgr progress;
    jmp_buf jmp;
    struct jpeg_decompress_struct cinfo;
    int created;
    int truncated, too_many_scans;
    char msg[JMSG_LENGTH_MAX];
    const uint8_t *data;
    size_t size;
    const char *name;
    uint8_t *rgb, *row;
    vr_status code; /* a refusal decided by us (not by libjpeg) */
    vr_error *err;
};

static void jpeg_on_error(j_common_ptr cinfo) {
    struct jpeg_job *j = (struct jpeg_job *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, j->msg);
    longjmp(j->jmp, 1);
}

/* Warnings are ignored as Pillow ignores them (corrupt entropy data still decodes), except a
 * premature end of the data: libjpeg would pad the image with gray, we refuse the file. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    struct jpeg_job *j = (struct jpeg_job *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        j->truncated = 1;
        longjmp(j->jmp, 1);
    }
    if (level < 0) cinfo->err->num_warnings++;
}

static void jpeg_on_output(j_common_ptr cinfo) { (void)cinfo; /* never print */ }

static void jpeg_on_progress(j_common_ptr cinfo) {
    struct jpeg_job *j = (struct jpeg_job *)cinfo->err;
    if (j->cinfo.input_scan_number > VR_JPEG_MAX_SCANS) {
        j->too_many_scans = 1;
        longjmp(j->jmp, 1);
    }
}

/* Pillow: a 4-component JPEG is mode CMYK read with rawmode "CMYK;I" (Adobe inverted), and
 * convert('RGB') is Convert.c cmyk2rgb: out = nk - nk*C/255 (rounded), nk = 255 - K. */
static uint8_t cmyk_channel(unsigned raw_c, unsigned raw_k) {
    unsigned c = 255u - raw_c, nk = raw_k; /* undo the Adobe inversion: K = 255 - raw_k */
    unsigned tmp = c * nk + 128u;
    unsigned m = ((tmp >> 8) + tmp) >> 8;
    int v = (int)nk - (int)m;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* All state lives in *j (the caller's frame), so nothing here is clobbered by longjmp. */
static vr_status jpeg_run(struct jpeg_job *j) {
    if (setjmp(j->jmp)) return VR_ERR_FORMAT;
    jpeg_create_decompress(&j->cinfo);
    j->created = 1;
    j->cinfo.mem->max_memory_to_use = VR_JPEG_MAX_MEMORY;
    j->progress.progress_monitor = jpeg_on_progress;
    j->cinfo.progress = &j->progress;
    jpeg_mem_src(&j->cinfo, j->data, (unsigned long)j->size);
    jpeg_read_header(&j->cinfo, TRUE);

    struct jpeg_decompress_struct *ci = &j->cinfo;
    if ((j->code = check_dims(j->name, "JPEG", ci->image_width, ci->image_height, j->err)) != VR_OK) return j->code;
    int comps = ci->num_components;
    if (comps == 1) {
        ci->out_color_space = JCS_GRAYSCALE;
    } else if (comps == 3 && (ci->jpeg_color_space == JCS_YCbCr || ci->jpeg_color_space == JCS_RGB)) {
        ci->out_color_space = JCS_RGB;
    } else if (comps == 4 && (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)) {
        ci->out_color_space = JCS_CMYK;
    } else {
        j->code = vr_error_set(j->err, VR_ERR_UNSUPPORTED,
                               "%s: JPEG with %d colour components (colour space %d) is not supported; "
                               "convert it to an RGB or grayscale JPEG or PNG",
                               j->name, comps, (int)ci->jpeg_color_space);
        return j->code;
    }
    /* Pillow's settings: libjpeg defaults (JDCT_ISLOW, fancy upsampling, no scaling). */
    ci->dct_method = JDCT_ISLOW;
    ci->do_fancy_upsampling = TRUE;
    ci->scale_num = ci->scale_denom = 1;
    jpeg_start_decompress(ci);

    size_t w = ci->output_width, h = ci->output_height;
    if ((j->code = check_dims(j->name, "JPEG", w, h, j->err)) != VR_OK) return j->code;
    j->rgb = malloc(w * h * 3);
    j->row = ci->output_components != 3 ? malloc(w * (size_t)ci->output_components) : NULL;
    if (!j->rgb || (ci->output_components != 3 && !j->row)) {
        j->code = vr_error_set(j->err, VR_ERR_NOMEM, "%s: out of memory for a %zux%zu image", j->name, w, h);
        return j->code;
    }
    while (ci->output_scanline < ci->output_height) {
        size_t y = ci->output_scanline;
        uint8_t *dst = j->rgb + y * w * 3;
        JSAMPROW rowp = ci->output_components == 3 ? dst : j->row;
        if (jpeg_read_scanlines(ci, &rowp, 1) != 1) {
            j->truncated = 1; /* cannot happen with an in-memory source; refuse anyway */
            return VR_ERR_FORMAT;
        }
        if (ci->output_components == 1) {
            for (size_t x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = j->row[x];
        } else if (ci->output_components == 4) {
            for (size_t x = 0; x < w; x++) {
                const uint8_t *s = j->row + 4 * x;
                for (int c = 0; c < 3; c++) dst[3 * x + c] = cmyk_channel(s[c], s[3]);
            }
        }
    }
    /* No jpeg_finish_decompress: every pixel is decoded; a missing EOI after complete image
     * data is accepted (as Pillow does), bytes after it are ignored. */
    return VR_OK;
}

static vr_status decode_jpeg(const uint8_t *data, size_t size, const char *name, vr_image *out, vr_error *err) {
    struct jpeg_job *j = calloc(1, sizeof *j);
    if (!j) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", name);
    j->data = data;
    j->size = size;
    j->name = name;
    j->err = err;
    j->cinfo.err = jpeg_std_error(&j->pub);
    j->pub.error_exit = jpeg_on_error;
    j->pub.emit_message = jpeg_on_message;
    j->pub.output_message = jpeg_on_output;
    vr_status st = jpeg_run(j);
    if (st != VR_OK && j->code == VR_OK) {
        if (j->truncated)
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: truncated JPEG (the file ends before the image data does)",
                              name);
        else if (j->too_many_scans)
            st = vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: progressive JPEG with more than %d scans; re-encode it",
                              name, VR_JPEG_MAX_SCANS);
        else
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: corrupt JPEG: %s", name, j->msg);
    }
    if (j->created) jpeg_destroy_decompress(&j->cinfo);
    free(j->row);
    if (st == VR_OK) {
        out->width = (int)j->cinfo.output_width;
        out->height = (int)j->cinfo.output_height;
        out->rgb = j->rgb;
    } else {
        free(j->rgb);
    }
    free(j);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* PNG                                                                                      */

struct png_job {
    png_structp png;
    png_infop info;
    const uint8_t *data;
    size_t size, pos;
    const char *name;
    int truncated;
    char msg[256];
    png_uint_32 w, h;
    uint8_t *rgb, *raw;
    png_bytep *rows;
    vr_status code;
    vr_error *err;
};

static void png_on_error(png_structp png, png_const_charp msg) {
    struct png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; /* never print */ }

static void png_on_read(png_structp png, png_bytep dst, size_t n) {
    struct png_job *j = png_get_io_ptr(png);
    if (n > j->size - j->pos) {
        j->truncated = 1;
        png_error(png, "file ends early");
    }
    memcpy(dst, j->data + j->pos, n);
    j->pos += n;
}

/* One decoded row (after png_set_packing: 1 byte per sample below 8 bits) to RGB, the way
 * Pillow's unpackers and convert('RGB') do it. */
static void png_row_to_rgb(const uint8_t *src, uint8_t *dst, png_uint_32 w, int color_type, int depth,
                           const uint8_t *palette /* 256*3 */) {
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        for (png_uint_32 x = 0; x < w; x++) memcpy(dst + 3 * x, palette + 3 * src[x], 3);
        return;
    }
    if (color_type == PNG_COLOR_TYPE_GRAY) {
        if (depth == 16) { /* Pillow mode "I", convert('RGB') clamps to 0..255 */
            for (png_uint_32 x = 0; x < w; x++) {
                unsigned v = ((unsigned)src[2 * x] << 8) | src[2 * x + 1];
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = (uint8_t)(v > 255 ? 255 : v);
            }
        } else { /* 1/2/4-bit scaled to 0..255 (Pillow "1", "L;2", "L;4"), 8-bit as is */
            unsigned scale = depth == 1 ? 255 : depth == 2 ? 85 : depth == 4 ? 17 : 1;
            for (png_uint_32 x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = (uint8_t)(src[x] * scale);
        }
        return;
    }
    /* RGB, RGBA, gray+alpha: 8-bit as is, 16-bit big-endian -> high byte; alpha dropped. */
    int chans = color_type == PNG_COLOR_TYPE_RGB ? 3 : color_type == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : 2;
    int bps = depth == 16 ? 2 : 1;
    for (png_uint_32 x = 0; x < w; x++) {
        const uint8_t *s = src + (size_t)x * chans * bps;
        if (chans == 2) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = s[0];
        else for (int c = 0; c < 3; c++) dst[3 * x + c] = s[c * bps];
    }
}

static vr_status png_run(struct png_job *j) {
    if (setjmp(png_jmpbuf(j->png))) return VR_ERR_FORMAT;
    png_set_read_fn(j->png, j, png_on_read);
    png_set_user_limits(j->png, VR_IMAGE_MAX_SIDE, VR_IMAGE_MAX_SIDE);
    png_set_chunk_cache_max(j->png, 1000);
    png_set_chunk_malloc_max(j->png, VR_PNG_MAX_CHUNK);
    /* Pillow checks every chunk's CRC; a bad one (critical or not) refuses the file. */
    png_set_crc_action(j->png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_read_info(j->png, j->info);

    int depth, color_type, interlace;
    png_get_IHDR(j->png, j->info, &j->w, &j->h, &depth, &color_type, &interlace, NULL, NULL);
    if ((j->code = check_dims(j->name, "PNG", j->w, j->h, j->err)) != VR_OK) return j->code;

    uint8_t palette[256 * 3];
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        /* Pillow (ImagingPaletteNew) starts from 256 black entries; PLTE overwrites the first
         * ones, so indices past PLTE give black. tRNS is ignored (alpha dropped). */
        memset(palette, 0, sizeof palette);
        png_colorp plte = NULL;
        int n = 0;
        if (png_get_PLTE(j->png, j->info, &plte, &n) == PNG_INFO_PLTE && plte) {
            if (n > 256) n = 256;
            for (int i = 0; i < n; i++) {
                palette[3 * i] = plte[i].red;
                palette[3 * i + 1] = plte[i].green;
                palette[3 * i + 2] = plte[i].blue;
            }
        }
    }
    if (depth < 8) png_set_packing(j->png);
    int passes = png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);

    int chans = png_get_channels(j->png, j->info);
    size_t expect = (size_t)j->w * (size_t)chans * (depth == 16 ? 2 : 1);
    size_t rowbytes = png_get_rowbytes(j->png, j->info);
    if (rowbytes != expect) {
        j->code = vr_error_set(j->err, VR_ERR_INTERNAL, "%s: unexpected PNG row size %zu (expected %zu)", j->name,
                               rowbytes, expect);
        return j->code;
    }
    size_t w = j->w, h = j->h;
    j->rgb = malloc(w * h * 3);
    /* Interlaced images need the whole raw image (passes are combined in place). */
    size_t raw_rows = passes > 1 ? h : 1;
    j->raw = malloc(rowbytes * raw_rows);
    if (!j->rgb || !j->raw) {
        j->code = vr_error_set(j->err, VR_ERR_NOMEM, "%s: out of memory for a %zux%zu image", j->name, w, h);
        return j->code;
    }
    if (passes > 1) {
        j->rows = malloc(h * sizeof *j->rows);
        if (!j->rows) {
            j->code = vr_error_set(j->err, VR_ERR_NOMEM, "%s: out of memory", j->name);
            return j->code;
        }
        for (size_t y = 0; y < h; y++) j->rows[y] = j->raw + y * rowbytes;
        png_read_image(j->png, j->rows);
        for (size_t y = 0; y < h; y++)
            png_row_to_rgb(j->rows[y], j->rgb + y * w * 3, j->w, color_type, depth, palette);
    } else {
        for (size_t y = 0; y < h; y++) {
            png_read_row(j->png, j->raw, NULL);
            png_row_to_rgb(j->raw, j->rgb + y * w * 3, j->w, color_type, depth, palette);
        }
    }
    /* No png_read_end: chunks after the image data (and a missing IEND) are ignored, as
     * Pillow does. A truncation inside the image data has already failed above. */
    return VR_OK;
}

static vr_status decode_png(const uint8_t *data, size_t size, const char *name, vr_image *out, vr_error *err) {
    /* Read the declared size ourselves first, for a clear refusal before libpng starts. */
    if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        unsigned long w = ((unsigned long)data[16] << 24) | ((unsigned long)data[17] << 16) |
                          ((unsigned long)data[18] << 8) | data[19];
        unsigned long h = ((unsigned long)data[20] << 24) | ((unsigned long)data[21] << 16) |
                          ((unsigned long)data[22] << 8) | data[23];
        if (w > 0 && h > 0) {
            vr_status st = check_dims(name, "PNG", w, h, err);
            if (st != VR_OK) return st;
        }
    }
    struct png_job *j = calloc(1, sizeof *j);
    if (!j) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", name);
    j->data = data;
    j->size = size;
    j->name = name;
    j->err = err;
    j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_on_error, png_on_warning);
    if (j->png) j->info = png_create_info_struct(j->png);
    vr_status st;
    if (!j->png || !j->info) {
        st = vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory (libpng)", name);
    } else {
        st = png_run(j);
        if (st != VR_OK && j->code == VR_OK) {
            if (j->truncated)
                st = vr_error_set(err, VR_ERR_FORMAT,
                                  "%s: truncated PNG (the file ends before the image data does)", name);
            else
                st = vr_error_set(err, VR_ERR_FORMAT, "%s: corrupt PNG: %s", name, j->msg);
        }
    }
    png_destroy_read_struct(j->png ? &j->png : NULL, j->info ? &j->info : NULL, NULL);
    free(j->rows);
    free(j->raw);
    if (st == VR_OK) {
        out->width = (int)j->w;
        out->height = (int)j->h;
        out->rgb = j->rgb;
    } else {
        free(j->rgb);
    }
    free(j);
    return st;
}

/* ---------------------------------------------------------------------------------------- */

vr_status vr_image_decode(const uint8_t *data, size_t size, const char *name, vr_image *out, vr_error *err) {
    name = display_name(name);
    if (!out) return vr_error_set(err, VR_ERR_INVALID, "%s: no output image given", name);
    memset(out, 0, sizeof *out);
    if (!data || size == 0) return vr_error_set(err, VR_ERR_FORMAT, "%s: empty file, not an image", name);
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        return decode_jpeg(data, size, name, out, err);
    if (size >= 8 && memcmp(data, png_magic, 8) == 0) return decode_png(data, size, name, out, err);
    return vr_error_set(err, VR_ERR_UNSUPPORTED,
                        "%s: not a JPEG or PNG (the file starts with %02x %02x %02x %02x); convert the image to "
                        "JPEG or PNG",
                        name, data[0], size > 1 ? data[1] : 0, size > 2 ? data[2] : 0, size > 3 ? data[3] : 0);
}

vr_status vr_image_load(const char *path, vr_image *out, vr_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!path) return vr_error_set(err, VR_ERR_INVALID, "no image path given");
    vr_mapped_file f;
    vr_status st = vr_mapped_file_open(&f, path, err);
    if (st != VR_OK) return st;
    st = vr_image_decode(f.data, f.size, path, out, err);
    vr_mapped_file_close(&f);
    return st;
}

void vr_image_free(vr_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}
