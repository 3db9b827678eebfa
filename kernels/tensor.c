/* kernels/tensor.c — dtype sizes, names and scalar conversions. No allocation, no I/O. */
#include "kernels/tensor.h"

#include <math.h>
#include <stdio.h>

size_t vr_dtype_size(vr_dtype t) {
    switch (t) {
    case VR_F32: return 4;
    case VR_F16: return 2;
    case VR_BF16: return 2;
    case VR_I32: return 4;
    case VR_I64: return 8;
    case VR_U8: return 1;
    }
    return 0;
}

const char *vr_dtype_name(vr_dtype t) {
    switch (t) {
    case VR_F32: return "f32";
    case VR_F16: return "f16";
    case VR_BF16: return "bf16";
    case VR_I32: return "i32";
    case VR_I64: return "i64";
    case VR_U8: return "u8";
    }
    return "?";
}

int64_t vr_tensor_numel(const vr_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t vr_tensor_nbytes(const vr_tensor *t) { return (size_t)vr_tensor_numel(t) * vr_dtype_size(t->dtype); }

const char *vr_shape_str(const vr_tensor *t, char *buf, size_t cap) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap > n ? cap - n : 0, "[");
    for (int i = 0; i < t->ndim; i++)
        n += (size_t)snprintf(buf + n, cap > n ? cap - n : 0, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    snprintf(buf + n, cap > n ? cap - n : 0, "]");
    return buf;
}

float vr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t vr_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t au = u & 0x7fffffffu;
    if (au > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (au >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow to inf */
    if (au < 0x38800000u) {                                   /* subnormal or zero */
        float a;
        memcpy(&a, &au, sizeof a);
        return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f)); /* a / 2^-24 */
    }
    uint32_t mant_odd = (au >> 13) & 1u;
    au += 0xc8000fffu + mant_odd; /* rebias exponent and round to nearest even */
    return (uint16_t)(sign | (au >> 13));
}

void vr_to_f32(vr_dtype t, const void *src, float *dst, size_t n) {
    switch (t) {
    case VR_F32: memcpy(dst, src, n * sizeof(float)); break;
    case VR_BF16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = vr_bf16_to_f32(s[i]);
        break;
    }
    case VR_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = vr_f16_to_f32(s[i]);
        break;
    }
    default:
        for (size_t i = 0; i < n; i++) dst[i] = 0.0f;
    }
}
