/* kernels/cpu/cpu_blas.c — GEMMs for the CPU backend: OpenBLAS kept to one thread, each GEMM
 * split into slices over OpenMP's threads. With OpenBLAS's own thread pool beside OpenMP's on
 * the same cores, each pool's idle threads spun while the other's worked: on 2 cores a 64-token
 * prefill took 6x and a ViT encode 2.7x as long. Must not change what a GEMM computes: a slice
 * of C is the same product as in the whole call. */
#include <omp.h>
#include <pthread.h>
#include <stddef.h>

#include "kernels/cpu/blas.h"

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_one_thread(void) { openblas_set_num_threads(1); }

void vr_cpu_blas_init(void) { pthread_once(&blas_once, blas_one_thread); }

enum { MIN_SPLIT_WORK = 1 << 21, SLICE_ALIGN = 16 };

void vr_cpu_sgemm(int trans_b, int m, int n, int k, const float *a, int lda, const float *b, int ldb, float beta,
                  float *c, int ldc) {
    vr_cpu_blas_init();
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    int by_rows = m >= n, len = by_rows ? m : n;
    if (threads <= 1 || (double)m * n * k < MIN_SPLIT_WORK || len < 2 * SLICE_ALIGN) {
        cblas_sgemm(VR_CBLAS_ROW_MAJOR, VR_CBLAS_NO_TRANS, trans_b, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int slice = (len + threads - 1) / threads;
    slice = (slice + SLICE_ALIGN - 1) / SLICE_ALIGN * SLICE_ALIGN;
    int slices = (len + slice - 1) / slice;
#pragma omp parallel for schedule(static) num_threads(slices)
    for (int s = 0; s < slices; s++) {
        int i0 = s * slice, cnt = len - i0 < slice ? len - i0 : slice;
        if (by_rows) /* rows of A and C */
            cblas_sgemm(VR_CBLAS_ROW_MAJOR, VR_CBLAS_NO_TRANS, trans_b, cnt, n, k, 1.0f, a + (size_t)i0 * lda, lda, b,
                        ldb, beta, c + (size_t)i0 * ldc, ldc);
        else /* columns of C: rows of B^T, or columns of B */
            cblas_sgemm(VR_CBLAS_ROW_MAJOR, VR_CBLAS_NO_TRANS, trans_b, m, cnt, k, 1.0f, a, lda,
                        trans_b == VR_CBLAS_TRANS ? b + (size_t)i0 * ldb : b + i0, ldb, beta, c + i0, ldc);
    }
}
