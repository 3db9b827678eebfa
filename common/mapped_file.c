/* common/mapped_file.c — mmap of files for the loaders; small-file reads for configs.
 * Must not interpret the bytes. */
#include "common/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

vr_status vr_mapped_file_open(vr_mapped_file *f, const char *path, vr_error *err) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vr_error_set(err, VR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return vr_error_set(err, VR_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vr_error_set(err, VR_ERR_IO, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return vr_error_set(err, VR_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
        f->data = p;
    }
    close(fd);
    f->path = strdup(path);
    if (!f->path) {
        vr_mapped_file_close(f);
        return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
    }
    return VR_OK;
}

void vr_mapped_file_close(vr_mapped_file *f) {
    if (!f) return;
    if (f->data) munmap((void *)f->data, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

vr_status vr_read_file(const char *path, size_t max_size, char **out, size_t *out_size, vr_error *err) {
    *out = NULL;
    if (out_size) *out_size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return vr_error_set(err, VR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(fp);
        return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max_size) {
                free(buf);
                fclose(fp);
                return vr_error_set(err, VR_ERR_NOMEM, "%s: larger than the %zu-byte limit", path, max_size);
            }
            cap = cap * 2 > max_size ? max_size : cap * 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(fp);
                return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return vr_error_set(err, VR_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (out_size) *out_size = n;
    return VR_OK;
}
