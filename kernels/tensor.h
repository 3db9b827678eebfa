/* kernels/tensor.h — the tensor view shared by loaders, model and backends.
 * A vr_tensor never owns its data: the owner (a checkpoint mapping, an arena, a caller's
 * buffer) is whoever created the bytes. Must not allocate. */
#ifndef VR_TENSOR_H
#define VR_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum { VR_F32 = 0, VR_F16, VR_BF16, VR_I32, VR_I64, VR_U8 } vr_dtype;

typedef enum { VR_DEVICE_CPU = 0, VR_DEVICE_CUDA } vr_device;

#define VR_MAX_DIMS 4

typedef struct vr_tensor {
    vr_dtype dtype;
    vr_device device;
    int ndim;
    int64_t shape[VR_MAX_DIMS]; /* row-major, contiguous */
    void *data;
} vr_tensor;

size_t vr_dtype_size(vr_dtype t);
const char *vr_dtype_name(vr_dtype t);
int64_t vr_tensor_numel(const vr_tensor *t);
size_t vr_tensor_nbytes(const vr_tensor *t);
/* Prints the shape as "[a, b, c]" into buf. */
const char *vr_shape_str(const vr_tensor *t, char *buf, size_t cap);

static inline float vr_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round-to-nearest-even, NaN preserved (what torch's .to(bfloat16) does). */
static inline uint16_t vr_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float vr_f16_to_f32(uint16_t h);
uint16_t vr_f32_to_f16(float f);

/* Converts n elements of any float dtype (f32/f16/bf16) to f32. */
void vr_to_f32(vr_dtype t, const void *src, float *dst, size_t n);

#endif
