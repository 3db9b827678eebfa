/* kernels/cpu/blas.h — the one CBLAS entry point vrwkv uses, declared here so the build needs
 * only the OpenBLAS library (some machines ship it without cblas.h). ABI per the CBLAS standard. */
#ifndef VR_CPU_BLAS_H
#define VR_CPU_BLAS_H

enum { VR_CBLAS_ROW_MAJOR = 101 };
enum { VR_CBLAS_NO_TRANS = 111, VR_CBLAS_TRANS = 112 };

void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);

#endif
