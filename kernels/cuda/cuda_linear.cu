/* kernels/cuda/cuda_linear.cu — the CUDA GEMMs and what is made of them: linear (y = x W^T
 * with W in its loaded dtype), embedding gather, ViT attention, patch embedding.
 * Few activation rows (decode): a bandwidth-bound GEMV kernel, one warp per weight row,
 * reading f32/f16/bf16 weights directly with 16-byte loads, f32 accumulation (up to 16 rows for
 * f32 weights, up to 4 for f16/bf16). More rows: f32 weights go to cublasSgemm; f16/bf16
 * weights by default to split GEMMs: the activations as three bf16 slices of 8 bits, or three
 * f16 slices of 11 bits of row-scaled activations, multiplied on tensor cores in one GEMM (the
 * slices stacked as rows, so the weights are read once) and summed: f32 precision up to
 * summation order. VRWKV_CUDA_GEMM=f32 instead converts f16/bf16 weights to f32 a tile of rows
 * at a time and calls cublasSgemm (TF32 off: exact f32 products); VRWKV_CUDA_FAST_GEMM=1 rounds
 * the activations to the weight dtype and calls cublasGemmEx (tensor cores; ~1e-2 relative
 * error, not the default). Must not convert a whole large matrix at once (bounded scratch). */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include "kernels/cuda/cuda_internal.h"

enum { VRC_SMALL_M = 16, VRC_GEMV_MB = 8, VRC_TENSOR_GEMV_M = 4 };

/* The most activation rows a weight of dtype class wt (0 f32, 1 f16, 2 bf16) takes through the
 * GEMV. f16/bf16 weights take the tensor-core GEMM (split or fast) from 5 rows: the GEMV reads
 * weights for 8 rows at about half the bandwidth (H100: 1.4 of 2.95 TB/s), the GEMM reads them
 * once (batch 8: 7.3 -> 5.7 ms per 1b6 f16 step on an H100). */
static inline int gemv_max_rows(vr_backend *be, int wt) {
    const vrc_impl *c = vrc(be);
    return wt != 0 && (c->split_gemm || c->fast_gemm) ? VRC_TENSOR_GEMV_M : VRC_SMALL_M;
}

/* ---- block reductions ---- */

/* The block's max / sum of v (every thread gets it): warps by shuffles, then the first warp over
 * the warps' results through red[32] (shared). Every thread of the block must call it. */
static __device__ float block_max_f(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        float w = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) w = fmaxf(w, __shfl_xor_sync(0xffffffffu, w, o));
        if (threadIdx.x == 0) red[0] = w;
    }
    __syncthreads();
    v = red[0];
    __syncthreads(); /* red may be used again at once */
    return v;
}

static __device__ float block_sum_f(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        float w = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) w += __shfl_xor_sync(0xffffffffu, w, o);
        if (threadIdx.x == 0) red[0] = w;
    }
    __syncthreads();
    v = red[0];
    __syncthreads();
    return v;
}

/* ---- weight element loads ---- */

__device__ __forceinline__ float bf16_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }
__device__ __forceinline__ float f16_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }

/* WT: 0 f32, 1 f16, 2 bf16 */
template <int WT> __device__ __forceinline__ float load_w(const void *w, size_t i) {
    if (WT == 0) return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    return WT == 1 ? f16_f32(h) : bf16_f32(h);
}

/* 8 consecutive weights starting at element i (16-byte aligned for f16/bf16, 32 for f32) */
template <int WT> __device__ __forceinline__ void load_w8(const void *w, size_t i, float *f) {
    if (WT == 0) {
        const float4 *p = (const float4 *)((const float *)w + i);
        float4 a = __ldg(p), b = __ldg(p + 1);
        f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
    } else {
        uint4 u = __ldg((const uint4 *)((const uint16_t *)w + i));
        uint32_t q[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int t = 0; t < 4; t++) {
            uint16_t lo = (uint16_t)(q[t] & 0xffffu), hi = (uint16_t)(q[t] >> 16);
            f[2 * t] = WT == 1 ? f16_f32(lo) : bf16_f32(lo);
            f[2 * t + 1] = WT == 1 ? f16_f32(hi) : bf16_f32(hi);
        }
    }
}

/* What becomes of a GEMV result s at y[idx] (column col): epi 0 is the plain linear (beta 0 or
 * 1); the others are vr_epilogue's, each the same float expression as the op it replaces
 * (cuda_ops.cu), unfused where the CPU's C has no contraction. */
__device__ __forceinline__ float apply_epi(int epi, float s, const float *out, const float *aux, size_t idx, int col,
                                           float beta) {
    switch (epi) {
    case VR_EPI_TANH: return tanhf(s);
    case VR_EPI_SILU: return s / (1.0f + expf(-s));
    case VR_EPI_RELU_SQ: {
        float p = s > 0.0f ? s : 0.0f;
        return p * p;
    }
    case VR_EPI_SIGMOID: return 1.0f / (1.0f + expf(-s));
    case VR_EPI_DECAY: return expf(-expf(aux[col] + s));
    case VR_EPI_GATE_ADD: return __fadd_rn(*out, __fmul_rn(1.0f / (1.0f + expf(-s)), aux[idx]));
    case VR_EPI_MUL_ADD: return __fadd_rn(*out, __fmul_rn(aux[idx], s));
    default: return beta != 0.0f ? *out + s : s;
    }
}

/* y[i, j] (= or +=) dot(x[i, :], w[j, :]) for i < m (<= MB): one warp per R consecutive weight
 * rows, so each x element loaded is used R times and each weight element MB times (register
 * blocking: what bounds a few-row GEMV is the x traffic through L1, not the weights). */
template <int WT, int MB, int R>
__device__ __forceinline__ void gemv_rows_of_warp(const float *__restrict__ x, int m, int k, int ldx,
                                                  const void *__restrict__ w, int n, float beta,
                                                  float *__restrict__ y, int vec, int epi,
                                                  const float *__restrict__ aux, size_t warp) {
    int j0 = (int)warp * R;
    int lane = threadIdx.x & 31;
    if (j0 >= n) return;
    float acc[MB][R];
#pragma unroll
    for (int i = 0; i < MB; i++)
#pragma unroll
        for (int r = 0; r < R; r++) acc[i][r] = 0.0f;
    size_t rows[R];
#pragma unroll
    for (int r = 0; r < R; r++) rows[r] = (size_t)(j0 + r < n ? j0 + r : j0) * (size_t)k; /* past n: row j0 again, unused */
    if (vec) {
#pragma unroll 2
        for (int c = lane * 8; c < k; c += 256) {
            float wf[R][8];
#pragma unroll
            for (int r = 0; r < R; r++) load_w8<WT>(w, rows[r] + c, wf[r]);
#pragma unroll
            for (int i = 0; i < MB; i++) {
                if (i < m) {
                    const float4 *xp = (const float4 *)(x + (size_t)i * ldx + c);
                    float4 a = __ldg(xp), b = __ldg(xp + 1);
#pragma unroll
                    for (int r = 0; r < R; r++)
                        acc[i][r] += a.x * wf[r][0] + a.y * wf[r][1] + a.z * wf[r][2] + a.w * wf[r][3] +
                                     b.x * wf[r][4] + b.y * wf[r][5] + b.z * wf[r][6] + b.w * wf[r][7];
                }
            }
        }
    } else {
        for (int c = lane; c < k; c += 32) {
            float wv[R];
#pragma unroll
            for (int r = 0; r < R; r++) wv[r] = load_w<WT>(w, rows[r] + c);
#pragma unroll
            for (int i = 0; i < MB; i++)
                if (i < m) {
                    float xv = x[(size_t)i * ldx + c];
#pragma unroll
                    for (int r = 0; r < R; r++) acc[i][r] += xv * wv[r];
                }
        }
    }
#pragma unroll
    for (int i = 0; i < MB; i++) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            float s = acc[i][r];
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            if (lane == 0 && i < m && j0 + r < n) {
                size_t idx = (size_t)i * n + j0 + r;
                y[idx] = apply_epi(epi, s, y + idx, aux, idx, j0 + r, beta);
            }
        }
    }
}

template <int WT, int MB, int R>
__global__ void __launch_bounds__(256) gemv_kernel(const float *__restrict__ x, int m, int k, int ldx,
                                                  const void *__restrict__ w, int n, float beta,
                                                  float *__restrict__ y, int vec, int epi,
                                                  const float *__restrict__ aux) {
    gemv_rows_of_warp<WT, MB, R>(x, m, k, ldx, w, n, beta, y, vec, epi, aux,
                                 (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5);
}

/* linear_group's GEMVs: blockIdx.y picks the job; the jobs share m, k and the weight dtype */
enum { VRC_GROUP_MAX = 8 };
typedef struct gemv_job {
    const float *x;
    int ldx, n, vec, epi;
    const void *w;
    const float *aux;
    float *y;
} gemv_job;
typedef struct gemv_jobs {
    gemv_job j[VRC_GROUP_MAX];
} gemv_jobs;

template <int WT, int MB>
__global__ void __launch_bounds__(256) gemv_group_kernel(gemv_jobs jobs, int m, int k) {
    const gemv_job &g = jobs.j[blockIdx.y];
    gemv_rows_of_warp<WT, MB, 1>(g.x, m, k, g.ldx, g.w, g.n, 0.0f, g.y, g.vec, g.epi, g.aux,
                                 (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5);
}

template <int WT>
__global__ void convert_rows_kernel(const void *__restrict__ w, size_t first, size_t count, float *__restrict__ out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        out[i] = load_w<WT>(w, first + i);
}

template <int WT> __global__ void round_x_kernel(const float *__restrict__ x, int m, int k, int ldx, uint16_t *out) {
    size_t total = (size_t)m * k;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)k, c = i % (size_t)k;
        float v = x[r * ldx + c];
        out[i] = WT == 1 ? __half_as_ushort(__float2half_rn(v)) : __bfloat16_as_ushort(__float2bfloat16_rn(v));
    }
}

template <int WT> __global__ void add_bias_kernel(float *y, int m, int n, const void *bias) {
    size_t total = (size_t)m * n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        y[i] += load_w<WT>(bias, i % (size_t)n);
}

static int wt_of(vr_dtype t) { return t == VR_F32 ? 0 : t == VR_F16 ? 1 : t == VR_BF16 ? 2 : -1; }

typedef struct gemv_epi {
    int epi;
    const float *aux;
} gemv_epi;

template <int WT, int MB, int R>
static void gemv_launch(cudaStream_t s, const float *x, int m, int k, int ldx, const void *w, int n, float beta,
                        float *y, int vec, gemv_epi ep) {
    size_t warps = ((size_t)n + R - 1) / R;
    unsigned threads = 256, blocks = (unsigned)((warps * 32 + threads - 1) / threads);
    gemv_kernel<WT, MB, R><<<blocks, threads, 0, s>>>(x, m, k, ldx, w, n, beta, y, vec, ep.epi, ep.aux);
}

template <int WT>
static void gemv_rows(cudaStream_t s, const float *x, int m, int k, int ldx, const void *w, int n, float beta,
                      float *y, int vec, gemv_epi ep) {
    /* Rows per warp: more share each x load, fewer warps. Measured on an H200: the 65536-row
     * head gains from 2 (one x row) or 4 (several); matrices of a few thousand rows need
     * every warp they can get, so they keep one. */
    int r = n >= 16384 ? 4 : n >= 8192 ? 2 : 1;
    if (m == 1) {
        if (r == 1) gemv_launch<WT, 1, 1>(s, x, m, k, ldx, w, n, beta, y, vec, ep);
        else gemv_launch<WT, 1, 2>(s, x, m, k, ldx, w, n, beta, y, vec, ep);
    } else if (m <= 4) {
        if (r == 1) gemv_launch<WT, 4, 1>(s, x, m, k, ldx, w, n, beta, y, vec, ep);
        else if (r == 2) gemv_launch<WT, 4, 2>(s, x, m, k, ldx, w, n, beta, y, vec, ep);
        else gemv_launch<WT, 4, 4>(s, x, m, k, ldx, w, n, beta, y, vec, ep);
    } else {
        if (r == 1) gemv_launch<WT, VRC_GEMV_MB, 1>(s, x, m, k, ldx, w, n, beta, y, vec, ep);
        else if (r == 2) gemv_launch<WT, VRC_GEMV_MB, 2>(s, x, m, k, ldx, w, n, beta, y, vec, ep);
        else gemv_launch<WT, VRC_GEMV_MB, 4>(s, x, m, k, ldx, w, n, beta, y, vec, ep);
    }
}

static void launch_gemv(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, float beta,
                        float *y, gemv_epi ep) {
    int n = (int)w->shape[0], wt = wt_of(w->dtype);
    int vec = k % 8 == 0 && ldx % 4 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)w->data & 31) == 0;
    cudaStream_t s = vrc(be)->stream;
    for (int i0 = 0; i0 < m; i0 += VRC_GEMV_MB) {
        int mm = m - i0 < VRC_GEMV_MB ? m - i0 : VRC_GEMV_MB;
        const float *xi = x + (size_t)i0 * ldx;
        float *yi = y + (size_t)i0 * n;
        gemv_epi e = ep;
        if (e.epi == VR_EPI_GATE_ADD || e.epi == VR_EPI_MUL_ADD)
            e.aux = ep.aux + (size_t)i0 * n; /* per-row aux moves with the rows */
        if (wt == 0) gemv_rows<0>(s, xi, mm, k, ldx, w->data, n, beta, yi, vec, e);
        else if (wt == 1) gemv_rows<1>(s, xi, mm, k, ldx, w->data, n, beta, yi, vec, e);
        else gemv_rows<2>(s, xi, mm, k, ldx, w->data, n, beta, yi, vec, e);
    }
    vrc_check_launch(be, "linear (gemv)");
}

/* row-major y[m, n] (ldy) = x[m, k] (ldx) @ W[n, k]^T (ldw) (+ beta y) through column-major cuBLAS */
static int sgemm_xwT(vr_backend *be, int m, int n, int k, const float *x, int ldx, const float *wf, int ldw, float beta,
                     float *y, int ldy) {
    const float one = 1.0f;
    return vrc_check_blas(be,
                          cublasSgemm(vrc(be)->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, wf, ldw, x, ldx, &beta,
                                      y, ldy),
                          "linear (cublasSgemm)");
}

static void fast_gemm(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, float beta, float *y) {
    vrc_impl *c = vrc(be);
    int n = (int)w->shape[0], wt = wt_of(w->dtype);
    uint16_t *xc = (uint16_t *)vrc_scratch(be, VRC_SCR_XCONV, (size_t)m * k * sizeof(uint16_t));
    if (!xc) return;
    size_t total = (size_t)m * k;
    if (wt == 1) round_x_kernel<1><<<vrc_blocks(total, 256), 256, 0, c->stream>>>(x, m, k, ldx, xc);
    else round_x_kernel<2><<<vrc_blocks(total, 256), 256, 0, c->stream>>>(x, m, k, ldx, xc);
    if (vrc_check_launch(be, "linear (rounding activations)")) return;
    cudaDataType_t dt = wt == 1 ? CUDA_R_16F : CUDA_R_16BF;
    const float one = 1.0f;
    vrc_check_blas(be,
                   cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w->data, dt, k, xc, dt, k, &beta, y,
                                CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "linear (cublasGemmEx)");
}

/* x = p1 + p2 + p3, each rounded to bf16: three 8-bit slices of x's 24-bit mantissa (each
 * remainder is exact in f32), so the three products with bf16 weights, accumulated in f32 by
 * the tensor cores, reproduce an f32 GEMM up to summation order. */
__global__ void split3_kernel(const float *__restrict__ x, int m, int k, int ldx, __nv_bfloat16 *p1,
                              __nv_bfloat16 *p2, __nv_bfloat16 *p3) {
    size_t total = (size_t)m * k;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)k, c = i % (size_t)k;
        float v = x[r * ldx + c];
        __nv_bfloat16 h = __float2bfloat16_rn(v);
        float r1 = __fsub_rn(v, __bfloat162float(h));
        __nv_bfloat16 l = __float2bfloat16_rn(r1);
        float r2 = __fsub_rn(r1, __bfloat162float(l));
        p1[i] = h;
        p2[i] = l;
        p3[i] = __float2bfloat16_rn(r2);
    }
}

/* y = beta y + s_r ((t1 + t2) + t3) (row r, s_r 1 without row_scale), where t is the three
 * slices' products stacked, [3][m][n]; beta 0 never reads y */
__global__ void unscale_rows_kernel(const float *__restrict__ t, const float *__restrict__ row_scale, int m, int n,
                                    float beta, float *y) {
    size_t total = (size_t)m * n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float v = __fadd_rn(__fadd_rn(t[i], t[i + total]), t[i + 2 * total]);
        if (row_scale) v = row_scale[i / (size_t)n] * v;
        y[i] = beta == 0.0f ? v : __fmaf_rn(beta, y[i], v);
    }
}

/* The products of the three activation slices (each mm x k, contiguous from parts: one matrix
 * of 3mm rows) by w in one GEMM, so the weights are read once: t [3][mm][n] (ldc n), for
 * unscale_rows_kernel to sum. 0 on success. */
static int slice_products(vr_backend *be, const vr_tensor *w, cudaDataType dt, const void *parts, int mm, int k,
                          float *t) {
    const int n = (int)w->shape[0];
    const float one = 1.0f, zero = 0.0f;
    return vrc_check_blas(be,
                          cublasGemmEx(vrc(be)->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, 3 * mm, k, &one, w->data, dt, k,
                                       parts, dt, k, &zero, t, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                          "linear (split cublasGemmEx)");
}

/* f16 weights: x_r = s_r (p1 + p2 + p3), each an f16 slice of 11 bits of row r scaled by
 * 1/s_r = 2^-e_r, e_r chosen so that the row's largest magnitude lies in [2^14, 2^15) (inside
 * f16's range, which activations may exceed). Each remainder is exact in f32; a slice that
 * falls below f16's normal range keeps its bits down to 2^-24, about 2^-38 of the row's largest
 * magnitude. One block per row. */
__global__ void split3h_rows_kernel(const float *__restrict__ x, int k, int ldx, __half *p1, __half *p2, __half *p3,
                                    float *row_scale) {
    __shared__ float red[32];
    const float *xr = x + (size_t)blockIdx.x * ldx;
    float mx = 0.0f;
    for (int c = threadIdx.x; c < k; c += blockDim.x) mx = fmaxf(mx, fabsf(xr[c]));
    mx = block_max_f(mx, red);
    int e = 0;
    if (mx > 0.0f && isfinite(mx)) {
        frexpf(mx, &e); /* mx in [2^(e-1), 2^e) */
        e -= 15;
        e = e < -126 ? -126 : e > 127 ? 127 : e;
    }
    const float inv = ldexpf(1.0f, -e);
    size_t o = (size_t)blockIdx.x * k;
    for (int c = threadIdx.x; c < k; c += blockDim.x) {
        float v = xr[c] * inv; /* a power of two: exact */
        __half h = __float2half_rn(v);
        float r1 = __fsub_rn(v, __half2float(h));
        __half l = __float2half_rn(r1);
        float r2 = __fsub_rn(r1, __half2float(l));
        p1[o + c] = h;
        p2[o + c] = l;
        p3[o + c] = __float2half_rn(r2);
    }
    if (threadIdx.x == 0) row_scale[blockIdx.x] = ldexpf(1.0f, e);
}

/* many rows by f16 (wt 1) or bf16 (wt 2) weights: three slices of the activations (f16: 11 bits
 * of the row-scaled values; bf16: 8 bits), their tensor-core products in one GEMM, summed (and
 * unscaled) into y; rows in chunks so the slices and the products stay within 3 x 64 MiB each */
static void split_gemm(vr_backend *be, int wt, const float *x, int m, int k, int ldx, const vr_tensor *w, float beta,
                       float *y) {
    vrc_impl *c = vrc(be);
    int n = (int)w->shape[0];
    size_t rows = ((size_t)32 << 20) / (size_t)k, rows_n = ((size_t)16 << 20) / (size_t)n;
    if (rows_n < rows) rows = rows_n;
    if (rows < 1) rows = 1;
    if (rows > (size_t)m) rows = (size_t)m;
    uint16_t *parts = (uint16_t *)vrc_scratch(be, VRC_SCR_XCONV, 3 * rows * (size_t)k * sizeof(uint16_t)); /* f16 or bf16 */
    float *t = parts ? (float *)vrc_scratch(be, VRC_SCR_SPLIT, rows * (3 * (size_t)n + 1) * sizeof(float)) : NULL;
    if (!t) return;
    float *scale = wt == 1 ? t + rows * 3 * (size_t)n : NULL; /* the rows' scales (f16 only) */
    for (size_t r0 = 0; r0 < (size_t)m; r0 += rows) {
        int mm = (int)((size_t)m - r0 < rows ? (size_t)m - r0 : rows);
        size_t cells = (size_t)mm * k;
        const float *xr = x + r0 * (size_t)ldx;
        if (wt == 1)
            split3h_rows_kernel<<<mm, 256, 0, c->stream>>>(xr, k, ldx, (__half *)parts, (__half *)parts + cells,
                                                           (__half *)parts + 2 * cells, scale);
        else
            split3_kernel<<<vrc_blocks(cells, 256), 256, 0, c->stream>>>(
                xr, mm, k, ldx, (__nv_bfloat16 *)parts, (__nv_bfloat16 *)parts + cells, (__nv_bfloat16 *)parts + 2 * cells);
        if (vrc_check_launch(be, "linear (splitting activations)")) return;
        if (slice_products(be, w, wt == 1 ? CUDA_R_16F : CUDA_R_16BF, parts, mm, k, t)) return;
        size_t total = (size_t)mm * n;
        unscale_rows_kernel<<<vrc_blocks(total, 256), 256, 0, c->stream>>>(t, scale, mm, n, beta, y + r0 * (size_t)n);
        if (vrc_check_launch(be, "linear (summing split products)")) return;
    }
}

/* the linear op's work, for ops that have entered already (linear_epi, linear_group,
 * patch_embed: their time stays theirs in the profile) */
static void linear_run(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w,
                       const vr_tensor *bias, float beta, float *y) {
    int n = (int)w->shape[0], wt = wt_of(w->dtype);
    if (m <= 0 || n <= 0) return;
    vrc_impl *c = vrc(be);
    if (wt < 0) {
        vrc_fail(be, VR_ERR_UNSUPPORTED, "linear: weight dtype %d is not f32, f16 or bf16", (int)w->dtype);
        return;
    }
    if (m <= gemv_max_rows(be, wt)) {
        launch_gemv(be, x, m, k, ldx, w, beta, y, gemv_epi{0, NULL});
    } else if (wt == 0) {
        sgemm_xwT(be, m, n, k, x, ldx, (const float *)w->data, k, beta, y, n);
    } else if (c->fast_gemm) {
        fast_gemm(be, x, m, k, ldx, w, beta, y);
    } else if (c->split_gemm) { /* wt 1 or 2 */
        split_gemm(be, wt, x, m, k, ldx, w, beta, y);
    } else {
        size_t rows = c->tile_floats / (size_t)k;
        if (rows < 1) rows = 1;
        if (rows > (size_t)n) rows = (size_t)n;
        float *tile = (float *)vrc_scratch(be, VRC_SCR_WTILE, rows * (size_t)k * sizeof(float));
        if (!tile) return;
        for (size_t j0 = 0; j0 < (size_t)n; j0 += rows) {
            size_t nb = (size_t)n - j0 < rows ? (size_t)n - j0 : rows;
            size_t cnt = nb * (size_t)k;
            if (wt == 1) convert_rows_kernel<1><<<vrc_blocks(cnt, 256), 256, 0, c->stream>>>(w->data, j0 * k, cnt, tile);
            else convert_rows_kernel<2><<<vrc_blocks(cnt, 256), 256, 0, c->stream>>>(w->data, j0 * k, cnt, tile);
            if (vrc_check_launch(be, "linear (converting a weight tile)")) return;
            if (sgemm_xwT(be, m, (int)nb, k, x, ldx, tile, k, beta, y + j0, n)) return;
        }
    }
    if (bias) {
        int bt = wt_of(bias->dtype);
        size_t total = (size_t)m * n;
        if (bt == 0) add_bias_kernel<0><<<vrc_blocks(total, 256), 256, 0, c->stream>>>(y, m, n, bias->data);
        else if (bt == 1) add_bias_kernel<1><<<vrc_blocks(total, 256), 256, 0, c->stream>>>(y, m, n, bias->data);
        else if (bt == 2) add_bias_kernel<2><<<vrc_blocks(total, 256), 256, 0, c->stream>>>(y, m, n, bias->data);
        else vrc_fail(be, VR_ERR_UNSUPPORTED, "linear: bias dtype %d is not f32, f16 or bf16", (int)bias->dtype);
        vrc_check_launch(be, "linear (bias)");
    }
}

void vrc_linear(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, const vr_tensor *bias,
                float beta, float *y) {
    if (m <= 0 || w->shape[0] <= 0) return;
    if (vrc_enter(be)) return;
    linear_run(be, x, m, k, ldx, w, bias, beta, y);
}

/* ---- fused linears ---- */

/* the epilogue alone, for results already in s (many-row path): y = epi(s) */
__global__ void epilogue_kernel(const float *s, size_t total, int n, int epi, const float *aux, float *y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        y[i] = apply_epi(epi, s[i], y + i, aux, i, (int)(i % (size_t)n), 0.0f);
}

/* 1 when epi (0: none) and aux suit each other; else records why */
static int epi_usable(vr_backend *be, const char *op, int epi, const float *aux) {
    if (epi < 0 || epi > VR_EPI_MUL_ADD) {
        vrc_fail(be, VR_ERR_INVALID, "%s: unknown epilogue %d", op, epi);
        return 0;
    }
    if (!aux && (epi == VR_EPI_DECAY || epi == VR_EPI_GATE_ADD || epi == VR_EPI_MUL_ADD)) {
        vrc_fail(be, VR_ERR_INVALID, "%s: epilogue %d needs its aux operand", op, epi);
        return 0;
    }
    return 1;
}

void vrc_linear_epi(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, vr_epilogue epi,
                    const float *aux, float *y) {
    int n = (int)w->shape[0];
    if (m <= 0 || n <= 0) return;
    if (vrc_enter(be)) return;
    if (wt_of(w->dtype) < 0) {
        vrc_fail(be, VR_ERR_UNSUPPORTED, "linear: weight dtype %d is not f32, f16 or bf16", (int)w->dtype);
        return;
    }
    if (!epi_usable(be, "linear_epi", (int)epi, aux)) return;
    if (m <= gemv_max_rows(be, wt_of(w->dtype))) {
        launch_gemv(be, x, m, k, ldx, w, 0.0f, y, gemv_epi{(int)epi, aux});
        return;
    }
    /* many rows: the GEMM, then the epilogue (GATE_ADD and MUL_ADD add into y: the product goes to
     * scratch) */
    size_t total = (size_t)m * n;
    float *s = y;
    if ((epi == VR_EPI_GATE_ADD || epi == VR_EPI_MUL_ADD) &&
        !(s = (float *)vrc_scratch(be, VRC_SCR_EPI, total * sizeof(float))))
        return;
    linear_run(be, x, m, k, ldx, w, NULL, 0.0f, s);
    epilogue_kernel<<<vrc_blocks(total, 256), 256, 0, vrc(be)->stream>>>(s, total, n, (int)epi, aux, y);
    vrc_check_launch(be, "linear (epilogue)");
}

/* The GEMVs of up to VRC_GROUP_MAX jobs whose weights have dtype wt, in one launch per chunk of
 * VRC_GEMV_MB rows. */
static void launch_group(vr_backend *be, int wt, int m, int k, const vr_linear_job *const *sel, int ns) {
    cudaStream_t s = vrc(be)->stream;
    for (int i0 = 0; i0 < m; i0 += VRC_GEMV_MB) {
        int mm = m - i0 < VRC_GEMV_MB ? m - i0 : VRC_GEMV_MB;
        gemv_jobs t;
        memset(&t, 0, sizeof t);
        int max_n = 0;
        for (int j = 0; j < ns; j++) {
            const vr_linear_job *q = sel[j];
            int n = (int)q->w->shape[0];
            gemv_job *g = &t.j[j];
            g->x = q->x + (size_t)i0 * q->ldx;
            g->ldx = q->ldx;
            g->n = n;
            g->vec = k % 8 == 0 && q->ldx % 4 == 0 && ((uintptr_t)q->x & 15) == 0 && ((uintptr_t)q->w->data & 31) == 0;
            g->epi = q->epi;
            g->w = q->w->data;
            g->aux = q->epi == VR_EPI_GATE_ADD || q->epi == VR_EPI_MUL_ADD ? q->aux + (size_t)i0 * n : q->aux;
            g->y = q->y + (size_t)i0 * n;
            if (n > max_n) max_n = n;
        }
        if (max_n == 0) return; /* every job empty: nothing to launch */
        dim3 grid((unsigned)(((size_t)max_n * 32 + 255) / 256), (unsigned)ns);
#define VRC_GROUP_LAUNCH(W)                                                                                            \
    do {                                                                                                              \
        if (mm == 1) gemv_group_kernel<W, 1><<<grid, 256, 0, s>>>(t, mm, k);                                           \
        else if (mm <= 4) gemv_group_kernel<W, 4><<<grid, 256, 0, s>>>(t, mm, k);                                      \
        else gemv_group_kernel<W, VRC_GEMV_MB><<<grid, 256, 0, s>>>(t, mm, k);                                         \
    } while (0)
        if (wt == 0) VRC_GROUP_LAUNCH(0);
        else if (wt == 1) VRC_GROUP_LAUNCH(1);
        else VRC_GROUP_LAUNCH(2);
#undef VRC_GROUP_LAUNCH
    }
}

/* Few rows: one launch per weight dtype present (a layer's decay LoRA is f32 beside f16/bf16
 * projections) and chunk of rows; many rows: one linear_epi (or linear) per job. Each job's
 * results are those of its own call. */
void vrc_linear_group(vr_backend *be, int m, int k, const vr_linear_job *jobs, int n_jobs) {
    if (m <= 0 || n_jobs <= 0) return;
    if (vrc_enter(be)) return;
    for (int j = 0; j < n_jobs; j++) {
        if (wt_of(jobs[j].w->dtype) < 0) {
            vrc_fail(be, VR_ERR_UNSUPPORTED, "linear_group: job %d: weight dtype %d is not f32, f16 or bf16", j,
                     (int)jobs[j].w->dtype);
            return;
        }
        if (!epi_usable(be, "linear_group", jobs[j].epi, jobs[j].aux)) return;
    }
    int per_job = 0; /* a job past its GEMV rows: each job by itself (GEMV or GEMM) */
    for (int j = 0; j < n_jobs; j++)
        if (m > gemv_max_rows(be, wt_of(jobs[j].w->dtype))) per_job = 1;
    if (per_job) {
        for (int j = 0; j < n_jobs; j++) {
            if (jobs[j].epi)
                vrc_linear_epi(be, jobs[j].x, m, k, jobs[j].ldx, jobs[j].w, (vr_epilogue)jobs[j].epi, jobs[j].aux,
                               jobs[j].y);
            else
                linear_run(be, jobs[j].x, m, k, jobs[j].ldx, jobs[j].w, NULL, 0.0f, jobs[j].y);
        }
        return;
    }
    for (int wt = 0; wt < 3; wt++) {
        const vr_linear_job *sel[VRC_GROUP_MAX];
        int ns = 0;
        for (int j = 0; j < n_jobs; j++) {
            if (wt_of(jobs[j].w->dtype) != wt) continue;
            if (ns == VRC_GROUP_MAX) {
                launch_group(be, wt, m, k, sel, ns);
                ns = 0;
            }
            sel[ns++] = &jobs[j];
        }
        if (ns) launch_group(be, wt, m, k, sel, ns);
    }
    vrc_check_launch(be, "linear_group (gemv)");
}

/* y[j] = x + sx * (maa[j] + mm_j @ W[j]^T): one thread per element, the k-term dot in order;
 * blockIdx.y picks j */
typedef struct ddlerp_jobs {
    const float *maa[VRC_GROUP_MAX];
    const void *w[VRC_GROUP_MAX];
    float *y[VRC_GROUP_MAX];
} ddlerp_jobs;

template <int WT>
__global__ void ddlerp_lora_kernel(const float *x, const float *sx, int n, size_t total, ddlerp_jobs jobs,
                                   const float *mm, int k, int ldm) {
    const int j = blockIdx.y;
    const float *maa = jobs.maa[j];
    const void *w = jobs.w[j];
    float *y = jobs.y[j];
    mm += (size_t)j * k;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)n, c = i % (size_t)n;
        const float *mr = mm + r * (size_t)ldm;
        size_t wr = c * (size_t)k;
        float acc = 0.0f;
        for (int d = 0; d < k; d++) acc += mr[d] * load_w<WT>(w, wr + d);
        float mix = __fadd_rn(maa[c], acc);
        y[i] = __fadd_rn(x[i], __fmul_rn(sx[i], mix));
    }
}

void vrc_ddlerp_lora(vr_backend *be, const float *x, const float *sx, int m, int n, int count, const float *const *maa,
                     const float *mm, int k, int ldm, const vr_tensor *const *w, float *const *y) {
    size_t total = (size_t)m * n;
    if (!total || m < 0 || count <= 0) return;
    if (vrc_enter(be)) return;
    if (m > VRC_SMALL_M) {
        /* many rows: each LoRA product by the GEMM path, then ddlerp, as model/ composes them
         * without this op; the one-thread-per-output dot below is slow there (338 us per call at
         * 256 rows on an H100) */
        float *lora = (float *)vrc_scratch(be, VRC_SCR_EPI, total * sizeof(float));
        if (!lora) return;
        for (int j = 0; j < count; j++) {
            linear_run(be, mm + (size_t)j * k, m, k, ldm, w[j], NULL, 0.0f, lora);
            vrc_ddlerp(be, x, sx, m, n, maa[j], lora, n, y[j]);
        }
        return;
    }
    if (count > VRC_GROUP_MAX) { /* in launches of VRC_GROUP_MAX outputs */
        for (int j0 = 0; j0 < count; j0 += VRC_GROUP_MAX)
            vrc_ddlerp_lora(be, x, sx, m, n, count - j0 < VRC_GROUP_MAX ? count - j0 : VRC_GROUP_MAX, maa + j0,
                            mm + (size_t)j0 * k, k, ldm, w + j0, y + j0);
        return;
    }
    int wt = wt_of(w[0]->dtype);
    ddlerp_jobs jobs;
    memset(&jobs, 0, sizeof jobs);
    for (int j = 0; j < count; j++) {
        if (wt_of(w[j]->dtype) != wt || wt < 0) {
            vrc_fail(be, VR_ERR_UNSUPPORTED, "ddlerp_lora: weight dtypes differ or are not f32, f16 or bf16");
            return;
        }
        jobs.maa[j] = maa[j];
        jobs.w[j] = w[j]->data;
        jobs.y[j] = y[j];
    }
    cudaStream_t s = vrc(be)->stream;
    dim3 grid(vrc_blocks(total, 256), (unsigned)count);
    if (wt == 0) ddlerp_lora_kernel<0><<<grid, 256, 0, s>>>(x, sx, n, total, jobs, mm, k, ldm);
    else if (wt == 1) ddlerp_lora_kernel<1><<<grid, 256, 0, s>>>(x, sx, n, total, jobs, mm, k, ldm);
    else ddlerp_lora_kernel<2><<<grid, 256, 0, s>>>(x, sx, n, total, jobs, mm, k, ldm);
    vrc_check_launch(be, "ddlerp_lora");
}

/* ---- embedding ---- */

template <int WT>
__global__ void embedding_kernel(const int32_t *ids, int n, const void *table, int64_t rows, int c, float *out) {
    size_t total = (size_t)n * c;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)c, col = i % (size_t)c;
        int32_t id = ids[r];
        out[i] = id >= 0 && id < rows ? load_w<WT>(table, (size_t)id * c + col) : __int_as_float(0x7fc00000);
    }
}

void vrc_embedding(vr_backend *be, const int32_t *ids, int n, const vr_tensor *table, float *out) {
    if (n <= 0) return;
    vrc_enter(be);
    int c = (int)table->shape[1], wt = wt_of(table->dtype);
    const int32_t *dids = (const int32_t *)vrc_upload_table(be, VRC_SCR_TABLE, ids, (size_t)n * sizeof(int32_t));
    if (!dids || vrc_refilling(be)) return;
    size_t total = (size_t)n * c;
    cudaStream_t s = vrc(be)->stream;
    if (wt == 0) embedding_kernel<0><<<vrc_blocks(total, 256), 256, 0, s>>>(dids, n, table->data, table->shape[0], c, out);
    else if (wt == 1)
        embedding_kernel<1><<<vrc_blocks(total, 256), 256, 0, s>>>(dids, n, table->data, table->shape[0], c, out);
    else if (wt == 2)
        embedding_kernel<2><<<vrc_blocks(total, 256), 256, 0, s>>>(dids, n, table->data, table->shape[0], c, out);
    else vrc_fail(be, VR_ERR_UNSUPPORTED, "embedding: table dtype %d is not f32, f16 or bf16", (int)table->dtype);
    vrc_check_launch(be, "embedding");
}

/* ---- attention ---- */

/* one block per score row: softmax in place (max, exp, sum, scale) */
__global__ void softmax_rows_kernel(float *s, int L) {
    __shared__ float red[32];
    float *row = s + (size_t)blockIdx.x * L;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < L; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = block_max_f(mx, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    float inv = 1.0f / block_sum_f(sum, red);
    for (int j = threadIdx.x; j < L; j += blockDim.x) row[j] *= inv;
}

void vrc_attention(vr_backend *be, const float *q, const float *k, const float *v, int L, int heads, int hd,
                   float *out) {
    if (L <= 0 || heads <= 0) return;
    if (vrc_enter(be)) return;
    vrc_impl *c = vrc(be);
    int D = heads * hd;
    float *scores = (float *)vrc_scratch(be, VRC_SCR_SCORES, (size_t)heads * L * L * sizeof(float));
    if (!scores) return;
    const float one = 1.0f, zero = 0.0f;
    /* scores_h[L, L] = Q_h K_h^T: row-major x W^T with x = Q_h, W = K_h (row stride D) */
    if (vrc_check_blas(be,
                       cublasSgemmStridedBatched(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, L, L, hd, &one, k, D, hd, q, D, hd,
                                                 &zero, scores, L, (long long)L * L, heads),
                       "attention (scores)"))
        return;
    softmax_rows_kernel<<<(unsigned)(heads * L), 256, 0, c->stream>>>(scores, L);
    if (vrc_check_launch(be, "attention (softmax)")) return;
    /* out_h[L, hd] = P_h[L, L] V_h[L, hd]: column-major out_h^T = V_h^T P_h^T */
    vrc_check_blas(be,
                   cublasSgemmStridedBatched(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, L, L, &one, v, D, hd, scores, L,
                                             (long long)L * L, &zero, out, D, hd, heads),
                   "attention (values)");
}

/* ---- patch embedding ---- */

__global__ void im2col_kernel(const float *pixels, int S, int P, int G, float *patches) {
    int K = 3 * P * P;
    size_t total = (size_t)G * G * K;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int col = (int)(i % (size_t)K);
        int patch = (int)(i / (size_t)K);
        int py = patch / G, px = patch % G;
        int ch = col / (P * P), rem = col % (P * P), dy = rem / P, dx = rem % P;
        patches[i] = pixels[((size_t)ch * S + (size_t)(py * P + dy)) * S + (size_t)(px * P + dx)];
    }
}

void vrc_patch_embed(vr_backend *be, const float *pixels, int S, int P, const vr_tensor *w, float *out) {
    int G = S / P, K = 3 * P * P;
    if (G <= 0) return;
    if (vrc_enter(be)) return;
    float *patches = (float *)vrc_scratch(be, VRC_SCR_PATCH, (size_t)G * G * K * sizeof(float));
    if (!patches) return;
    size_t total = (size_t)G * G * K;
    im2col_kernel<<<vrc_blocks(total, 256), 256, 0, vrc(be)->stream>>>(pixels, S, P, G, patches);
    if (vrc_check_launch(be, "patch_embed (im2col)")) return;
    vr_tensor w2 = *w;
    w2.ndim = 2;
    w2.shape[1] = K;
    linear_run(be, patches, G * G, K, K, &w2, NULL, 0.0f, out);
}
