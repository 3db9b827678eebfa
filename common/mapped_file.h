/* common/mapped_file.h — read-only memory mapping of a whole file.
 * Never copies the file: large checkpoints stay in the page cache, not in a second buffer. */
#ifndef VR_MAPPED_FILE_H
#define VR_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vr_mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
    char *path;          /* owned copy, for error messages */
} vr_mapped_file;

vr_status vr_mapped_file_open(vr_mapped_file *f, const char *path, vr_error *err);
void vr_mapped_file_close(vr_mapped_file *f);

/* Reads a whole (small) file into a malloc'd, NUL-terminated buffer. Refuses files over max_size. */
vr_status vr_read_file(const char *path, size_t max_size, char **out, size_t *out_size, vr_error *err);

#endif
