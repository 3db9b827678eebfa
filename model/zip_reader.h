/* model/zip_reader.h — a minimal read-only ZIP parser over bytes already in memory (a mapped
 * .pth checkpoint). Reads the end-of-central-directory record (zip64 included), the central
 * directory and the local headers, and hands out where each member's bytes lie. Only stored
 * (uncompressed) members are accepted. Must not copy member data, decompress or write. */
#ifndef VR_ZIP_READER_H
#define VR_ZIP_READER_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vr_zip_member {
    const char *name;   /* points into the buffer; NOT NUL-terminated */
    size_t name_len;
    const uint8_t *data; /* the stored bytes, inside the buffer */
    uint64_t size;
    uint32_t crc32;     /* from the central directory (not verified here) */
} vr_zip_member;

typedef struct vr_zip {
    vr_zip_member *members; /* central-directory order */
    int count;
    const vr_zip_member **sorted; /* the members sorted by name, for lookups */
} vr_zip;

/* Parses the archive in data[0..size). path names the file in error messages. Every offset is
 * checked against the buffer; a compressed or encrypted member is VR_ERR_UNSUPPORTED naming it. */
vr_status vr_zip_open(const uint8_t *data, size_t size, const char *path, vr_zip *zip, vr_error *err);
void vr_zip_close(vr_zip *zip);

/* The member with exactly this name (len bytes), or NULL. */
const vr_zip_member *vr_zip_find(const vr_zip *zip, const char *name, size_t len);

#endif
