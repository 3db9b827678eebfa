/* kernels/cpu/cpu_vision.c — the ViT-specific ops on the CPU: non-causal multi-head attention
 * and the patch-embedding convolution. */
#include <math.h>
#include <stdlib.h>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/cpu_internal.h"

void vr_cpu_attention(vr_backend *be, const float *q, const float *k, const float *v, int L, int heads, int hd,
                      float *out) {
    (void)be;
    int D = heads * hd;
#pragma omp parallel for schedule(dynamic, 1)
    for (int h = 0; h < heads; h++) {
        float *scores = malloc((size_t)L * sizeof(float));
        for (int i = 0; i < L; i++) {
            const float *qi = q + (size_t)i * (size_t)D + (size_t)h * (size_t)hd;
            float mx = -INFINITY;
            for (int j = 0; j < L; j++) {
                const float *kj = k + (size_t)j * (size_t)D + (size_t)h * (size_t)hd;
                float s = 0.0f;
                for (int d = 0; d < hd; d++) s += qi[d] * kj[d];
                scores[j] = s;
                if (s > mx) mx = s;
            }
            float sum = 0.0f;
            for (int j = 0; j < L; j++) {
                scores[j] = expf(scores[j] - mx);
                sum += scores[j];
            }
            float inv = 1.0f / sum;
            float *oi = out + (size_t)i * (size_t)D + (size_t)h * (size_t)hd;
            for (int d = 0; d < hd; d++) oi[d] = 0.0f;
            for (int j = 0; j < L; j++) {
                const float *vj = v + (size_t)j * (size_t)D + (size_t)h * (size_t)hd;
                float p = scores[j] * inv;
                for (int d = 0; d < hd; d++) oi[d] += p * vj[d];
            }
        }
        free(scores);
    }
}

void vr_cpu_patch_embed(vr_backend *be, const float *pixels, int S, int P, const vr_tensor *w, float *out) {
    int G = S / P;
    int K = 3 * P * P;
    float *patches = malloc((size_t)G * (size_t)G * (size_t)K * sizeof(float));
    for (int py = 0; py < G; py++)
        for (int px = 0; px < G; px++) {
            float *row = patches + ((size_t)py * (size_t)G + (size_t)px) * (size_t)K;
            for (int c = 0; c < 3; c++)
                for (int dy = 0; dy < P; dy++)
                    for (int dx = 0; dx < P; dx++)
                        row[(c * P + dy) * P + dx] =
                            pixels[((size_t)c * (size_t)S + (size_t)(py * P + dy)) * (size_t)S + (size_t)(px * P + dx)];
        }
    /* w is [D, 3, P, P] = [D, K] row-major: a linear layer over flattened patches */
    vr_tensor w2 = *w;
    w2.ndim = 2;
    w2.shape[1] = K;
    vr_cpu_linear(be, patches, G * G, K, K, &w2, NULL, 0.0f, out);
    free(patches);
}
