/* kernels/cuda/sampling.cu — choosing tokens on the GPU so a batch's logits need not cross to
 * the host: greedy argmax (first index of the maximum, NaN never wins, all-NaN gives 0: the
 * same as model/sampler.c's vr_argmax) with the chosen token's logit and log-probability
 * (log softmax in double, as vr_logprob). Only m small results come back.
 * Sampling (sample_rows): kernels/sample.h's rule on the device — penalties subtracted, each
 * row sorted by rank (CUB segmented radix sort, stable: ties keep the smaller id first), top-k
 * and top-p cut in rank order, the draw walked in id order — so only ids and two floats per
 * row come back. Must not modify the logits. */
#include <math.h>
#include <stdlib.h>

#include <cub/device/device_segmented_radix_sort.cuh>

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

/* The first index of the row's maximum (NaN never wins; -1 when every entry is NaN), reduced
 * over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it and *best
 * its value. sv, si: 32 shared slots each, free again when it returns. */
__device__ int block_argmax(const float *row, int n, float *sv, int *si, float *best) {
    float bv = 0.0f;
    int bi = -1;
    for (int i = threadIdx.x; i < n; i += blockDim.x) better(bv, bi, row[i], i);
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0) better(bv, bi, ov, oi);
    }
    int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* sv, si may still be read from an earlier use */
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
    int idx = si[0];
    *best = sv[0];
    __syncthreads();
    return idx;
}

__global__ void argmax_rows_kernel(const float *logits, int n, vrc_pick *out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ double sd[32];
    const float *row = logits + (size_t)blockIdx.x * n;
    float best = 0.0f;
    int found = block_argmax(row, n, sv, si, &best);
    int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    int id = found < 0 ? 0 : found;
    /* the max for log softmax: the argmax's value (NaN ignored), -inf when all NaN */
    double mx = found < 0 ? -INFINITY : (double)best;
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
    if (e != cudaSuccess || c->first_error != VR_OK) {
        free(h);
        if (e != cudaSuccess) vrc_check(be, e, "argmax on the GPU");
        return vrc_error_take(be, err, VR_ERR_INTERNAL, "argmax on the GPU failed");
    }
    for (int i = 0; i < m; i++) {
        ids[i] = h[i].id;
        if (logit) logit[i] = h[i].logit;
        if (logprob) logprob[i] = h[i].logprob;
    }
    free(h);
    return VR_OK;
}

/* ---- sampling (kernels/sample.h's rule) ---- */

enum { VRC_SAMPLE_CHUNK = 16, VRC_SAMPLE_THREADS = 1024 };

typedef struct vrc_pen {
    int32_t row, id;
    float sub;
} vrc_pen;

__device__ __forceinline__ float sort_key(float v) { return v != v ? -INFINITY : v == 0.0f ? 0.0f : v; }

/* adj = logits (raw copy), keys = adj sanitised for sorting (NaN -> -inf, -0 -> +0), ids = j */
__global__ void sample_prep_kernel(const float *logits, size_t total, int n, float *adj, float *keys, int32_t *ids) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float v = logits[i];
        adj[i] = v;
        keys[i] = sort_key(v);
        ids[i] = (int32_t)(i % (size_t)n);
    }
}

__global__ void sample_penalty_kernel(const vrc_pen *pen, int n_pen, int n, float *adj, float *keys) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_pen) return;
    size_t at = (size_t)pen[i].row * n + pen[i].id;
    float v = adj[at] - pen[i].sub; /* each (row, id) appears once: no race */
    adj[at] = v;
    keys[at] = sort_key(v);
}

__device__ __forceinline__ double prob_of(float v, float mx, double inv_t) {
    if (v != v) return 0.0;
    if (mx == INFINITY) return v == INFINITY ? 1.0 : 0.0;
    return exp(((double)v - (double)mx) * inv_t);
}

/* exclusive prefix over the block of one double per thread (VRC_SAMPLE_THREADS threads);
 * *total gets the sum. Uses sh[VRC_SAMPLE_THREADS]. */
__device__ double block_exclusive_scan(double v, double *sh, double *total) {
    int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int o = 1; o < VRC_SAMPLE_THREADS; o <<= 1) {
        double add = t >= o ? sh[t - o] : 0.0;
        __syncthreads();
        sh[t] += add;
        __syncthreads();
    }
    double incl = sh[t];
    *total = sh[VRC_SAMPLE_THREADS - 1];
    __syncthreads();
    return incl - v;
}

/* One block per row: the choice for rows[row] over adj (penalised, id order), keys/ids (the same
 * sorted by rank), kept (scratch flags); the pick of the raw logits' logit and log softmax. */
__global__ void __launch_bounds__(VRC_SAMPLE_THREADS)
    sample_choose_kernel(const float *raw_all, const float *adj_all, const float *keys_all, const int32_t *ids_all,
                         uint8_t *kept_all, int n, const vr_sample_row *rows, vrc_pick *out) {
    __shared__ double sh[VRC_SAMPLE_THREADS];
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ int s_pick, s_last, s_cut;
    __shared__ double s_d;
    const int t = threadIdx.x, row = blockIdx.x;
    const size_t base = (size_t)row * n;
    const float *raw = raw_all + base, *adj = adj_all + base, *keys = keys_all + base;
    const int32_t *ids = ids_all + base;
    uint8_t *kept = kept_all + base;
    const vr_sample_row R = rows[row];
    const int chunk = (n + VRC_SAMPLE_THREADS - 1) / VRC_SAMPLE_THREADS;
    const int lo = t * chunk, hi = lo + chunk < n ? lo + chunk : n;
    double dummy;

    /* argmax of adj (greedy, and the fallback): first index of the max, NaN never wins */
    float amax = 0.0f;
    int found = block_argmax(adj, n, sv, si, &amax);
    const int argmax = found < 0 ? 0 : found;
    int tok = argmax;
    const float mx = keys[0]; /* the largest non-NaN adj (-inf when none) */
    if (!(R.temperature <= 0.0f || R.top_k == 1) && mx != -INFINITY) {
        const double inv_t = 1.0 / (double)R.temperature;
        /* candidates: p > 0, a prefix of the rank order (p does not grow along it) */
        int cnt = 0;
        for (int r = lo; r < hi; r++) cnt += prob_of(keys[r], mx, inv_t) > 0.0;
        double nc_d = 0;
        block_exclusive_scan((double)cnt, sh, &nc_d);
        int nc = (int)nc_d;
        int kk = R.top_k > 0 && R.top_k < nc ? R.top_k : nc;
        for (int i = t; i < n; i += blockDim.x) kept[i] = 0;
        __syncthreads();
        for (int r = t; r < kk; r += blockDim.x) kept[ids[r]] = 1;
        __syncthreads();
        if (R.top_p < 1.0f && kk > 1) {
            double part = 0, total = 0;
            for (int i = lo; i < hi; i++)
                if (kept[i]) part += prob_of(adj[i], mx, inv_t);
            block_exclusive_scan(part, sh, &total);
            const double target = (double)R.top_p * total;
            /* the smallest rank prefix whose sum reaches target */
            int rlo = lo < kk ? lo : kk, rhi = hi < kk ? hi : kk;
            double rs = 0;
            for (int r = rlo; r < rhi; r++) rs += prob_of(keys[r], mx, inv_t);
            double pre = block_exclusive_scan(rs, sh, &dummy);
            if (t == 0) s_cut = kk;
            __syncthreads();
            double acc = pre;
            for (int r = rlo; r < rhi; r++) {
                acc += prob_of(keys[r], mx, inv_t);
                if (acc >= target) {
                    atomicMin(&s_cut, r + 1);
                    break;
                }
            }
            __syncthreads();
            for (int r = s_cut + t; r < kk; r += blockDim.x) kept[ids[r]] = 0;
            __syncthreads();
        }
        /* the draw, walked in increasing id order over the kept */
        double part = 0, total = 0;
        for (int i = lo; i < hi; i++)
            if (kept[i]) part += prob_of(adj[i], mx, inv_t);
        double pre = block_exclusive_scan(part, sh, &total);
        if (t == 0) {
            s_pick = 0x7fffffff;
            s_last = -1;
            s_d = R.u * total;
        }
        __syncthreads();
        const double rr = s_d;
        double acc = pre;
        int my_last = -1;
        for (int i = lo; i < hi; i++) {
            if (!kept[i]) continue;
            my_last = i;
            acc += prob_of(adj[i], mx, inv_t);
            if (rr < acc) {
                atomicMin(&s_pick, i);
                break;
            }
        }
        if (my_last >= 0) atomicMax(&s_last, my_last);
        __syncthreads();
        tok = s_pick != 0x7fffffff ? s_pick : s_last >= 0 ? s_last : argmax;
    }
    /* log softmax of the raw logits at tok, as vr_logprob: max ignoring NaN, sum in double */
    float m = -INFINITY;
    for (int i = t; i < n; i += blockDim.x)
        if (raw[i] > m) m = raw[i];
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    __syncthreads();
    if ((t & 31) == 0) sv[t >> 5] = m;
    __syncthreads();
    if (t == 0) {
        float mm = -INFINITY;
        for (int w = 0; w < VRC_SAMPLE_THREADS / 32; w++) mm = fmaxf(mm, sv[w]);
        sv[0] = mm;
    }
    __syncthreads();
    const double rmx = (double)sv[0];
    double se = 0;
    for (int i = t; i < n; i += blockDim.x) se += exp((double)raw[i] - rmx);
    double sum = 0;
    block_exclusive_scan(se, sh, &sum);
    if (t == 0) {
        vrc_pick p;
        p.id = tok;
        p.logit = raw[tok];
        p.logprob = (float)((double)raw[tok] - rmx - log(sum));
        out[row] = p;
    }
}

vr_status vrc_sample_rows(vr_backend *be, const float *logits, int m, int n, const vr_sample_row *rows,
                          const int32_t *pen_start, const int32_t *pen_ids, const float *pen_sub, int32_t *ids,
                          float *logit, float *logprob, vr_error *err) {
    if (m <= 0) return VR_OK;
    if (n <= 0) return vrc_error_out(be, err, VR_ERR_INVALID, "sampling over %d logits", n);
    vrc_enter(be);
    vrc_impl *c = vrc(be);
    if (c->mode != VRC_EAGER)
        return vrc_error_out(be, err, VR_ERR_INTERNAL, "sampling while recording a step (only ops may be recorded)");
    const int RC = m < VRC_SAMPLE_CHUNK ? m : VRC_SAMPLE_CHUNK;
    const size_t cells = (size_t)RC * n;
    /* work: adj, keys in/out (f32), ids in/out (i32), kept (u8), the chunk's picks */
    size_t off_keys = cells * 4, off_keys2 = 2 * cells * 4, off_ids = 3 * cells * 4, off_ids2 = 4 * cells * 4;
    size_t off_kept = 5 * cells * 4, off_pick = (off_kept + cells + 255) & ~(size_t)255;
    uint8_t *work = (uint8_t *)vrc_scratch(be, VRC_SCR_SWORK, off_pick + (size_t)RC * sizeof(vrc_pick));
    vrc_pick *h = (vrc_pick *)malloc((size_t)RC * sizeof(vrc_pick));
    int32_t *offsets = (int32_t *)malloc((size_t)(RC + 1) * sizeof(int32_t));
    int max_pen = 0;
    for (int i = 0; i < m; i += RC) {
        int e = i + RC < m ? i + RC : m;
        if (pen_start[e] - pen_start[i] > max_pen) max_pen = pen_start[e] - pen_start[i];
    }
    vrc_pen *pen = (vrc_pen *)malloc((size_t)(max_pen ? max_pen : 1) * sizeof(vrc_pen));
    vr_status st = VR_OK;
    if (!work || !h || !offsets || !pen) st = vrc_error_out(be, err, VR_ERR_NOMEM, "out of memory sampling %d rows", m);
    for (int r = 0; r <= RC && st == VR_OK; r++) offsets[r] = r * n;
    for (int i0 = 0; i0 < m && st == VR_OK; i0 += RC) {
        int rc = m - i0 < RC ? m - i0 : RC;
        size_t cn = (size_t)rc * n;
        float *adj = (float *)work, *keys = (float *)(work + off_keys), *keys2 = (float *)(work + off_keys2);
        int32_t *sids = (int32_t *)(work + off_ids), *sids2 = (int32_t *)(work + off_ids2);
        uint8_t *kept = work + off_kept;
        vrc_pick *dpick = (vrc_pick *)(work + off_pick);
        int np = 0;
        for (int r = 0; r < rc; r++)
            for (int j = pen_start[i0 + r]; j < pen_start[i0 + r + 1]; j++) {
                if (pen_ids[j] < 0 || pen_ids[j] >= n) continue;
                pen[np].row = r;
                pen[np].id = pen_ids[j];
                pen[np].sub = pen_sub[j];
                np++;
            }
        static const int slots[3] = {VRC_SCR_SROWS, VRC_SCR_SOFF, VRC_SCR_SPEN};
        const void *hosts[3] = {rows + i0, offsets, pen};
        const size_t sizes[3] = {(size_t)rc * sizeof(vr_sample_row), (size_t)(rc + 1) * sizeof(int32_t),
                                 (size_t)np * sizeof(vrc_pen)};
        void *dtab[3];
        int uploaded = vrc_upload_tables(be, 3, slots, hosts, sizes, dtab);
        const vr_sample_row *drows = (const vr_sample_row *)dtab[0];
        const int32_t *doff = (const int32_t *)dtab[1];
        const vrc_pen *dpen = (const vrc_pen *)dtab[2];
        if (!uploaded) {
            st = vrc_error_take(be, err, VR_ERR_INTERNAL, "sampling: the tables did not reach the GPU");
            break;
        }
        const float *lg = logits + (size_t)i0 * n;
        sample_prep_kernel<<<vrc_blocks(cn, 256), 256, 0, c->stream>>>(lg, cn, n, adj, keys, sids);
        if (np) sample_penalty_kernel<<<(unsigned)((np + 255) / 256), 256, 0, c->stream>>>(dpen, np, n, adj, keys);
        size_t temp = 0;
        cudaError_t e = cub::DeviceSegmentedRadixSort::SortPairsDescending(
            NULL, temp, keys, keys2, sids, sids2, (int)cn, rc, doff, doff + 1, 0, 32, c->stream);
        void *dtemp = e == cudaSuccess ? vrc_scratch(be, VRC_SCR_SCUB, temp ? temp : 1) : NULL;
        if (e == cudaSuccess && dtemp)
            e = cub::DeviceSegmentedRadixSort::SortPairsDescending(dtemp, temp, keys, keys2, sids, sids2, (int)cn, rc,
                                                                   doff, doff + 1, 0, 32, c->stream);
        if (e == cudaSuccess && dtemp) { /* never on unsorted keys: sids2 may hold anything */
            sample_choose_kernel<<<(unsigned)rc, VRC_SAMPLE_THREADS, 0, c->stream>>>(lg, adj, keys2, sids2, kept, n,
                                                                                      drows, dpick);
            e = cudaGetLastError();
        }
        if (e == cudaSuccess && dtemp)
            e = cudaMemcpyAsync(h, dpick, (size_t)rc * sizeof(vrc_pick), cudaMemcpyDeviceToHost, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
        if (e == cudaSuccess) vrc_stream_drained(be);
        if (e != cudaSuccess || !dtemp || c->first_error != VR_OK) {
            if (e != cudaSuccess) vrc_check(be, e, "sampling on the GPU");
            st = vrc_error_take(be, err, VR_ERR_NOMEM, "sampling: no GPU memory for the sort");
            break;
        }
        for (int r = 0; r < rc; r++) {
            ids[i0 + r] = h[r].id;
            if (logit) logit[i0 + r] = h[r].logit;
            if (logprob) logprob[i0 + r] = h[r].logprob;
        }
    }
    free(h);
    free(offsets);
    free(pen);
    return st;
}
