/* model/image.h — image decoding (JPEG via libjpeg-turbo, PNG via libpng) to RGB u8, and CLIP
 * preprocessing exactly as HF CLIPImageProcessor with Pillow's BICUBIC resize. Untrusted bytes
 * come in here: dimensions and memory are bounded and every malformed file is refused with a
 * clear error. Knows nothing of the model. */
#ifndef VR_IMAGE_H
#define VR_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Refusal limits: decoding never allocates more than this. */
#define VR_IMAGE_MAX_SIDE 16384
#define VR_IMAGE_MAX_PIXELS (64u * 1024u * 1024u)

typedef struct vr_image {
    int width, height;
    uint8_t *rgb; /* HWC, 3 channels, malloc'd, owned */
} vr_image;

/* Decodes JPEG or PNG (detected from the magic bytes) to RGB like PIL .convert('RGB'):
 * grayscale replicated, alpha dropped (not composited), palette expanded, 16-bit reduced to
 * 8-bit as Pillow does, no EXIF orientation. name is used in error messages. */
vr_status vr_image_decode(const uint8_t *data, size_t size, const char *name, vr_image *out, vr_error *err);
vr_status vr_image_load(const char *path, vr_image *out, vr_error *err);
void vr_image_free(vr_image *img);

/* Pillow 9.4 BICUBIC resize (libImaging/Resample.c, separable, u8 rounding after each pass). */
vr_status vr_image_resize_bicubic(const vr_image *in, int out_w, int out_h, vr_image *out, vr_error *err);

typedef struct vr_clip_preprocess {
    int size;         /* shortest edge = crop size */
    float mean[3], std[3];
} vr_clip_preprocess;

void vr_clip_preprocess_default(vr_clip_preprocess *p, int size); /* CLIP mean/std */

/* Resize shortest edge to size (new_long = floor(size*long/short)), center crop size x size,
 * rescale 1/255 (double, rounded to f32), normalise in f32; writes CHW f32 [3*size*size].
 * resized (optional) receives the resized image before cropping (caller frees). */
/* The geometry of vr_clip_preprocess_image: resized size and crop offsets (HF semantics). */
vr_status vr_clip_resize_geometry(int width, int height, int size, int *resized_w, int *resized_h, int *crop_top,
                                  int *crop_left, vr_error *err);

vr_status vr_clip_preprocess_image(const vr_clip_preprocess *p, const vr_image *img, float *pixels,
                                   vr_image *resized, vr_error *err);

#endif
