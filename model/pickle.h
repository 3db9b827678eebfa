/* model/pickle.h — a data-only interpreter for the pickle subset that torch.save emits for a
 * state dict (protocol 2, protocol 4 tolerated). It builds a small graph of values (ints,
 * strings, tuples, dicts, named globals, "reduce" and persistent-id records) and never imports,
 * calls or executes anything: a GLOBAL is only a name. Must not interpret tensors (that is
 * model/checkpoint.c) and must not crash, recurse or allocate without bound on hostile input. */
#ifndef VR_PICKLE_H
#define VR_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef enum {
    VR_PK_NONE = 0,
    VR_PK_BOOL,
    VR_PK_INT,     /* i */
    VR_PK_FLOAT,   /* f */
    VR_PK_STR,     /* s, len (unicode or byte string; not NUL-terminated, points into the pickle) */
    VR_PK_TUPLE,   /* items[0..n) */
    VR_PK_LIST,    /* items[0..n) */
    VR_PK_DICT,    /* items: key0, value0, key1, value1, ... (n = 2 * pairs), insertion order */
    VR_PK_GLOBAL,  /* global_kind, module/name */
    VR_PK_REDUCE,  /* a = callable (a GLOBAL), b = args; the call is never made */
    VR_PK_PERSID   /* a = the persistent id (for torch: the storage tuple) */
} vr_pk_kind;

/* The globals vrwkv knows by name. Anything else is VR_PKG_OTHER: allowed as a name only. */
typedef enum {
    VR_PKG_OTHER = 0,
    VR_PKG_ORDERED_DICT,      /* collections.OrderedDict: REDUCE with () gives an empty dict */
    VR_PKG_REBUILD_TENSOR_V2, /* torch._utils._rebuild_tensor_v2 */
    VR_PKG_REBUILD_PARAMETER, /* torch._utils._rebuild_parameter (nn.Parameter wrapping a tensor) */
    VR_PKG_STORAGE_BF16,      /* torch.BFloat16Storage */
    VR_PKG_STORAGE_F16,       /* torch.HalfStorage */
    VR_PKG_STORAGE_F32,       /* torch.FloatStorage */
    VR_PKG_STORAGE_I64,       /* torch.LongStorage */
    VR_PKG_STORAGE_I32,       /* torch.IntStorage */
    VR_PKG_STORAGE_U8         /* torch.ByteStorage */
} vr_pk_global;

typedef struct vr_pk_value {
    vr_pk_kind kind;
    vr_pk_global global_kind;
    int64_t i;
    double f;
    const char *s; /* STR: text; GLOBAL: module */
    size_t len;
    const char *name; /* GLOBAL: attribute name */
    size_t name_len;
    int32_t a, b;  /* REDUCE / PERSID operands (value ids) */
    int32_t *items;
    int32_t n, cap;
} vr_pk_value;

typedef struct vr_pickle vr_pickle;

/* Runs the pickle program in data[0..size) (which must outlive the result: strings point into
 * it). what names it in errors ("model.pth: archive/data.pkl"). An opcode outside the subset is
 * VR_ERR_UNSUPPORTED naming the byte and its offset; malformed input is VR_ERR_FORMAT. */
vr_status vr_pickle_load(const uint8_t *data, size_t size, const char *what, vr_pickle **out, vr_error *err);
void vr_pickle_free(vr_pickle *pk);

/* The value STOP returned. */
const vr_pk_value *vr_pickle_root(const vr_pickle *pk);
/* A value by id (the items/a/b fields), or NULL for an out-of-range id. */
const vr_pk_value *vr_pickle_get(const vr_pickle *pk, int32_t id);

/* Convenience for readers of the graph. */
const char *vr_pk_kind_name(vr_pk_kind k);

#endif
