/* kernels/backend.c — choosing a backend by name ("cpu", "cuda") and freeing one. The CUDA
 * branch exists only in builds with VRWKV_HAVE_CUDA; elsewhere asking for it fails with a
 * message that says how to get it. Must not hold any math. */
#include "kernels/backend.h"

#include <stdlib.h>
#include <string.h>

#ifndef VRWKV_HAVE_CUDA
vr_status vr_backend_cuda_create(int device, vr_backend **out, vr_error *err) {
    (void)device;
    *out = NULL;
    return vr_error_set(err, VR_ERR_UNAVAILABLE,
                        "this vrwkv was built without CUDA: rebuild with -DVRWKV_CUDA=ON (needs nvcc) or use the cpu "
                        "backend");
}
#endif

vr_status vr_backend_create(const char *name, int threads_or_device, vr_backend **out, vr_error *err) {
    *out = NULL;
    if (!name || !*name || !strcmp(name, "cpu")) return vr_backend_cpu_create(threads_or_device, out, err);
    if (!strcmp(name, "cuda")) return vr_backend_cuda_create(threads_or_device > 0 ? threads_or_device : 0, out, err);
    return vr_error_set(err, VR_ERR_INVALID, "unknown backend '%s' (expected cpu or cuda)", name);
}

void vr_backend_free(vr_backend *be) {
    if (!be) return;
    if (be->ops && be->ops->destroy) be->ops->destroy(be);
    else free(be);
}
