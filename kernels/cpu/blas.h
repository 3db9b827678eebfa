/* kernels/cpu/blas.h — the CPU backend's door to OpenBLAS. The CBLAS entry point is declared
 * here so the build needs only the OpenBLAS library (some machines ship it without cblas.h;
 * ABI per the CBLAS standard); kernels/cpu/cpu_blas.c is the only file that calls it. */
#ifndef VR_CPU_BLAS_H
#define VR_CPU_BLAS_H

enum { VR_CBLAS_ROW_MAJOR = 101 };
enum { VR_CBLAS_NO_TRANS = 111, VR_CBLAS_TRANS = 112 };

void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int num_threads);

/* Keeps OpenBLAS to one thread per call, once per process: the CPU backend's parallelism is
 * OpenMP's (vr_cpu_sgemm splits a GEMM over its threads). */
void vr_cpu_blas_init(void);

/* Row-major C[m, n] (ldc) = A[m, k] (lda) op(B) + beta C, op(B) = B[k, n] (ldb) for
 * VR_CBLAS_NO_TRANS or B[n, k]^T for VR_CBLAS_TRANS: split along the longer side of C over the
 * OpenMP threads, each slice one single-threaded OpenBLAS call (every element is computed as
 * the unsplit call computes it). */
void vr_cpu_sgemm(int trans_b, int m, int n, int k, const float *a, int lda, const float *b, int ldb, float beta,
                  float *c, int ldc);

#endif
