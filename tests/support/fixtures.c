/* tests/support/fixtures.c — fixture lookup and loading helpers for the tests. Failures go
 * through vrt_fail (cmocka's fail in tests/support/fail_cmocka.c; print-and-exit in the plain
 * GPU tests), so this file needs no test framework. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <math.h>

#include "common/mapped_file.h"
#include "tests/support/fixtures.h"

const char *vrt_shared_dir(void) {
    static char dir[4096];
    const char *env = getenv("VRWKV_SHARED_DIR");
    snprintf(dir, sizeof dir, "%s", env && *env ? env : VRWKV_SHARED_DIR);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/fixtures/README.md", dir);
    struct stat st;
    if (stat(probe, &st) != 0) return NULL;
    return dir;
}

const char *vrt_fixture_path(const char *rel) {
    static char path[8300];
    const char *dir = vrt_shared_dir();
    snprintf(path, sizeof path, "%s/fixtures/%s", dir ? dir : ".", rel);
    return path;
}

cJSON *vrt_load_json(const char *rel) {
    char *text = NULL;
    vr_error err = {0};
    if (vr_read_file(vrt_fixture_path(rel), (size_t)1 << 30, &text, NULL, &err) != VR_OK)
        vrt_fail("%s", err.msg);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) vrt_fail("%s: invalid JSON", rel);
    return j;
}

void *vrt_load_array(const cJSON *ref, size_t *count) {
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(ref, "file");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(ref, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(ref, "shape");
    if (!cJSON_IsString(file) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape)) vrt_fail("bad array reference");
    size_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) n *= (size_t)d->valuedouble;
    size_t esize = strcmp(dtype->valuestring, "uint8") == 0 ? 1 : 4;
    char *data = NULL;
    size_t size = 0;
    vr_error err = {0};
    if (vr_read_file(vrt_fixture_path(file->valuestring), (size_t)1 << 31, &data, &size, &err) != VR_OK)
        vrt_fail("%s", err.msg);
    if (size != n * esize) vrt_fail("%s: %zu bytes, expected %zu", file->valuestring, size, n * esize);
    if (count) *count = n;
    return data;
}

int32_t *vrt_json_ints(const cJSON *arr, int *count) {
    int n = cJSON_GetArraySize(arr);
    int32_t *out = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) out[i++] = (int32_t)e->valuedouble;
    *count = n;
    return out;
}

float vrt_max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}
