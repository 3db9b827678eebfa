/* kernels/cpu/cpu_vision.c — the ViT-specific ops on the CPU: non-causal multi-head attention
 * and the patch-embedding convolution. */
#include <math.h>
#include <stdlib.h>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/cpu_internal.h"

/* Per head: scores = Q_h K_h^T (BLAS), a row softmax, out_h = P V_h (BLAS). Q, K, V, out are
 * [L, heads*hd]; a head is a column block, reached with the row stride heads*hd. */
void vr_cpu_attention(vr_backend *be, const float *q, const float *k, const float *v, int L, int heads, int hd,
                      float *out) {
    (void)be;
    int D = heads * hd;
    float *scores = malloc((size_t)L * (size_t)L * sizeof(float));
    if (!scores) return;
    for (int h = 0; h < heads; h++) {
        const float *qh = q + (size_t)h * hd, *kh = k + (size_t)h * hd, *vh = v + (size_t)h * hd;
        vr_cpu_sgemm(VR_CBLAS_TRANS, L, L, hd, qh, D, kh, D, 0.0f, scores, L);
#pragma omp parallel for schedule(static) if (L > 64)
        for (int i = 0; i < L; i++) {
            float *row = scores + (size_t)i * L;
            float mx = -INFINITY;
            for (int j = 0; j < L; j++)
                if (row[j] > mx) mx = row[j];
            float sum = 0.0f;
            for (int j = 0; j < L; j++) {
                row[j] = expf(row[j] - mx);
                sum += row[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < L; j++) row[j] *= inv;
        }
        vr_cpu_sgemm(VR_CBLAS_NO_TRANS, L, hd, L, scores, L, vh, D, 0.0f, out + (size_t)h * hd, D);
    }
    free(scores);
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
