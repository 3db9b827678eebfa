/* model/zip_reader.c — read-only ZIP (stored members only, zip64 aware) over a memory buffer.
 * Must not copy, decompress or verify member data (CRCs are reported, not checked: checking
 * would read every byte of a multi-GiB checkpoint). Every offset is bounds-checked. */
#include "model/zip_reader.h"

#include <stdlib.h>
#include <string.h>

#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP_EOCD64_SIG 0x06064b50u
#define ZIP_LOC64_SIG 0x07064b50u
#define ZIP_CDH_SIG 0x02014b50u
#define ZIP_LFH_SIG 0x04034b50u
#define ZIP_EOCD_LEN 22u
#define ZIP_CDH_LEN 46u
#define ZIP_LFH_LEN 30u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* off + len <= size, without overflow. */
static int in_bounds(uint64_t off, uint64_t len, size_t size) {
    return off <= (uint64_t)size && len <= (uint64_t)size - off;
}

/* Reads the zip64 extended-information extra field (id 0x0001) of a central-directory
 * entry, replacing the saturated 32-bit values. */
static vr_status apply_zip64_extra(const uint8_t *extra, size_t extra_len, uint64_t *usize, uint64_t *csize,
                                   uint64_t *local_off, int need_u, int need_c, int need_o, const char *path,
                                   const char *name, int name_len, vr_error *err) {
    size_t p = 0;
    while (p + 4 <= extra_len) {
        uint16_t id = rd16(extra + p), len = rd16(extra + p + 2);
        if (len > extra_len - p - 4)
            return vr_error_set(err, VR_ERR_FORMAT, "%s: zip member %.*s: extra field runs past its end", path,
                                name_len, name);
        if (id == 0x0001) {
            const uint8_t *q = extra + p + 4;
            size_t left = len;
            if (need_u) {
                if (left < 8) goto short_field;
                *usize = rd64(q), q += 8, left -= 8;
            }
            if (need_c) {
                if (left < 8) goto short_field;
                *csize = rd64(q), q += 8, left -= 8;
            }
            if (need_o) {
                if (left < 8) goto short_field;
                *local_off = rd64(q);
            }
            return VR_OK;
        }
        p += 4u + len;
    }
    if (need_u || need_c || need_o)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: zip member %.*s: zip64 sizes missing (no zip64 extra field)",
                            path, name_len, name);
    return VR_OK;
short_field:
    return vr_error_set(err, VR_ERR_FORMAT, "%s: zip member %.*s: zip64 extra field too short", path, name_len,
                        name);
}

static int cmp_names(const vr_zip_member *a, const char *bname, size_t blen) {
    size_t n = a->name_len < blen ? a->name_len : blen;
    int c = n ? memcmp(a->name, bname, n) : 0;
    if (c) return c;
    return a->name_len < blen ? -1 : a->name_len > blen ? 1 : 0;
}

static int cmp_sorted(const void *x, const void *y) {
    const vr_zip_member *a = *(const vr_zip_member *const *)x;
    const vr_zip_member *b = *(const vr_zip_member *const *)y;
    return cmp_names(a, b->name, b->name_len);
}

/* Finds the end-of-central-directory record: the last "PK\5\6" whose comment fits the file. */
static vr_status find_eocd(const uint8_t *data, size_t size, const char *path, size_t *out, vr_error *err) {
    if (size < ZIP_EOCD_LEN)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: too small to be a zip archive (%zu bytes); the file is truncated",
                            path, size);
    size_t lo = size > ZIP_EOCD_LEN + 65535u ? size - ZIP_EOCD_LEN - 65535u : 0;
    for (size_t p = size - ZIP_EOCD_LEN + 1; p-- > lo;) {
        if (rd32(data + p) == ZIP_EOCD_SIG && p + ZIP_EOCD_LEN + rd16(data + p + 20) <= size) {
            *out = p;
            return VR_OK;
        }
    }
    return vr_error_set(err, VR_ERR_FORMAT,
                        "%s: no zip end-of-central-directory record; the file is truncated or not a .pth archive",
                        path);
}

vr_status vr_zip_open(const uint8_t *data, size_t size, const char *path, vr_zip *zip, vr_error *err) {
    memset(zip, 0, sizeof *zip);
    size_t eocd = 0;
    vr_status st = find_eocd(data, size, path, &eocd, err);
    if (st != VR_OK) return st;
    const uint8_t *e = data + eocd;
    uint64_t n_entries = rd16(e + 10);
    uint64_t cd_size = rd32(e + 12);
    uint64_t cd_off = rd32(e + 16);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0)
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", path);

    /* zip64: a locator sits right before the EOCD; torch always writes one. */
    if (eocd >= 20 && rd32(data + eocd - 20) == ZIP_LOC64_SIG) {
        uint64_t off64 = rd64(data + eocd - 20 + 8);
        if (!in_bounds(off64, 56, size) || rd32(data + off64) != ZIP_EOCD64_SIG)
            return vr_error_set(err, VR_ERR_FORMAT, "%s: zip64 end-of-central-directory record missing or out of range",
                                path);
        const uint8_t *z = data + off64;
        n_entries = rd64(z + 32);
        cd_size = rd64(z + 40);
        cd_off = rd64(z + 48);
    } else if (n_entries == 0xFFFFu || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        return vr_error_set(err, VR_ERR_FORMAT, "%s: zip64 archive without a zip64 locator", path);
    }
    if (!in_bounds(cd_off, cd_size, size))
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: zip central directory (offset %llu, %llu bytes) lies outside the %zu-byte file; "
                            "the file is truncated",
                            path, (unsigned long long)cd_off, (unsigned long long)cd_size, size);
    if (n_entries > cd_size / ZIP_CDH_LEN || n_entries > 0x7fffffffu)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: zip claims %llu members, more than its central directory holds",
                            path, (unsigned long long)n_entries);
    if (n_entries == 0) return vr_error_set(err, VR_ERR_FORMAT, "%s: empty zip archive", path);

    zip->members = calloc((size_t)n_entries, sizeof *zip->members);
    zip->sorted = calloc((size_t)n_entries, sizeof *zip->sorted);
    if (!zip->members || !zip->sorted) {
        vr_zip_close(zip);
        return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory for %llu zip members", path,
                            (unsigned long long)n_entries);
    }
    uint64_t p = cd_off, cd_end = cd_off + cd_size;
    for (uint64_t i = 0; i < n_entries; i++) {
        if (p + ZIP_CDH_LEN > cd_end || rd32(data + p) != ZIP_CDH_SIG) {
            vr_zip_close(zip);
            return vr_error_set(err, VR_ERR_FORMAT, "%s: zip central directory entry %llu is corrupt", path,
                                (unsigned long long)i);
        }
        const uint8_t *c = data + p;
        uint16_t flags = rd16(c + 8), method = rd16(c + 10);
        uint32_t crc = rd32(c + 16);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24);
        uint16_t name_len = rd16(c + 28), extra_len = rd16(c + 30), comment_len = rd16(c + 32);
        uint64_t local_off = rd32(c + 42);
        uint64_t rec_len = ZIP_CDH_LEN + (uint64_t)name_len + extra_len + comment_len;
        if (p + rec_len > cd_end) {
            vr_zip_close(zip);
            return vr_error_set(err, VR_ERR_FORMAT, "%s: zip central directory entry %llu runs past the directory",
                                path, (unsigned long long)i);
        }
        const char *name = (const char *)(c + ZIP_CDH_LEN);
        st = apply_zip64_extra(c + ZIP_CDH_LEN + name_len, extra_len, &usize, &csize, &local_off,
                               usize == 0xFFFFFFFFu, csize == 0xFFFFFFFFu, local_off == 0xFFFFFFFFu, path, name,
                               name_len, err);
        if (st != VR_OK) {
            vr_zip_close(zip);
            return st;
        }
        if (flags & 1u) {
            vr_zip_close(zip);
            return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: zip member %.*s is encrypted", path, (int)name_len, name);
        }
        if (method != 0) {
            vr_zip_close(zip);
            return vr_error_set(err, VR_ERR_UNSUPPORTED,
                                "%s: zip member %.*s is compressed (method %u); only stored members are supported "
                                "(save with torch.save, which does not compress)",
                                path, (int)name_len, name, (unsigned)method);
        }
        if (csize != usize) {
            vr_zip_close(zip);
            return vr_error_set(err, VR_ERR_FORMAT, "%s: stored zip member %.*s has compressed size %llu != size %llu",
                                path, (int)name_len, name, (unsigned long long)csize, (unsigned long long)usize);
        }
        /* The local header: its own name/extra lengths decide where the data starts. */
        if (!in_bounds(local_off, ZIP_LFH_LEN, size) || rd32(data + local_off) != ZIP_LFH_SIG) {
            vr_zip_close(zip);
            return vr_error_set(err, VR_ERR_FORMAT, "%s: zip member %.*s: local header missing or out of range", path,
                                (int)name_len, name);
        }
        const uint8_t *l = data + local_off;
        uint64_t l_name = rd16(l + 26), l_extra = rd16(l + 28);
        uint64_t data_off = local_off + ZIP_LFH_LEN + l_name + l_extra;
        if (l_name != name_len || !in_bounds(local_off + ZIP_LFH_LEN, l_name, size) ||
            memcmp(l + ZIP_LFH_LEN, name, name_len) != 0) {
            vr_zip_close(zip);
            return vr_error_set(err, VR_ERR_FORMAT, "%s: zip member %.*s: local header name differs from the directory",
                                path, (int)name_len, name);
        }
        if (rd16(l + 8) != 0) {
            vr_zip_close(zip);
            return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: zip member %.*s is compressed (local header)", path,
                                (int)name_len, name);
        }
        if (!in_bounds(data_off, usize, size)) {
            vr_zip_close(zip);
            return vr_error_set(err, VR_ERR_FORMAT,
                                "%s: zip member %.*s (%llu bytes at offset %llu) runs past the end of the %zu-byte "
                                "file; the file is truncated",
                                path, (int)name_len, name, (unsigned long long)usize, (unsigned long long)data_off,
                                size);
        }
        vr_zip_member *m = &zip->members[i];
        m->name = name;
        m->name_len = name_len;
        m->data = data + data_off;
        m->size = usize;
        m->crc32 = crc;
        zip->sorted[i] = m;
        p += rec_len;
    }
    zip->count = (int)n_entries;
    qsort(zip->sorted, (size_t)zip->count, sizeof *zip->sorted, cmp_sorted);
    for (int i = 1; i < zip->count; i++) {
        const vr_zip_member *a = zip->sorted[i - 1], *b = zip->sorted[i];
        if (cmp_names(a, b->name, b->name_len) == 0) {
            vr_status dup = vr_error_set(err, VR_ERR_FORMAT, "%s: zip member %.*s appears twice", path,
                                         (int)b->name_len, b->name);
            vr_zip_close(zip);
            return dup;
        }
    }
    return VR_OK;
}

void vr_zip_close(vr_zip *zip) {
    if (!zip) return;
    free(zip->members);
    free(zip->sorted);
    memset(zip, 0, sizeof *zip);
}

const vr_zip_member *vr_zip_find(const vr_zip *zip, const char *name, size_t len) {
    int lo = 0, hi = zip->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const vr_zip_member *m = zip->sorted[mid];
        int c = cmp_names(m, name, len);
        if (c == 0) return m;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}
