/* kernels/cuda/sampling.cu — choosing tokens on the GPU so a batch's logits need not cross to
 * the host: greedy argmax (first index of the maximum, NaN never wins, all-NaN gives 0: the
 * same as model/sampler.c's vr_argmax) with the chosen token's logit and log-probability
 * (log softmax in double, as vr_logprob). Only m small results come back.
 * Temperature / top-k / top-p and penalties still run on the host sampler (model/sampler.c)
 * on downloaded logits; see docs in kernels/backend.h. Must not modify the logits. */
#include <math.h>

#include "kernels/cuda/cuda_internal.h"

typedef struct vrc_pick {
    int32_t id;
    float logit;
    float logprob;
} vrc_pick;

__device__ __forceinline__ void better(float &bv, int &bi, float v, int i) {
    /* bi < 0: nothing yet. A NaN v never wins; ties keep the smaller index. */
    if (v != v) return;
    if (bi < 0 || v > bv || (v == bv && i < bi)) {
        bv = v;
        bi = i;
    }
}

__global__ void argmax_rows_kernel(const float *logits, int n, vrc_pick *out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ double sd[32];
    const float *row = logits + (size_t)blockIdx.x * n;
    float bv = 0.0f;
    int bi = -1;
    for (int i = threadIdx.x; i < n; i += blockDim.x) better(bv, bi, row[i], i);
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0) better(bv, bi, ov, oi);
    }
    int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if ((threadIdx.x & 31) == 0) {
        sv[w] = bv;
        si[w] = bi;
    }
    __syncthreads();
    if (threadIdx.x < 32) {
        bv = 0.0f;
        bi = -1;
        if ((int)threadIdx.x < nw && si[threadIdx.x] >= 0) {
            bv = sv[threadIdx.x];
            bi = si[threadIdx.x];
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (oi >= 0) better(bv, bi, ov, oi);
        }
        if (threadIdx.x == 0) {
            sv[0] = bv;
            si[0] = bi;
        }
    }
    __syncthreads();
    int id = si[0] < 0 ? 0 : si[0];
    /* the max for log softmax: the argmax's value (NaN ignored), -inf when all NaN */
    double mx = si[0] < 0 ? -INFINITY : (double)sv[0];
    double sum = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) sum += exp((double)row[i] - mx);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if ((threadIdx.x & 31) == 0) sd[w] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < nw; i++) t += sd[i];
        vrc_pick p;
        p.id = id;
        p.logit = row[id];
        p.logprob = (float)((double)row[id] - mx - log(t));
        out[blockIdx.x] = p;
    }
}

vr_status vrc_argmax_rows(vr_backend *be, const float *logits, int m, int n, int32_t *ids, float *logit,
                          float *logprob, vr_error *err) {
    if (m <= 0) return VR_OK;
    if (n <= 0) return vrc_error_out(be, err, VR_ERR_INVALID, "argmax over %d logits", n);
    vrc_enter(be);
    vrc_impl *c = vrc(be);
    if (c->mode != VRC_EAGER)
        return vrc_error_out(be, err, VR_ERR_INTERNAL, "argmax while recording a step (only ops may be recorded)");
    vrc_pick *d = (vrc_pick *)vrc_scratch(be, VRC_SCR_SAMPLE, (size_t)m * sizeof(vrc_pick));
    vrc_pick *h = (vrc_pick *)malloc((size_t)m * sizeof(vrc_pick));
    if (!d || !h) {
        free(h);
        return vrc_error_out(be, err, VR_ERR_NOMEM, "out of memory choosing %d tokens on the GPU", m);
    }
    argmax_rows_kernel<<<(unsigned)m, 256, 0, c->stream>>>(logits, n, d);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpyAsync(h, d, (size_t)m * sizeof(vrc_pick), cudaMemcpyDeviceToHost, c->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    if (e == cudaSuccess) vrc_stream_drained(be);
    if (e != cudaSuccess) {
        free(h);
        vrc_check(be, e, "argmax on the GPU");
        return vrc_error_out(be, err, VR_ERR_INTERNAL, "argmax on the GPU: %s", cudaGetErrorString(e));
    }
    if (c->first_error != VR_OK) {
        free(h);
        return vrc_error_out(be, err, c->first_error, "CUDA backend: %s", c->first_msg);
    }
    for (int i = 0; i < m; i++) {
        ids[i] = h[i].id;
        if (logit) logit[i] = h[i].logit;
        if (logprob) logprob[i] = h[i].logprob;
    }
    free(h);
    return VR_OK;
}
