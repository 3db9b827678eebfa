/* model/checkpoint.c — opens .pth (torch.save zip + pickle) and .safetensors checkpoints as a
 * list of named tensor views into the memory mapping, and writes both formats. Must not copy
 * tensor data on load, must not interpret what the tensors mean (model/config.c does), and the
 * writers must stream tensor data (one fwrite per tensor), never build a whole file in memory. */
#include "model/checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/mapped_file.h"
#include "model/pickle.h"
#include "model/zip_reader.h"

#define VR_MAX_PICKLE_BYTES ((uint64_t)64 << 20)
#define VR_MAX_ST_HEADER ((uint64_t)100 << 20) /* the safetensors reference limit */
#define VR_MAX_TENSORS (1 << 20)

struct vr_checkpoint {
    vr_mapped_file file; /* empty for vr_checkpoint_open_memory */
    char *path;
    vr_checkpoint_entry *entries;
    int count, cap;
    const vr_checkpoint_entry **sorted; /* the entries sorted by name (built once all are read) */
};

/* ---------------------------------------------------------------------------------------------
 * Common helpers */

static vr_status add_entry(vr_checkpoint *ck, const char *name, size_t name_len, vr_error *err) {
    if (memchr(name, 0, name_len))
        return vr_error_set(err, VR_ERR_FORMAT, "%s: a tensor name contains a NUL byte", ck->path);
    if (ck->count >= VR_MAX_TENSORS)
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: more than %d tensors", ck->path, VR_MAX_TENSORS);
    if (ck->count == ck->cap) {
        int nc = ck->cap ? ck->cap * 2 : 64;
        vr_checkpoint_entry *ne = realloc(ck->entries, (size_t)nc * sizeof *ne);
        if (!ne) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", ck->path);
        ck->entries = ne;
        ck->cap = nc;
    }
    vr_checkpoint_entry *e = &ck->entries[ck->count];
    memset(e, 0, sizeof *e);
    e->name = malloc(name_len + 1);
    if (!e->name) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", ck->path);
    memcpy(e->name, name, name_len);
    e->name[name_len] = 0;
    ck->count++;
    return VR_OK;
}

/* numel of shape[0..ndim), or -1 on overflow past 2^62. */
static int64_t checked_numel(const int64_t *shape, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] != 0 && n > ((int64_t)1 << 62) / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

static int cmp_entry_names(const void *a, const void *b) {
    return strcmp((*(const vr_checkpoint_entry *const *)a)->name, (*(const vr_checkpoint_entry *const *)b)->name);
}

/* Builds the name index and refuses duplicate names. */
static vr_status index_names(vr_checkpoint *ck, vr_error *err) {
    ck->sorted = malloc((size_t)(ck->count > 0 ? ck->count : 1) * sizeof *ck->sorted);
    if (!ck->sorted) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", ck->path);
    for (int i = 0; i < ck->count; i++) ck->sorted[i] = &ck->entries[i];
    qsort(ck->sorted, (size_t)ck->count, sizeof *ck->sorted, cmp_entry_names);
    for (int i = 1; i < ck->count; i++) {
        const char *a = ck->sorted[i - 1]->name, *b = ck->sorted[i]->name;
        if (strcmp(a, b) == 0)
            return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s appears twice", ck->path, b);
    }
    return VR_OK;
}

static vr_status check_aligned(const vr_checkpoint *ck, const char *name, const void *p, vr_dtype dt,
                               vr_error *err) {
    size_t a = vr_dtype_size(dt);
    if (((uintptr_t)p) % a != 0)
        return vr_error_set(err, VR_ERR_UNSUPPORTED,
                            "%s: tensor %s: data is not %zu-byte aligned; re-save the checkpoint with a current "
                            "torch.save or safetensors",
                            ck->path, name, a);
    return VR_OK;
}

/* ---------------------------------------------------------------------------------------------
 * .pth: zip + pickle */

static int pk_is_str(const vr_pk_value *v, const char *s) {
    return v && v->kind == VR_PK_STR && v->len == strlen(s) && memcmp(v->s, s, v->len) == 0;
}

static const vr_pk_value *pk_item(const vr_pickle *pk, const vr_pk_value *v, int i) {
    if (!v || i < 0 || i >= v->n) return NULL;
    return vr_pickle_get(pk, v->items[i]);
}

/* An int tuple (size or stride) into out[0..*n). */
static vr_status pk_int_tuple(const vr_checkpoint *ck, const vr_pickle *pk, const vr_pk_value *t, const char *tensor,
                              const char *what, int64_t *out, int *n, vr_error *err) {
    if (!t || t->kind != VR_PK_TUPLE)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: %s is not a tuple", ck->path, tensor, what);
    if (t->n > VR_MAX_DIMS)
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: tensor %s has %d dimensions; at most %d are supported",
                            ck->path, tensor, t->n, VR_MAX_DIMS);
    for (int i = 0; i < t->n; i++) {
        const vr_pk_value *v = pk_item(pk, t, i);
        if (!v || v->kind != VR_PK_INT || v->i < 0)
            return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: %s[%d] is not a non-negative int", ck->path, tensor,
                                what, i);
        out[i] = v->i;
    }
    *n = t->n;
    return VR_OK;
}

static vr_status pth_tensor(vr_checkpoint *ck, const vr_pickle *pk, const vr_zip *zip, const char *root,
                            size_t root_len, const vr_pk_value *v, vr_checkpoint_entry *e, vr_error *err) {
    const char *name = e->name;
    /* nn.Parameter: _rebuild_parameter(tensor, requires_grad, hooks) wraps the tensor. */
    if (v && v->kind == VR_PK_REDUCE) {
        const vr_pk_value *fn = vr_pickle_get(pk, v->a);
        if (fn && fn->kind == VR_PK_GLOBAL && fn->global_kind == VR_PKG_REBUILD_PARAMETER)
            v = pk_item(pk, vr_pickle_get(pk, v->b), 0);
    }
    if (!v || v->kind != VR_PK_REDUCE)
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: entry %s is a %s, not a tensor", ck->path, name,
                            v ? vr_pk_kind_name(v->kind) : "missing value");
    const vr_pk_value *fn = vr_pickle_get(pk, v->a);
    if (!fn || fn->kind != VR_PK_GLOBAL || fn->global_kind != VR_PKG_REBUILD_TENSOR_V2) {
        if (fn && fn->kind == VR_PK_GLOBAL)
            return vr_error_set(err, VR_ERR_UNSUPPORTED,
                                "%s: entry %s is built by %.*s.%.*s; only torch._utils._rebuild_tensor_v2 tensors are "
                                "supported",
                                ck->path, name, (int)fn->len, fn->s, (int)fn->name_len, fn->name);
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: entry %s is not a tensor", ck->path, name);
    }
    const vr_pk_value *args = vr_pickle_get(pk, v->b);
    if (!args || args->kind != VR_PK_TUPLE || args->n < 4)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: _rebuild_tensor_v2 needs 4+ arguments", ck->path,
                            name);
    const vr_pk_value *pid = pk_item(pk, args, 0);
    const vr_pk_value *st = pid && pid->kind == VR_PK_PERSID ? vr_pickle_get(pk, pid->a) : NULL;
    if (!st || st->kind != VR_PK_TUPLE || st->n < 5 || !pk_is_str(pk_item(pk, st, 0), "storage"))
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: storage is not a ('storage', ...) persistent id",
                            ck->path, name);
    const vr_pk_value *cls = pk_item(pk, st, 1), *key = pk_item(pk, st, 2);
    if (!cls || cls->kind != VR_PK_GLOBAL)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: storage type is not a class", ck->path, name);
    vr_dtype dt;
    switch (cls->global_kind) {
    case VR_PKG_STORAGE_BF16: dt = VR_BF16; break;
    case VR_PKG_STORAGE_F16: dt = VR_F16; break;
    case VR_PKG_STORAGE_F32: dt = VR_F32; break;
    case VR_PKG_STORAGE_I64: dt = VR_I64; break;
    case VR_PKG_STORAGE_I32: dt = VR_I32; break;
    case VR_PKG_STORAGE_U8: dt = VR_U8; break;
    default:
        return vr_error_set(err, VR_ERR_UNSUPPORTED,
                            "%s: tensor %s: storage type %.*s.%.*s is not supported (bf16, f16, f32, i64, i32, u8 are)",
                            ck->path, name, (int)cls->len, cls->s, (int)cls->name_len, cls->name);
    }
    if (!key || key->kind != VR_PK_STR || key->len == 0 || key->len > 256)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: bad storage key", ck->path, name);
    const vr_pk_value *off = pk_item(pk, args, 1);
    if (!off || off->kind != VR_PK_INT || off->i < 0)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: storage offset is not a non-negative int", ck->path,
                            name);
    int64_t shape[VR_MAX_DIMS] = {0}, stride[VR_MAX_DIMS] = {0};
    int ndim = 0, nstride = 0;
    vr_status s = pk_int_tuple(ck, pk, pk_item(pk, args, 2), name, "size", shape, &ndim, err);
    if (s != VR_OK) return s;
    s = pk_int_tuple(ck, pk, pk_item(pk, args, 3), name, "stride", stride, &nstride, err);
    if (s != VR_OK) return s;
    if (nstride != ndim)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: %d sizes but %d strides", ck->path, name, ndim,
                            nstride);
    int64_t numel = checked_numel(shape, ndim);
    if (numel < 0) return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: shape too large", ck->path, name);
    /* Row-major contiguous; a size-1 dimension may carry any stride (torch leaves them as-is). */
    if (numel > 0) {
        int64_t expect = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            if (shape[d] != 1 && stride[d] != expect)
                return vr_error_set(err, VR_ERR_UNSUPPORTED,
                                    "%s: tensor %s is not contiguous (dimension %d has stride %lld, expected %lld); "
                                    "save it with .contiguous()",
                                    ck->path, name, d, (long long)stride[d], (long long)expect);
            expect *= shape[d];
        }
    }
    char member[512];
    int ml = snprintf(member, sizeof member, "%.*s/data/%.*s", (int)root_len, root, (int)key->len, key->s);
    if (ml < 0 || (size_t)ml >= sizeof member)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: storage name too long", ck->path, name);
    const vr_zip_member *m = vr_zip_find(zip, member, (size_t)ml);
    if (!m)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: storage %s is missing from the archive", ck->path,
                            name, member);
    size_t es = vr_dtype_size(dt);
    uint64_t have = m->size / es;
    if ((uint64_t)off->i > have || (uint64_t)numel > have - (uint64_t)off->i)
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: tensor %s needs %lld elements from offset %lld but storage %s holds only %llu",
                            ck->path, name, (long long)numel, (long long)off->i, member, (unsigned long long)have);
    e->tensor.dtype = dt;
    e->tensor.device = VR_DEVICE_CPU;
    e->tensor.ndim = ndim;
    memcpy(e->tensor.shape, shape, sizeof shape);
    e->tensor.data = (void *)(m->data + (size_t)off->i * es);
    return check_aligned(ck, name, e->tensor.data, dt, err);
}

static vr_status open_pth(vr_checkpoint *ck, const uint8_t *data, size_t size, vr_error *err) {
    vr_zip zip;
    vr_status st = vr_zip_open(data, size, ck->path, &zip, err);
    if (st != VR_OK) return st;
    const vr_zip_member *pkl = NULL;
    for (int i = 0; i < zip.count && !pkl; i++) {
        const vr_zip_member *m = &zip.members[i];
        if (m->name_len > 9 && memcmp(m->name + m->name_len - 9, "/data.pkl", 9) == 0 &&
            !memchr(m->name, '/', m->name_len - 9))
            pkl = m;
    }
    if (!pkl) {
        vr_zip_close(&zip);
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: no <root>/data.pkl in the archive; it is not a torch.save checkpoint", ck->path);
    }
    const char *root = pkl->name;
    size_t root_len = pkl->name_len - 9;
    char what[600];
    snprintf(what, sizeof what, "%s: %.*s", ck->path, (int)pkl->name_len, pkl->name);
    if (pkl->size > VR_MAX_PICKLE_BYTES) {
        vr_zip_close(&zip);
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s is %llu bytes, over the %llu-byte limit", what,
                            (unsigned long long)pkl->size, (unsigned long long)VR_MAX_PICKLE_BYTES);
    }
    vr_pickle *pk = NULL;
    st = vr_pickle_load(pkl->data, (size_t)pkl->size, what, &pk, err);
    if (st != VR_OK) {
        vr_zip_close(&zip);
        return st;
    }
    const vr_pk_value *dict = vr_pickle_root(pk);
    if (!dict || dict->kind != VR_PK_DICT) {
        st = vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: the pickled object is a %s, not a state dict", ck->path,
                          dict ? vr_pk_kind_name(dict->kind) : "nothing");
        goto done;
    }
    for (int i = 0; i + 1 < dict->n; i += 2) {
        const vr_pk_value *k = vr_pickle_get(pk, dict->items[i]);
        const vr_pk_value *v = vr_pickle_get(pk, dict->items[i + 1]);
        if (!k || k->kind != VR_PK_STR) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: state dict key %d is a %s, not a string", ck->path, i / 2,
                              k ? vr_pk_kind_name(k->kind) : "missing value");
            goto done;
        }
        st = add_entry(ck, k->s, k->len, err);
        if (st != VR_OK) goto done;
        st = pth_tensor(ck, pk, &zip, root, root_len, v, &ck->entries[ck->count - 1], err);
        if (st != VR_OK) goto done;
    }
done:
    vr_pickle_free(pk);
    vr_zip_close(&zip);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * .safetensors */

static int st_dtype(const char *s, vr_dtype *dt) {
    static const struct { const char *name; vr_dtype dt; } map[] = {
        {"F32", VR_F32}, {"F16", VR_F16}, {"BF16", VR_BF16}, {"I64", VR_I64}, {"I32", VR_I32}, {"U8", VR_U8}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(s, map[i].name) == 0) {
            *dt = map[i].dt;
            return 1;
        }
    return 0;
}

static const char *st_dtype_name(vr_dtype dt) {
    switch (dt) {
    case VR_F32: return "F32";
    case VR_F16: return "F16";
    case VR_BF16: return "BF16";
    case VR_I64: return "I64";
    case VR_I32: return "I32";
    case VR_U8: return "U8";
    }
    return NULL;
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const cJSON *j, int64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(int64_t)d) return 0;
    *out = (int64_t)d;
    return 1;
}

static vr_status st_tensor(vr_checkpoint *ck, const cJSON *item, const uint8_t *base, uint64_t data_size,
                           vr_checkpoint_entry *e, vr_error *err) {
    const char *name = e->name;
    if (!cJSON_IsObject(item))
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: header entry is not an object", ck->path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype))
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: missing \"dtype\"", ck->path, name);
    vr_dtype dt;
    if (!st_dtype(dtype->valuestring, &dt))
        return vr_error_set(err, VR_ERR_UNSUPPORTED,
                            "%s: tensor %s: dtype %s is not supported (F32, F16, BF16, I64, I32, U8 are)", ck->path,
                            name, dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: missing \"shape\" array", ck->path, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > VR_MAX_DIMS)
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: tensor %s has %d dimensions; at most %d are supported",
                            ck->path, name, ndim, VR_MAX_DIMS);
    int64_t dims[VR_MAX_DIMS] = {0};
    int d = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, shape) {
        if (!json_uint(x, &dims[d]))
            return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: shape[%d] is not a non-negative integer", ck->path,
                                name, d);
        d++;
    }
    int64_t numel = checked_numel(dims, ndim);
    if (numel < 0) return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: shape too large", ck->path, name);
    int64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(cJSON_GetArrayItem(offs, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &end))
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: \"data_offsets\" is not [begin, end]", ck->path, name);
    if (begin > end || (uint64_t)end > data_size)
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: tensor %s: data_offsets [%lld, %lld] lie outside the %llu-byte data section; the "
                            "file is truncated or corrupt",
                            ck->path, name, (long long)begin, (long long)end, (unsigned long long)data_size);
    /* numel may be up to 2^62: compare in elements first so numel * size cannot wrap to a small span */
    if ((uint64_t)numel > data_size / vr_dtype_size(dt))
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: tensor %s: shape needs %lld elements of %zu bytes, more than the %llu-byte data "
                            "section holds",
                            ck->path, name, (long long)numel, vr_dtype_size(dt), (unsigned long long)data_size);
    uint64_t nbytes = (uint64_t)numel * vr_dtype_size(dt);
    if ((uint64_t)(end - begin) != nbytes)
        return vr_error_set(err, VR_ERR_FORMAT, "%s: tensor %s: data_offsets span %lld bytes but the shape needs %llu",
                            ck->path, name, (long long)(end - begin), (unsigned long long)nbytes);
    e->tensor.dtype = dt;
    e->tensor.device = VR_DEVICE_CPU;
    e->tensor.ndim = ndim;
    memcpy(e->tensor.shape, dims, sizeof dims);
    e->tensor.data = (void *)(base + begin);
    return check_aligned(ck, name, e->tensor.data, dt, err);
}

static vr_status open_safetensors(vr_checkpoint *ck, const uint8_t *data, size_t size, vr_error *err) {
    if (size < 8)
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: %zu bytes is too small for a checkpoint (neither a .pth zip nor a .safetensors file)",
                            ck->path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (hlen > size - 8)
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: not a .pth (zip) file, and as .safetensors its header length %llu exceeds the file "
                            "size %zu; the file is truncated or of another format",
                            ck->path, (unsigned long long)hlen, size);
    if (hlen > VR_MAX_ST_HEADER)
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: safetensors header of %llu bytes exceeds the %llu-byte limit",
                            ck->path, (unsigned long long)hlen, (unsigned long long)VR_MAX_ST_HEADER);
    const char *text = (const char *)data + 8;
    const char *end = NULL;
    cJSON *hdr = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
    if (!hdr) {
        size_t at = end && end >= text && end <= text + hlen ? (size_t)(end - text) : 0;
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: safetensors header is not valid JSON (near byte %zu of the header); the file is "
                            "corrupt or of another format",
                            ck->path, at);
    }
    vr_status st = VR_OK;
    if (!cJSON_IsObject(hdr)) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: safetensors header is not a JSON object", ck->path);
        goto done;
    }
    const uint8_t *base = data + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;
    const cJSON *item;
    cJSON_ArrayForEach(item, hdr) {
        if (!item->string) continue;
        if (strcmp(item->string, "__metadata__") == 0) continue;
        st = add_entry(ck, item->string, strlen(item->string), err);
        if (st != VR_OK) goto done;
        st = st_tensor(ck, item, base, data_size, &ck->entries[ck->count - 1], err);
        if (st != VR_OK) goto done;
    }
done:
    cJSON_Delete(hdr);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Open / query */

static vr_status parse(vr_checkpoint *ck, const uint8_t *data, size_t size, vr_error *err) {
    vr_status st;
    if (size >= 2 && data[0] == 'P' && data[1] == 'K')
        st = open_pth(ck, data, size, err);
    else
        st = open_safetensors(ck, data, size, err);
    if (st == VR_OK) st = index_names(ck, err);
    return st;
}

vr_status vr_checkpoint_open_memory(const void *data, size_t size, const char *name, vr_checkpoint **out,
                                    vr_error *err) {
    *out = NULL;
    vr_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", name ? name : "checkpoint");
    ck->path = strdup(name ? name : "<memory>");
    if (!ck->path) {
        free(ck);
        return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", name ? name : "checkpoint");
    }
    vr_status st = parse(ck, data ? data : "", data ? size : 0, err);
    if (st != VR_OK) {
        vr_checkpoint_free(ck);
        return st;
    }
    *out = ck;
    return VR_OK;
}

vr_status vr_checkpoint_open(const char *path, vr_checkpoint **out, vr_error *err) {
    *out = NULL;
    vr_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
    vr_status st = vr_mapped_file_open(&ck->file, path, err);
    if (st == VR_OK) {
        ck->path = strdup(path);
        if (!ck->path) st = vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
    }
    if (st == VR_OK) st = parse(ck, ck->file.data ? ck->file.data : (const uint8_t *)"", ck->file.size, err);
    if (st != VR_OK) {
        vr_checkpoint_free(ck);
        return st;
    }
    *out = ck;
    return VR_OK;
}

void vr_checkpoint_free(vr_checkpoint *ck) {
    if (!ck) return;
    for (int i = 0; i < ck->count; i++) free(ck->entries[i].name);
    free(ck->entries);
    free(ck->sorted);
    free(ck->path);
    vr_mapped_file_close(&ck->file);
    free(ck);
}

int vr_checkpoint_count(const vr_checkpoint *ck) { return ck ? ck->count : 0; }

const vr_checkpoint_entry *vr_checkpoint_entry_at(const vr_checkpoint *ck, int i) {
    if (!ck || i < 0 || i >= ck->count) return NULL;
    return &ck->entries[i];
}

const vr_tensor *vr_checkpoint_find(const vr_checkpoint *ck, const char *name) {
    if (!ck || !name || !ck->sorted) return NULL;
    int lo = 0, hi = ck->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const vr_checkpoint_entry *e = ck->sorted[mid];
        int c = strcmp(e->name, name);
        if (c == 0) return &e->tensor;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const char *vr_checkpoint_path(const vr_checkpoint *ck) { return ck ? ck->path : NULL; }

/* ---------------------------------------------------------------------------------------------
 * Writers */

/* A growable byte buffer for headers and the pickle (metadata only, never tensor data). */
typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wbuf;

static void wb_put(wbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->n + n) nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void wb_byte(wbuf *b, uint8_t v) { wb_put(b, &v, 1); }
static void wb_le(wbuf *b, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) wb_byte(b, (uint8_t)(v >> (8 * i)));
}
static void wb_str(wbuf *b, const char *s) { wb_put(b, s, strlen(s)); }

static vr_status check_entries(const char *path, const vr_checkpoint_entry *entries, int n, vr_error *err) {
    if (n < 0 || (n > 0 && !entries)) return vr_error_set(err, VR_ERR_INVALID, "%s: no tensors given", path);
    for (int i = 0; i < n; i++) {
        const vr_checkpoint_entry *e = &entries[i];
        if (!e->name || !*e->name)
            return vr_error_set(err, VR_ERR_INVALID, "%s: tensor %d has no name", path, i);
        if (!st_dtype_name(e->tensor.dtype))
            return vr_error_set(err, VR_ERR_INVALID, "%s: tensor %s: unknown dtype", path, e->name);
        if (e->tensor.ndim < 0 || e->tensor.ndim > VR_MAX_DIMS || checked_numel(e->tensor.shape, e->tensor.ndim) < 0)
            return vr_error_set(err, VR_ERR_INVALID, "%s: tensor %s: bad shape", path, e->name);
        if (e->tensor.device != VR_DEVICE_CPU)
            return vr_error_set(err, VR_ERR_INVALID, "%s: tensor %s is not in host memory", path, e->name);
        if (!e->tensor.data && vr_tensor_nbytes(&e->tensor) > 0)
            return vr_error_set(err, VR_ERR_INVALID, "%s: tensor %s has no data", path, e->name);
        for (int j = 0; j < i; j++)
            if (strcmp(entries[j].name, e->name) == 0)
                return vr_error_set(err, VR_ERR_INVALID, "%s: tensor %s is given twice", path, e->name);
    }
    return VR_OK;
}

/* The output goes to "<path>.tmp" and is renamed over path only when complete. */
typedef struct wfile {
    FILE *fp;
    char *tmp;
    const char *path;
    uint64_t off;
    int failed;
} wfile;

static vr_status wf_open(wfile *w, const char *path, vr_error *err) {
    memset(w, 0, sizeof *w);
    w->path = path;
    size_t l = strlen(path);
    w->tmp = malloc(l + 5);
    if (!w->tmp) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
    memcpy(w->tmp, path, l);
    memcpy(w->tmp + l, ".tmp", 5);
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) {
        vr_status st = vr_error_set(err, VR_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL;
        return st;
    }
    return VR_OK;
}

static void wf_write(wfile *w, const void *p, size_t n) {
    if (w->failed || n == 0) return;
    if (fwrite(p, 1, n, w->fp) != n) w->failed = errno ? errno : EIO;
    w->off += n;
}

/* Closes; on success renames into place, else removes the temporary file. */
static vr_status wf_close(wfile *w, vr_status st, vr_error *err) {
    if (w->fp) {
        if (fclose(w->fp) != 0 && !w->failed) w->failed = errno ? errno : EIO;
        w->fp = NULL;
    }
    if (st == VR_OK && w->failed) st = vr_error_set(err, VR_ERR_IO, "%s: write failed: %s", w->tmp, strerror(w->failed));
    if (st == VR_OK && rename(w->tmp, w->path) != 0)
        st = vr_error_set(err, VR_ERR_IO, "%s: cannot rename into place: %s", w->path, strerror(errno));
    if (st != VR_OK) unlink(w->tmp);
    free(w->tmp);
    w->tmp = NULL;
    return st;
}

static void json_escape(wbuf *b, const char *s) {
    wb_byte(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            wb_byte(b, '\\');
            wb_byte(b, c);
        } else if (c < 0x20) {
            char u[8];
            snprintf(u, sizeof u, "\\u%04x", c);
            wb_str(b, u);
        } else {
            wb_byte(b, c);
        }
    }
    wb_byte(b, '"');
}

/* Data is laid out by element size, largest first (as the reference writer does), so every tensor
 * stays aligned without holes between them; the header keeps the given order. */
static const size_t st_esizes[4] = {8, 4, 2, 1};

vr_status vr_safetensors_write(const char *path, const vr_checkpoint_entry *entries, int n, vr_error *err) {
    vr_status st = check_entries(path, entries, n, err);
    if (st != VR_OK) return st;
    uint64_t *offs = malloc((size_t)(n > 0 ? n : 1) * sizeof *offs);
    if (!offs) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
    uint64_t off = 0;
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < n; i++)
            if (vr_dtype_size(entries[i].tensor.dtype) == st_esizes[k]) {
                offs[i] = off;
                off += vr_tensor_nbytes(&entries[i].tensor);
            }
    wbuf h = {0};
    char num[80];
    wb_byte(&h, '{');
    for (int i = 0; i < n; i++) {
        const vr_tensor *t = &entries[i].tensor;
        if (i) wb_byte(&h, ',');
        json_escape(&h, entries[i].name);
        wb_str(&h, ":{\"dtype\":\"");
        wb_str(&h, st_dtype_name(t->dtype));
        wb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            wb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offs[i],
                 (unsigned long long)(offs[i] + vr_tensor_nbytes(t)));
        wb_str(&h, num);
    }
    free(offs);
    wb_byte(&h, '}');
    while (h.n % 8) wb_byte(&h, ' '); /* keeps the data 8-byte aligned */
    if (h.oom) {
        free(h.p);
        return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory for the header", path);
    }
    wfile w;
    st = wf_open(&w, path, err);
    if (st != VR_OK) {
        free(h.p);
        return st;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    wf_write(&w, len, 8);
    wf_write(&w, h.p, h.n);
    free(h.p);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < n; i++)
            if (vr_dtype_size(entries[i].tensor.dtype) == st_esizes[k])
                wf_write(&w, entries[i].tensor.data, vr_tensor_nbytes(&entries[i].tensor));
    return wf_close(&w, VR_OK, err);
}

/* --- .pth writer: a stored zip (torch's layout) holding a protocol-2 pickle --- */

static void pk_int(wbuf *b, int64_t v) {
    if (v >= 0 && v < 256) {
        wb_byte(b, 'K');
        wb_byte(b, (uint8_t)v);
    } else if (v >= 0 && v < 65536) {
        wb_byte(b, 'M');
        wb_le(b, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        wb_byte(b, 'J');
        wb_le(b, (uint64_t)(uint32_t)(int32_t)v, 4);
    } else {
        wb_byte(b, 0x8a); /* LONG1, 8 bytes two's complement */
        wb_byte(b, 8);
        wb_le(b, (uint64_t)v, 8);
    }
}

static void pk_unicode(wbuf *b, const char *s) {
    wb_byte(b, 'X');
    wb_le(b, strlen(s), 4);
    wb_str(b, s);
}

static void pk_global(wbuf *b, const char *mod, const char *name) {
    wb_byte(b, 'c');
    wb_str(b, mod);
    wb_byte(b, '\n');
    wb_str(b, name);
    wb_byte(b, '\n');
}

static void pk_int_tuple_w(wbuf *b, const int64_t *v, int n) {
    if (n == 0) {
        wb_byte(b, ')');
        return;
    }
    if (n > 3) wb_byte(b, '(');
    for (int i = 0; i < n; i++) pk_int(b, v[i]);
    wb_byte(b, n == 1 ? 0x85 : n == 2 ? 0x86 : n == 3 ? 0x87 : 't');
}

static const char *storage_class(vr_dtype dt) {
    switch (dt) {
    case VR_F32: return "FloatStorage";
    case VR_F16: return "HalfStorage";
    case VR_BF16: return "BFloat16Storage";
    case VR_I64: return "LongStorage";
    case VR_I32: return "IntStorage";
    case VR_U8: return "ByteStorage";
    }
    return "FloatStorage";
}

static void build_pth_pickle(wbuf *b, const vr_checkpoint_entry *entries, int n) {
    wb_byte(b, 0x80);
    wb_byte(b, 2);
    pk_global(b, "collections", "OrderedDict");
    wb_byte(b, 'q');
    wb_byte(b, 0); /* memo 0 = OrderedDict */
    wb_byte(b, ')');
    wb_byte(b, 'R');
    if (n > 0) wb_byte(b, '(');
    for (int i = 0; i < n; i++) {
        const vr_tensor *t = &entries[i].tensor;
        char key[32];
        snprintf(key, sizeof key, "%d", i);
        int64_t stride[VR_MAX_DIMS];
        int64_t s = 1;
        for (int d = t->ndim - 1; d >= 0; d--) {
            stride[d] = s;
            s *= t->shape[d];
        }
        pk_unicode(b, entries[i].name);
        pk_global(b, "torch._utils", "_rebuild_tensor_v2");
        wb_byte(b, '(');
        wb_byte(b, '(');
        pk_unicode(b, "storage");
        pk_global(b, "torch", storage_class(t->dtype));
        pk_unicode(b, key);
        pk_unicode(b, "cpu");
        pk_int(b, vr_tensor_numel(t));
        wb_byte(b, 't');
        wb_byte(b, 'Q');
        pk_int(b, 0);
        pk_int_tuple_w(b, t->shape, t->ndim);
        pk_int_tuple_w(b, stride, t->ndim);
        wb_byte(b, 0x89);             /* requires_grad=False */
        wb_byte(b, 'h');
        wb_byte(b, 0);                /* OrderedDict */
        wb_byte(b, ')');
        wb_byte(b, 'R');              /* backward_hooks = OrderedDict() */
        wb_byte(b, 't');
        wb_byte(b, 'R');
    }
    if (n > 0) wb_byte(b, 'u');
    wb_byte(b, '.');
}

typedef struct zip_rec {
    char name[64];
    uint64_t size, local_off;
    uint32_t crc;
} zip_rec;

static uint32_t crc_of(const void *data, uint64_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    const Bytef *p = data;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

/* Writes one stored member: local header (zip64 extra when large, then an "FB" padding extra so
 * the data is 64-byte aligned, as torch does) followed by the data. */
static void zip_member(wfile *w, zip_rec *r, const char *name, const void *data, uint64_t size) {
    snprintf(r->name, sizeof r->name, "%s", name);
    r->size = size;
    r->local_off = w->off;
    r->crc = crc_of(data, size);
    int big = size >= 0xFFFFFFFFu;
    size_t nl = strlen(r->name);
    uint64_t pre = w->off + 30 + nl + (big ? 20 : 0) + 4;
    size_t pad = (size_t)((64 - pre % 64) % 64);
    wbuf h = {0};
    wb_le(&h, 0x04034b50u, 4);
    wb_le(&h, big ? 45 : 20, 2); /* version needed */
    wb_le(&h, 0, 2);             /* flags */
    wb_le(&h, 0, 2);             /* stored */
    wb_le(&h, 0, 2);             /* time */
    wb_le(&h, 0x21, 2);          /* date: 1980-01-01 */
    wb_le(&h, r->crc, 4);
    wb_le(&h, big ? 0xFFFFFFFFu : size, 4);
    wb_le(&h, big ? 0xFFFFFFFFu : size, 4);
    wb_le(&h, nl, 2);
    wb_le(&h, (big ? 20 : 0) + 4 + pad, 2);
    wb_str(&h, r->name);
    if (big) {
        wb_le(&h, 0x0001, 2);
        wb_le(&h, 16, 2);
        wb_le(&h, size, 8);
        wb_le(&h, size, 8);
    }
    wb_str(&h, "FB");
    wb_le(&h, pad, 2);
    for (size_t i = 0; i < pad; i++) wb_byte(&h, 'Z');
    if (h.oom) w->failed = ENOMEM;
    else wf_write(w, h.p, h.n);
    free(h.p);
    wf_write(w, data, (size_t)size);
}

static void zip_finish(wfile *w, const zip_rec *recs, int n) {
    uint64_t cd_off = w->off;
    wbuf h = {0};
    for (int i = 0; i < n; i++) {
        const zip_rec *r = &recs[i];
        int big_size = r->size >= 0xFFFFFFFFu, big_off = r->local_off >= 0xFFFFFFFFu;
        size_t xl = (big_size ? 16 : 0) + (big_off ? 8 : 0);
        wb_le(&h, 0x02014b50u, 4);
        wb_le(&h, 0x031e, 2); /* made by: unix, 3.0 */
        wb_le(&h, xl ? 45 : 20, 2);
        wb_le(&h, 0, 2);
        wb_le(&h, 0, 2);
        wb_le(&h, 0, 2);
        wb_le(&h, 0x21, 2);
        wb_le(&h, r->crc, 4);
        wb_le(&h, big_size ? 0xFFFFFFFFu : r->size, 4);
        wb_le(&h, big_size ? 0xFFFFFFFFu : r->size, 4);
        wb_le(&h, strlen(r->name), 2);
        wb_le(&h, xl ? xl + 4 : 0, 2);
        wb_le(&h, 0, 2); /* comment */
        wb_le(&h, 0, 2); /* disk */
        wb_le(&h, 0, 2); /* internal attributes */
        wb_le(&h, 0644u << 16, 4);
        wb_le(&h, big_off ? 0xFFFFFFFFu : r->local_off, 4);
        wb_str(&h, r->name);
        if (xl) {
            wb_le(&h, 0x0001, 2);
            wb_le(&h, xl, 2);
            if (big_size) {
                wb_le(&h, r->size, 8);
                wb_le(&h, r->size, 8);
            }
            if (big_off) wb_le(&h, r->local_off, 8);
        }
    }
    uint64_t cd_size = h.n;
    uint64_t eocd64_off = cd_off + cd_size;
    /* zip64 end of central directory + locator (torch always writes them), then the EOCD. */
    wb_le(&h, 0x06064b50u, 4);
    wb_le(&h, 44, 8);
    wb_le(&h, 0x031e, 2);
    wb_le(&h, 45, 2);
    wb_le(&h, 0, 4);
    wb_le(&h, 0, 4);
    wb_le(&h, (uint64_t)n, 8);
    wb_le(&h, (uint64_t)n, 8);
    wb_le(&h, cd_size, 8);
    wb_le(&h, cd_off, 8);
    wb_le(&h, 0x07064b50u, 4);
    wb_le(&h, 0, 4);
    wb_le(&h, eocd64_off, 8);
    wb_le(&h, 1, 4);
    wb_le(&h, 0x06054b50u, 4);
    wb_le(&h, 0, 2);
    wb_le(&h, 0, 2);
    wb_le(&h, n >= 0xFFFF ? 0xFFFFu : (uint64_t)n, 2);
    wb_le(&h, n >= 0xFFFF ? 0xFFFFu : (uint64_t)n, 2);
    wb_le(&h, cd_size >= 0xFFFFFFFFu ? 0xFFFFFFFFu : cd_size, 4);
    wb_le(&h, cd_off >= 0xFFFFFFFFu ? 0xFFFFFFFFu : cd_off, 4);
    wb_le(&h, 0, 2);
    if (h.oom) w->failed = ENOMEM;
    else wf_write(w, h.p, h.n);
    free(h.p);
}

vr_status vr_pth_write(const char *path, const vr_checkpoint_entry *entries, int n, vr_error *err) {
    vr_status st = check_entries(path, entries, n, err);
    if (st != VR_OK) return st;
    wbuf pk = {0};
    build_pth_pickle(&pk, entries, n);
    zip_rec *recs = calloc((size_t)n + 3, sizeof *recs);
    if (pk.oom || !recs) {
        free(pk.p);
        free(recs);
        return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
    }
    wfile w;
    st = wf_open(&w, path, err);
    if (st != VR_OK) {
        free(pk.p);
        free(recs);
        return st;
    }
    int r = 0;
    zip_member(&w, &recs[r++], "archive/data.pkl", pk.p, pk.n);
    free(pk.p);
    zip_member(&w, &recs[r++], "archive/byteorder", "little", 6);
    for (int i = 0; i < n && !w.failed; i++) {
        char name[64];
        snprintf(name, sizeof name, "archive/data/%d", i);
        zip_member(&w, &recs[r++], name, entries[i].tensor.data, vr_tensor_nbytes(&entries[i].tensor));
    }
    zip_member(&w, &recs[r++], "archive/version", "3\n", 2);
    if (!w.failed) zip_finish(&w, recs, r);
    free(recs);
    return wf_close(&w, VR_OK, err);
}
