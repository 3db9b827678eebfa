/* model/pickle.c — a data-only pickle interpreter for torch.save state dicts (protocol 2; the
 * protocol 4 framing, MEMOIZE and STACK_GLOBAL are tolerated). Values live in one growing array
 * and refer to each other by id; nothing is ever imported or called. Must not recurse, crash or
 * grow without bound: every count (values, stack, marks, memo) is capped by the input size and
 * by fixed limits. */
#include "model/pickle.h"

#include <stdlib.h>
#include <string.h>

#define PK_MAX_VALUES (1 << 22) /* about 20 values per tensor: room for 200k tensors */
#define PK_MAX_MEMO (1 << 22)

struct vr_pickle {
    vr_pk_value *values;
    int32_t n_values, cap_values;
    int32_t root;
};

typedef struct pk_vm {
    vr_pickle *pk;
    const uint8_t *data;
    size_t size, pos;
    const char *what;
    vr_error *err;
    int32_t *stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t n_marks, marks_cap;
    int32_t *memo;
    size_t memo_cap;  /* allocated slots */
    size_t memo_next; /* MEMOIZE index */
} pk_vm;

const char *vr_pk_kind_name(vr_pk_kind k) {
    switch (k) {
    case VR_PK_NONE: return "None";
    case VR_PK_BOOL: return "bool";
    case VR_PK_INT: return "int";
    case VR_PK_FLOAT: return "float";
    case VR_PK_STR: return "str";
    case VR_PK_TUPLE: return "tuple";
    case VR_PK_LIST: return "list";
    case VR_PK_DICT: return "dict";
    case VR_PK_GLOBAL: return "global";
    case VR_PK_REDUCE: return "object";
    case VR_PK_PERSID: return "persistent id";
    }
    return "?";
}

static vr_status fmt_err(pk_vm *vm, size_t at, const char *what) {
    return vr_error_set(vm->err, VR_ERR_FORMAT, "%s: corrupt pickle at offset %zu: %s", vm->what, at, what);
}

static vr_status grow(void **p, size_t *cap, size_t need, size_t elem, size_t limit) {
    if (need <= *cap) return VR_OK;
    if (need > limit) return VR_ERR_NOMEM;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    if (nc > limit) nc = limit;
    void *np = realloc(*p, nc * elem);
    if (!np) return VR_ERR_NOMEM;
    *p = np;
    *cap = nc;
    return VR_OK;
}

static vr_status nomem(pk_vm *vm, const char *what) {
    return vr_error_set(vm->err, VR_ERR_NOMEM, "%s: pickle too large or out of memory (%s)", vm->what, what);
}

/* Appends a new value; *id receives its index. */
static vr_status new_value(pk_vm *vm, vr_pk_kind kind, int32_t *id) {
    vr_pickle *pk = vm->pk;
    if (pk->n_values >= PK_MAX_VALUES) return nomem(vm, "too many values");
    if (pk->n_values == pk->cap_values) {
        size_t cap = (size_t)pk->cap_values;
        if (grow((void **)&pk->values, &cap, (size_t)pk->n_values + 1, sizeof *pk->values, PK_MAX_VALUES) != VR_OK)
            return nomem(vm, "values");
        pk->cap_values = (int32_t)cap;
    }
    vr_pk_value *v = &pk->values[pk->n_values];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->a = v->b = -1;
    *id = pk->n_values++;
    return VR_OK;
}

static vr_status push(pk_vm *vm, int32_t id) {
    /* Every push consumes at least one opcode byte, so the stack never exceeds the input size. */
    if (grow((void **)&vm->stack, &vm->stack_cap, vm->sp + 1, sizeof *vm->stack, vm->size + 16) != VR_OK)
        return nomem(vm, "stack");
    vm->stack[vm->sp++] = id;
    return VR_OK;
}

static vr_status push_new(pk_vm *vm, vr_pk_kind kind, vr_pk_value **out) {
    int32_t id = -1;
    vr_status st = new_value(vm, kind, &id);
    if (st != VR_OK) return st;
    st = push(vm, id);
    if (st != VR_OK) return st;
    if (out) *out = &vm->pk->values[id];
    return VR_OK;
}

static vr_status push_int(pk_vm *vm, int64_t i) {
    vr_pk_value *v;
    vr_status st = push_new(vm, VR_PK_INT, &v);
    if (st == VR_OK) v->i = i;
    return st;
}

static vr_status push_str(pk_vm *vm, const uint8_t *s, size_t len) {
    vr_pk_value *v;
    vr_status st = push_new(vm, VR_PK_STR, &v);
    if (st == VR_OK) {
        v->s = (const char *)s;
        v->len = len;
    }
    return st;
}

/* Appends ids[0..n) to the items of value id. */
static vr_status add_items(pk_vm *vm, int32_t id, const int32_t *ids, size_t n) {
    vr_pk_value *v = &vm->pk->values[id];
    size_t cap = (size_t)v->cap;
    if (grow((void **)&v->items, &cap, (size_t)v->n + n, sizeof *v->items, vm->size + 16) != VR_OK)
        return nomem(vm, "container items");
    v->cap = (int32_t)cap;
    if (n) memcpy(v->items + v->n, ids, n * sizeof *ids);
    v->n += (int32_t)n;
    return VR_OK;
}

/* Pops the items above the topmost mark and the mark; *first is the index of the first item. */
static vr_status pop_mark(pk_vm *vm, size_t at, size_t *first) {
    if (vm->n_marks == 0) return fmt_err(vm, at, "no MARK for this opcode");
    *first = vm->marks[--vm->n_marks];
    if (*first > vm->sp) return fmt_err(vm, at, "MARK above the stack top");
    return VR_OK;
}

static int need(pk_vm *vm, size_t n) { return n <= vm->size - vm->pos; }

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static vr_pk_global classify_global(const char *mod, size_t ml, const char *name, size_t nl) {
#define IS(str, s, l) ((l) == sizeof(str) - 1 && memcmp((s), (str), (l)) == 0)
    if (IS("collections", mod, ml) && IS("OrderedDict", name, nl)) return VR_PKG_ORDERED_DICT;
    if (IS("torch._utils", mod, ml)) {
        if (IS("_rebuild_tensor_v2", name, nl)) return VR_PKG_REBUILD_TENSOR_V2;
        if (IS("_rebuild_parameter", name, nl)) return VR_PKG_REBUILD_PARAMETER;
    }
    if (IS("torch", mod, ml)) {
        if (IS("BFloat16Storage", name, nl)) return VR_PKG_STORAGE_BF16;
        if (IS("HalfStorage", name, nl)) return VR_PKG_STORAGE_F16;
        if (IS("FloatStorage", name, nl)) return VR_PKG_STORAGE_F32;
        if (IS("LongStorage", name, nl)) return VR_PKG_STORAGE_I64;
        if (IS("IntStorage", name, nl)) return VR_PKG_STORAGE_I32;
        if (IS("ByteStorage", name, nl)) return VR_PKG_STORAGE_U8;
    }
#undef IS
    return VR_PKG_OTHER;
}

static vr_status push_global(pk_vm *vm, const char *mod, size_t ml, const char *name, size_t nl) {
    vr_pk_value *v;
    vr_status st = push_new(vm, VR_PK_GLOBAL, &v);
    if (st != VR_OK) return st;
    v->s = mod;
    v->len = ml;
    v->name = name;
    v->name_len = nl;
    v->global_kind = classify_global(mod, ml, name, nl);
    return VR_OK;
}

static vr_status memo_put(pk_vm *vm, size_t at, uint64_t idx) {
    if (vm->sp == 0) return fmt_err(vm, at, "memo store with an empty stack");
    if (idx >= PK_MAX_MEMO || idx > vm->size + 256)
        return vr_error_set(vm->err, VR_ERR_UNSUPPORTED, "%s: pickle memo index %llu at offset %zu is too large",
                            vm->what, (unsigned long long)idx, at);
    size_t old = vm->memo_cap;
    if (grow((void **)&vm->memo, &vm->memo_cap, (size_t)idx + 1, sizeof *vm->memo, PK_MAX_MEMO) != VR_OK)
        return nomem(vm, "memo");
    for (size_t i = old; i < vm->memo_cap; i++) vm->memo[i] = -1;
    vm->memo[idx] = vm->stack[vm->sp - 1];
    return VR_OK;
}

static vr_status memo_get(pk_vm *vm, size_t at, uint64_t idx) {
    if (idx >= vm->memo_cap || vm->memo[idx] < 0)
        return vr_error_set(vm->err, VR_ERR_FORMAT, "%s: corrupt pickle at offset %zu: memo entry %llu is unset",
                            vm->what, at, (unsigned long long)idx);
    return push(vm, vm->memo[idx]);
}

static vr_status op_tuple(pk_vm *vm, size_t first) {
    int32_t id = -1;
    vr_status st = new_value(vm, VR_PK_TUPLE, &id);
    if (st != VR_OK) return st;
    st = add_items(vm, id, vm->stack + first, vm->sp - first);
    if (st != VR_OK) return st;
    vm->sp = first;
    return push(vm, id);
}

static vr_status run(pk_vm *vm) {
    vr_status st = VR_OK;
    while (st == VR_OK) {
        if (vm->pos >= vm->size)
            return vr_error_set(vm->err, VR_ERR_FORMAT, "%s: pickle ends at offset %zu without STOP; it is truncated",
                                vm->what, vm->pos);
        size_t at = vm->pos;
        uint8_t op = vm->data[vm->pos++];
        const uint8_t *arg = vm->data + vm->pos;
        switch (op) {
        case 0x80: /* PROTO */
            if (!need(vm, 1)) goto truncated;
            if (arg[0] > 5)
                return vr_error_set(vm->err, VR_ERR_UNSUPPORTED, "%s: pickle protocol %u is not supported", vm->what,
                                    arg[0]);
            vm->pos += 1;
            break;
        case 0x95: /* FRAME: only a size hint; its content is ordinary opcodes */
            if (!need(vm, 8)) goto truncated;
            vm->pos += 8;
            break;
        case 'c': { /* GLOBAL "module\nname\n" */
            const uint8_t *end = vm->data + vm->size;
            const uint8_t *nl1 = memchr(arg, '\n', (size_t)(end - arg));
            if (!nl1) goto truncated;
            const uint8_t *nm = nl1 + 1;
            const uint8_t *nl2 = memchr(nm, '\n', (size_t)(end - nm));
            if (!nl2) goto truncated;
            st = push_global(vm, (const char *)arg, (size_t)(nl1 - arg), (const char *)nm, (size_t)(nl2 - nm));
            vm->pos = (size_t)(nl2 + 1 - vm->data);
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            if (vm->sp < 2) return fmt_err(vm, at, "STACK_GLOBAL needs two values");
            const vr_pk_value *mod = &vm->pk->values[vm->stack[vm->sp - 2]];
            const vr_pk_value *name = &vm->pk->values[vm->stack[vm->sp - 1]];
            if (mod->kind != VR_PK_STR || name->kind != VR_PK_STR)
                return fmt_err(vm, at, "STACK_GLOBAL operands are not strings");
            const char *ms = mod->s, *ns = name->s;
            size_t ml = mod->len, nl = name->len;
            vm->sp -= 2;
            st = push_global(vm, ms, ml, ns, nl);
            break;
        }
        case 'q': /* BINPUT */
            if (!need(vm, 1)) goto truncated;
            vm->pos += 1;
            st = memo_put(vm, at, arg[0]);
            break;
        case 'r': /* LONG_BINPUT */
            if (!need(vm, 4)) goto truncated;
            vm->pos += 4;
            st = memo_put(vm, at, le32(arg));
            break;
        case 0x94: /* MEMOIZE */
            st = memo_put(vm, at, vm->memo_next++);
            break;
        case 'h': /* BINGET */
            if (!need(vm, 1)) goto truncated;
            vm->pos += 1;
            st = memo_get(vm, at, arg[0]);
            break;
        case 'j': /* LONG_BINGET */
            if (!need(vm, 4)) goto truncated;
            vm->pos += 4;
            st = memo_get(vm, at, le32(arg));
            break;
        case '(': /* MARK */
            if (grow((void **)&vm->marks, &vm->marks_cap, vm->n_marks + 1, sizeof *vm->marks, vm->size + 16) != VR_OK)
                return nomem(vm, "marks");
            vm->marks[vm->n_marks++] = vm->sp;
            break;
        case '0': /* POP */
            if (vm->sp == 0) return fmt_err(vm, at, "POP on an empty stack");
            vm->sp--;
            break;
        case '1': { /* POP_MARK */
            size_t first = 0;
            st = pop_mark(vm, at, &first);
            if (st == VR_OK) vm->sp = first;
            break;
        }
        case '2': /* DUP */
            if (vm->sp == 0) return fmt_err(vm, at, "DUP on an empty stack");
            st = push(vm, vm->stack[vm->sp - 1]);
            break;
        case ')': /* EMPTY_TUPLE */
            st = push_new(vm, VR_PK_TUPLE, NULL);
            break;
        case 't': { /* TUPLE */
            size_t first = 0;
            st = pop_mark(vm, at, &first);
            if (st == VR_OK) st = op_tuple(vm, first);
            break;
        }
        case 0x85: /* TUPLE1 */
        case 0x86: /* TUPLE2 */
        case 0x87: { /* TUPLE3 */
            size_t k = (size_t)(op - 0x84);
            if (vm->sp < k) return fmt_err(vm, at, "TUPLEn with too few values");
            st = op_tuple(vm, vm->sp - k);
            break;
        }
        case '}': /* EMPTY_DICT */
            st = push_new(vm, VR_PK_DICT, NULL);
            break;
        case ']': /* EMPTY_LIST */
            st = push_new(vm, VR_PK_LIST, NULL);
            break;
        case 's': { /* SETITEM */
            if (vm->sp < 3) return fmt_err(vm, at, "SETITEM needs a dict, a key and a value");
            int32_t d = vm->stack[vm->sp - 3];
            if (vm->pk->values[d].kind != VR_PK_DICT) return fmt_err(vm, at, "SETITEM on a non-dict");
            st = add_items(vm, d, vm->stack + vm->sp - 2, 2);
            vm->sp -= 2;
            break;
        }
        case 'u': { /* SETITEMS */
            size_t first = 0;
            st = pop_mark(vm, at, &first);
            if (st != VR_OK) break;
            if (first == 0 || (vm->sp - first) % 2 != 0) return fmt_err(vm, at, "SETITEMS with an odd item count");
            int32_t d = vm->stack[first - 1];
            if (vm->pk->values[d].kind != VR_PK_DICT) return fmt_err(vm, at, "SETITEMS on a non-dict");
            st = add_items(vm, d, vm->stack + first, vm->sp - first);
            vm->sp = first;
            break;
        }
        case 'a': { /* APPEND */
            if (vm->sp < 2) return fmt_err(vm, at, "APPEND needs a list and a value");
            int32_t l = vm->stack[vm->sp - 2];
            if (vm->pk->values[l].kind != VR_PK_LIST) return fmt_err(vm, at, "APPEND on a non-list");
            st = add_items(vm, l, vm->stack + vm->sp - 1, 1);
            vm->sp -= 1;
            break;
        }
        case 'e': { /* APPENDS */
            size_t first = 0;
            st = pop_mark(vm, at, &first);
            if (st != VR_OK) break;
            if (first == 0) return fmt_err(vm, at, "APPENDS without a list");
            int32_t l = vm->stack[first - 1];
            if (vm->pk->values[l].kind != VR_PK_LIST) return fmt_err(vm, at, "APPENDS on a non-list");
            st = add_items(vm, l, vm->stack + first, vm->sp - first);
            vm->sp = first;
            break;
        }
        case 'X': /* BINUNICODE */
        case 'T': { /* BINSTRING */
            if (!need(vm, 4)) goto truncated;
            uint32_t len = le32(arg);
            if (op == 'T' && len > 0x7fffffffu) return fmt_err(vm, at, "negative BINSTRING length");
            vm->pos += 4;
            if (!need(vm, len)) goto truncated;
            st = push_str(vm, arg + 4, len);
            vm->pos += len;
            break;
        }
        case 0x8c: /* SHORT_BINUNICODE */
        case 'U': { /* SHORT_BINSTRING */
            if (!need(vm, 1)) goto truncated;
            size_t len = arg[0];
            vm->pos += 1;
            if (!need(vm, len)) goto truncated;
            st = push_str(vm, arg + 1, len);
            vm->pos += len;
            break;
        }
        case 0x8d: { /* BINUNICODE8 */
            if (!need(vm, 8)) goto truncated;
            uint64_t len = (uint64_t)le32(arg) | ((uint64_t)le32(arg + 4) << 32);
            vm->pos += 8;
            if (len > vm->size || !need(vm, (size_t)len)) goto truncated;
            st = push_str(vm, arg + 8, (size_t)len);
            vm->pos += (size_t)len;
            break;
        }
        case 'J': /* BININT */
            if (!need(vm, 4)) goto truncated;
            vm->pos += 4;
            st = push_int(vm, (int64_t)(int32_t)le32(arg));
            break;
        case 'K': /* BININT1 */
            if (!need(vm, 1)) goto truncated;
            vm->pos += 1;
            st = push_int(vm, arg[0]);
            break;
        case 'M': /* BININT2 */
            if (!need(vm, 2)) goto truncated;
            vm->pos += 2;
            st = push_int(vm, (int64_t)(arg[0] | (arg[1] << 8)));
            break;
        case 0x8a: { /* LONG1: n little-endian two's-complement bytes */
            if (!need(vm, 1)) goto truncated;
            size_t n = arg[0];
            vm->pos += 1;
            if (!need(vm, n)) goto truncated;
            if (n > 8)
                return vr_error_set(vm->err, VR_ERR_UNSUPPORTED,
                                    "%s: pickle integer of %zu bytes at offset %zu is too large", vm->what, n, at);
            uint64_t u = 0;
            for (size_t k = 0; k < n; k++) u |= (uint64_t)arg[1 + k] << (8 * k);
            if (n > 0 && n < 8 && (arg[n] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
            vm->pos += n;
            int64_t v;
            memcpy(&v, &u, sizeof v);
            st = push_int(vm, v);
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            if (!need(vm, 8)) goto truncated;
            uint64_t u = 0;
            for (int k = 0; k < 8; k++) u = (u << 8) | arg[k];
            vm->pos += 8;
            vr_pk_value *v;
            st = push_new(vm, VR_PK_FLOAT, &v);
            if (st == VR_OK) memcpy(&v->f, &u, sizeof v->f);
            break;
        }
        case 0x88: /* NEWTRUE */
        case 0x89: { /* NEWFALSE */
            vr_pk_value *v;
            st = push_new(vm, VR_PK_BOOL, &v);
            if (st == VR_OK) v->i = op == 0x88;
            break;
        }
        case 'N': /* NONE */
            st = push_new(vm, VR_PK_NONE, NULL);
            break;
        case 'Q': { /* BINPERSID */
            if (vm->sp < 1) return fmt_err(vm, at, "BINPERSID on an empty stack");
            int32_t pid = vm->stack[--vm->sp];
            vr_pk_value *v;
            st = push_new(vm, VR_PK_PERSID, &v);
            if (st == VR_OK) v->a = pid;
            break;
        }
        case 'R': { /* REDUCE: recorded, never called (OrderedDict() becomes an empty dict) */
            if (vm->sp < 2) return fmt_err(vm, at, "REDUCE needs a callable and arguments");
            int32_t fn = vm->stack[vm->sp - 2], args = vm->stack[vm->sp - 1];
            vm->sp -= 2;
            const vr_pk_value *f = &vm->pk->values[fn], *a = &vm->pk->values[args];
            if (a->kind != VR_PK_TUPLE) return fmt_err(vm, at, "REDUCE arguments are not a tuple");
            if (f->kind == VR_PK_GLOBAL && f->global_kind == VR_PKG_ORDERED_DICT && a->n == 0) {
                st = push_new(vm, VR_PK_DICT, NULL);
            } else {
                vr_pk_value *v;
                st = push_new(vm, VR_PK_REDUCE, &v);
                if (st == VR_OK) v->a = fn, v->b = args;
            }
            break;
        }
        case 'b': /* BUILD: sets object state (e.g. the state dict's _metadata); vrwkv ignores it */
            if (vm->sp < 2) return fmt_err(vm, at, "BUILD needs an object and a state");
            vm->sp -= 1;
            break;
        case '.': /* STOP */
            if (vm->sp < 1) return fmt_err(vm, at, "STOP with an empty stack");
            vm->pk->root = vm->stack[vm->sp - 1];
            return VR_OK;
        default:
            return vr_error_set(vm->err, VR_ERR_UNSUPPORTED,
                                "%s: unsupported pickle opcode 0x%02x ('%c') at offset %zu; only the subset "
                                "torch.save writes for a state dict is supported",
                                vm->what, op, (op >= 0x20 && op < 0x7f) ? op : '?', at);
        }
    }
    return st;
truncated:
    return vr_error_set(vm->err, VR_ERR_FORMAT, "%s: pickle truncated inside the opcode at offset %zu", vm->what,
                        vm->pos - 1);
}

vr_status vr_pickle_load(const uint8_t *data, size_t size, const char *what, vr_pickle **out, vr_error *err) {
    *out = NULL;
    if (size > ((size_t)1 << 30))
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "%s: pickle of %zu bytes is larger than the 1 GiB limit", what,
                            size);
    pk_vm vm;
    memset(&vm, 0, sizeof vm);
    vm.pk = calloc(1, sizeof *vm.pk);
    if (!vm.pk) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", what);
    vm.pk->root = -1;
    vm.data = data;
    vm.size = size;
    vm.what = what;
    vm.err = err;
    vr_status st = run(&vm);
    free(vm.stack);
    free(vm.marks);
    free(vm.memo);
    if (st != VR_OK) {
        vr_pickle_free(vm.pk);
        return st;
    }
    *out = vm.pk;
    return VR_OK;
}

void vr_pickle_free(vr_pickle *pk) {
    if (!pk) return;
    for (int32_t i = 0; i < pk->n_values; i++) free(pk->values[i].items);
    free(pk->values);
    free(pk);
}

const vr_pk_value *vr_pickle_root(const vr_pickle *pk) { return vr_pickle_get(pk, pk->root); }

const vr_pk_value *vr_pickle_get(const vr_pickle *pk, int32_t id) {
    if (!pk || id < 0 || id >= pk->n_values) return NULL;
    return &pk->values[id];
}
