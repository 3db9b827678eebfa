/* model/tokenizer.c — the RWKV World tokenizer: parses rwkv_vocab_v20230424.txt (one
 * `<id> <python str or bytes literal> <byte length>` per line) into a byte pool, builds a byte
 * trie (dense tables for the first two bytes, sorted child arrays below) and encodes by greedy
 * longest match exactly as upstream TRIE_TOKENIZER does; decodes ids back to raw bytes.
 * Must not know about prompts, images or the model; must not print or exit. */
#include "model/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mapped_file.h"

#define VR_TOKENIZER_MAX_ID ((1 << 20) - 1) /* far above any RWKV vocab; bounds the id table */
#define VR_TOKENIZER_MAX_FILE ((size_t)256 << 20)
#define VR_TOKENIZER_MAX_TOKEN 4096 /* bytes; the World vocab's longest is 128 */

/* One trie node. The children of a node are contiguous in the node arrays, ordered by label. */
struct vr_tokenizer {
    int n_vocab;          /* largest id + 1 */
    uint32_t *tok_off;    /* [n_vocab] offset of the token's bytes in pool */
    uint32_t *tok_len;    /* [n_vocab] 0 = no entry */
    uint8_t *pool;        /* all token bytes */
    size_t pool_size;
    /* trie */
    int n_nodes;
    int32_t *node_id;     /* [n_nodes] token id ending here, -1 if none */
    uint32_t *node_first; /* [n_nodes] index of the first child */
    uint16_t *node_nchild;/* [n_nodes] number of children (<= 256) */
    uint8_t *node_label;  /* [n_nodes] the byte that leads to this node */
    /* fast paths */
    int32_t root_id[256];     /* id of each single byte */
    int32_t *level2;          /* [65536] node index for the 2-byte prefix (b0 << 8 | b1), -1 if none */
};

/* ---------------------------------------------------------------- UTF-8 helpers */

int vr_utf8_valid(const char *str, size_t len) {
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;      /* no overlongs */
            else if (c == 0xED) hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;      /* no overlongs */
            else if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
        } else {
            return 0;
        }
        if (len - i <= need) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        i += need + 1;
    }
    return 1;
}

size_t vr_utf8_complete_prefix(const char *str, size_t len) {
    const uint8_t *s = (const uint8_t *)str;
    /* Find the last non-continuation byte within the last 4 bytes. */
    size_t back = len < 4 ? len : 4;
    for (size_t k = 1; k <= back; k++) {
        size_t p = len - k;
        uint8_t c = s[p];
        if ((c & 0xC0) == 0x80) continue;
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            else if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            else if (c == 0xF4) hi = 0x8F;
        } else {
            return len; /* ASCII or a byte that can never start a sequence */
        }
        size_t have = k - 1; /* continuation bytes present after the lead */
        if (have >= need) return len; /* complete (or invalid: never becomes valid by waiting) */
        if (have >= 1 && (s[p + 1] < lo || s[p + 1] > hi)) return len; /* already invalid */
        return p; /* a valid start of a sequence still waiting for bytes: hold it back */
    }
    return len;
}

/* ---------------------------------------------------------------- vocab parsing */

/* Appends the UTF-8 encoding of code point cp to buf. Returns bytes written (0 if invalid). */
static int put_utf8(uint8_t *buf, uint32_t cp) {
    if (cp < 0x80) {
        buf[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (uint8_t)(0xC0 | (cp >> 6));
        buf[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    if (cp < 0x10000) {
        buf[0] = (uint8_t)(0xE0 | (cp >> 12));
        buf[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp <= 0x10FFFF) {
        buf[0] = (uint8_t)(0xF0 | (cp >> 18));
        buf[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        buf[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        buf[3] = (uint8_t)(0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads exactly n hex digits at s[*i]; returns -1 when they are not there. */
static long read_hex(const uint8_t *s, size_t end, size_t *i, int n) {
    if (end - *i < (size_t)n) return -1;
    long v = 0;
    for (int k = 0; k < n; k++) {
        int h = hexval(s[*i + (size_t)k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    *i += (size_t)n;
    return v;
}

/* Parses a Python str or bytes literal in line[*i, end). Appends the token bytes to out (which
 * has room for at least end - *i bytes). On success *i points just past the closing quote.
 * On failure returns a static message. */
static const char *parse_literal(const uint8_t *s, size_t end, size_t *i, uint8_t *out, size_t *out_len) {
    size_t p = *i, n = 0;
    int is_bytes = 0;
    if (p < end && (s[p] == 'b' || s[p] == 'B')) {
        is_bytes = 1;
        p++;
    }
    if (p >= end || (s[p] != '\'' && s[p] != '"')) return "expected a quoted Python literal";
    uint8_t quote = s[p++];
    for (;;) {
        if (p >= end) return "unterminated literal";
        uint8_t c = s[p];
        if (c == quote) {
            p++;
            break;
        }
        if (c != '\\') {
            if (is_bytes && c >= 0x80) return "non-ASCII character in a bytes literal";
            out[n++] = c;
            p++;
            continue;
        }
        p++;
        if (p >= end) return "backslash at the end of the line";
        uint8_t e = s[p++];
        long cp = -1;
        switch (e) {
        case '\\': cp = '\\'; break;
        case '\'': cp = '\''; break;
        case '"': cp = '"'; break;
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case 'a': cp = 7; break;
        case 'b': cp = 8; break;
        case 'f': cp = 12; break;
        case 'v': cp = 11; break;
        case 'x':
            cp = read_hex(s, end, &p, 2);
            if (cp < 0) return "bad \\x escape (needs 2 hex digits)";
            break;
        case 'u':
            if (is_bytes) return "\\u escape in a bytes literal";
            cp = read_hex(s, end, &p, 4);
            if (cp < 0) return "bad \\u escape (needs 4 hex digits)";
            break;
        case 'U':
            if (is_bytes) return "\\U escape in a bytes literal";
            cp = read_hex(s, end, &p, 8);
            if (cp < 0 || cp > 0x10FFFF) return "bad \\U escape (needs 8 hex digits, at most 0010FFFF)";
            break;
        default:
            if (e >= '0' && e <= '7') { /* octal, up to 3 digits */
                cp = e - '0';
                for (int k = 0; k < 2 && p < end && s[p] >= '0' && s[p] <= '7'; k++) cp = cp * 8 + (s[p++] - '0');
                if (is_bytes && cp > 0xFF) return "octal escape above \\377 in a bytes literal";
                break;
            }
            return "unsupported escape sequence";
        }
        if (is_bytes) {
            out[n++] = (uint8_t)cp;
        } else {
            int w = put_utf8(out + n, (uint32_t)cp);
            if (w == 0) return "escape is a surrogate or out of range code point (not encodable as UTF-8)";
            n += (size_t)w;
        }
    }
    *i = p;
    *out_len = n;
    return NULL;
}

/* Parses a decimal number at s[*i]; at least one digit, at most max. */
static int parse_uint(const uint8_t *s, size_t end, size_t *i, long max, long *out) {
    size_t p = *i;
    long v = 0;
    if (p >= end || s[p] < '0' || s[p] > '9') return 0;
    while (p < end && s[p] >= '0' && s[p] <= '9') {
        v = v * 10 + (s[p] - '0');
        if (v > max) return 0;
        p++;
    }
    *i = p;
    *out = v;
    return 1;
}

/* ---------------------------------------------------------------- trie building */

/* A token as the trie builder sees it: its bytes and id (sorted by bytes, then id). */
typedef struct {
    const uint8_t *bytes;
    uint32_t len;
    int32_t id;
} sort_item;

static int cmp_tokens(const void *a, const void *b) {
    const sort_item *x = a, *y = b;
    int c = memcmp(x->bytes, y->bytes, x->len < y->len ? x->len : y->len);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id); /* duplicates: the lowest id first */
}

/* Fills node `node` (at depth `depth`) from the sorted tokens [lo, hi), all of which share the
 * node's prefix. Children are appended at *next. The recursion depth is bounded by the longest
 * token (VR_TOKENIZER_MAX_TOKEN, checked at load). */
static void build_node(vr_tokenizer *t, const sort_item *order, int lo, int hi, uint32_t depth, int node, int *next) {
    t->node_id[node] = -1;
    /* the token equal to the prefix sorts first; duplicates after it are ignored */
    while (lo < hi && order[lo].len == depth) {
        if (t->node_id[node] < 0) t->node_id[node] = order[lo].id;
        lo++;
    }
    /* count the distinct next bytes */
    int nchild = 0;
    for (int k = lo; k < hi;) {
        uint8_t b = order[k].bytes[depth];
        nchild++;
        while (k < hi && order[k].bytes[depth] == b) k++;
    }
    int first = *next;
    *next += nchild;
    t->node_first[node] = (uint32_t)first;
    t->node_nchild[node] = (uint16_t)nchild;
    int c = first;
    for (int k = lo; k < hi;) {
        uint8_t b = order[k].bytes[depth];
        int k2 = k;
        while (k2 < hi && order[k2].bytes[depth] == b) k2++;
        t->node_label[c] = b;
        build_node(t, order, k, k2, depth + 1, c, next);
        c++;
        k = k2;
    }
}

static int find_child(const vr_tokenizer *t, int node, uint8_t b) {
    uint32_t lo = t->node_first[node], hi = lo + t->node_nchild[node];
    const uint8_t *lab = t->node_label;
    while (hi - lo > 8) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (lab[mid] < b) lo = mid + 1;
        else if (lab[mid] > b) hi = mid;
        else return (int)mid;
    }
    for (uint32_t k = lo; k < hi; k++) {
        if (lab[k] == b) return (int)k;
        if (lab[k] > b) break;
    }
    return -1;
}

static vr_status build_trie(vr_tokenizer *t, const char *name, vr_error *err) {
    int n_tok = 0;
    size_t n_nodes_max = 1;
    for (int id = 0; id < t->n_vocab; id++)
        if (t->tok_len[id]) {
            n_tok++;
            n_nodes_max += t->tok_len[id];
        }
    sort_item *order = malloc(sizeof(sort_item) * (size_t)(n_tok ? n_tok : 1));
    if (!order) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory building the tokenizer", name);
    int k = 0;
    for (int id = 0; id < t->n_vocab; id++)
        if (t->tok_len[id]) {
            order[k].bytes = t->pool + t->tok_off[id];
            order[k].len = t->tok_len[id];
            order[k].id = id;
            k++;
        }
    qsort(order, (size_t)n_tok, sizeof(sort_item), cmp_tokens);

    t->node_id = malloc(sizeof(int32_t) * n_nodes_max);
    t->node_first = malloc(sizeof(uint32_t) * n_nodes_max);
    t->node_nchild = malloc(sizeof(uint16_t) * n_nodes_max);
    t->node_label = malloc(n_nodes_max);
    t->level2 = malloc(sizeof(int32_t) * 65536);
    if (!t->node_id || !t->node_first || !t->node_nchild || !t->node_label || !t->level2) {
        free(order);
        return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory building the tokenizer trie", name);
    }
    int next = 1;
    t->node_label[0] = 0;
    build_node(t, order, 0, n_tok, 0, 0, &next);
    t->n_nodes = next;
    free(order);

    for (int b = 0; b < 256; b++) t->root_id[b] = -1;
    for (int i = 0; i < 65536; i++) t->level2[i] = -1;
    uint32_t f = t->node_first[0];
    for (uint32_t c = f; c < f + t->node_nchild[0]; c++) {
        uint8_t b0 = t->node_label[c];
        t->root_id[b0] = t->node_id[c];
        uint32_t f2 = t->node_first[c];
        for (uint32_t g = f2; g < f2 + t->node_nchild[c]; g++)
            t->level2[(b0 << 8) | t->node_label[g]] = (int32_t)g;
    }
    for (int b = 0; b < 256; b++)
        if (t->root_id[b] < 0)
            return vr_error_set(err, VR_ERR_FORMAT,
                                "%s: no single-byte token for byte 0x%02x (every byte must be a token so that "
                                "any text can be encoded); is this an RWKV World vocab file?",
                                name, b);
    return VR_OK;
}

/* ---------------------------------------------------------------- load / free */

void vr_tokenizer_free(vr_tokenizer *t) {
    if (!t) return;
    free(t->tok_off);
    free(t->tok_len);
    free(t->pool);
    free(t->node_id);
    free(t->node_first);
    free(t->node_nchild);
    free(t->node_label);
    free(t->level2);
    free(t);
}

vr_status vr_tokenizer_load_memory(const char *data, size_t size, const char *name, vr_tokenizer **out,
                                   vr_error *err) {
    *out = NULL;
    if (!name) name = "<vocab>";
    const uint8_t *s = (const uint8_t *)data;
    vr_status st = VR_OK;
    uint8_t *buf = NULL;
    /* a literal never decodes to more bytes than it has characters (\UNNNNNNNN: 10 chars, 4 bytes) */
    uint8_t *pool = malloc(size + 1);
    int32_t *ids = NULL; /* per-line parse results before the id table is sized */
    uint32_t *offs = NULL, *lens = NULL;
    size_t n_lines_cap = 1024, n_entries = 0;
    vr_tokenizer *t = calloc(1, sizeof *t);
    ids = malloc(sizeof(int32_t) * n_lines_cap);
    offs = malloc(sizeof(uint32_t) * n_lines_cap);
    lens = malloc(sizeof(uint32_t) * n_lines_cap);
    if (!pool || !t || !ids || !offs || !lens) {
        st = vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory loading the vocab", name);
        goto fail;
    }
    if (size > 0xFFFFFFFFu / 4) {
        st = vr_error_set(err, VR_ERR_NOMEM, "%s: vocab file too large (%zu bytes)", name, size);
        goto fail;
    }
    size_t pool_n = 0;
    long max_id = -1;
    size_t pos = 0, line_no = 0;
    while (pos < size) {
        size_t end = pos;
        while (end < size && s[end] != '\n') end++;
        size_t next = end < size ? end + 1 : end;
        line_no++;
        size_t le = end;
        if (le > pos && s[le - 1] == '\r') le--;
        if (le == pos) { /* blank line */
            pos = next;
            continue;
        }
        if (!vr_utf8_valid((const char *)s + pos, le - pos)) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s:%zu: line is not valid UTF-8", name, line_no);
            goto fail;
        }
        size_t i = pos;
        long id = 0, blen = 0;
        if (!parse_uint(s, le, &i, VR_TOKENIZER_MAX_ID, &id)) {
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s:%zu: expected `<id> <literal> <byte length>`: the id is missing or above %d",
                              name, line_no, VR_TOKENIZER_MAX_ID);
            goto fail;
        }
        if (i >= le || s[i] != ' ') {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s:%zu: expected a space after the id %ld", name, line_no, id);
            goto fail;
        }
        i++;
        size_t tlen = 0;
        const char *why = parse_literal(s, le, &i, pool + pool_n, &tlen);
        if (why) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s:%zu: token %ld: %s", name, line_no, id, why);
            goto fail;
        }
        if (i >= le || s[i] != ' ') {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s:%zu: token %ld: expected a space and the byte length after the literal",
                              name, line_no, id);
            goto fail;
        }
        i++;
        if (!parse_uint(s, le, &i, 1L << 30, &blen) || i != le) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s:%zu: token %ld: the byte length field is missing or malformed",
                              name, line_no, id);
            goto fail;
        }
        if ((size_t)blen != tlen) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s:%zu: token %ld: literal is %zu bytes but the line says %ld",
                              name, line_no, id, tlen, blen);
            goto fail;
        }
        if (tlen > VR_TOKENIZER_MAX_TOKEN) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s:%zu: token %ld is %zu bytes, longer than the %d-byte limit",
                              name, line_no, id, tlen, VR_TOKENIZER_MAX_TOKEN);
            goto fail;
        }
        if (tlen == 0) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s:%zu: token %ld is empty", name, line_no, id);
            goto fail;
        }
        if (n_entries == n_lines_cap) {
            n_lines_cap *= 2;
            int32_t *ni = realloc(ids, sizeof(int32_t) * n_lines_cap);
            if (ni) ids = ni;
            uint32_t *no = realloc(offs, sizeof(uint32_t) * n_lines_cap);
            if (no) offs = no;
            uint32_t *nl = realloc(lens, sizeof(uint32_t) * n_lines_cap);
            if (nl) lens = nl;
            if (!ni || !no || !nl) {
                st = vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory loading the vocab", name);
                goto fail;
            }
        }
        ids[n_entries] = (int32_t)id;
        offs[n_entries] = (uint32_t)pool_n;
        lens[n_entries] = (uint32_t)tlen;
        n_entries++;
        pool_n += tlen;
        if (id > max_id) max_id = id;
        pos = next;
    }
    if (n_entries == 0) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: the vocab file has no tokens", name);
        goto fail;
    }
    t->n_vocab = (int)max_id + 1;
    t->tok_off = calloc((size_t)t->n_vocab, sizeof(uint32_t));
    t->tok_len = calloc((size_t)t->n_vocab, sizeof(uint32_t));
    if (!t->tok_off || !t->tok_len) {
        st = vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory loading the vocab", name);
        goto fail;
    }
    for (size_t e = 0; e < n_entries; e++) {
        if (t->tok_len[ids[e]]) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: token id %d appears twice", name, (int)ids[e]);
            goto fail;
        }
        t->tok_off[ids[e]] = offs[e];
        t->tok_len[ids[e]] = lens[e];
    }
    buf = realloc(pool, pool_n ? pool_n : 1); /* shrink */
    if (buf) pool = buf;
    t->pool = pool;
    t->pool_size = pool_n;
    pool = NULL;
    free(ids);
    free(offs);
    free(lens);
    ids = NULL;
    offs = lens = NULL;
    st = build_trie(t, name, err);
    if (st != VR_OK) goto fail;
    *out = t;
    return VR_OK;
fail:
    free(pool);
    free(ids);
    free(offs);
    free(lens);
    vr_tokenizer_free(t);
    return st;
}

vr_status vr_tokenizer_load(const char *vocab_path, vr_tokenizer **out, vr_error *err) {
    *out = NULL;
    char *data = NULL;
    size_t size = 0;
    vr_status st = vr_read_file(vocab_path, VR_TOKENIZER_MAX_FILE, &data, &size, err);
    if (st != VR_OK) {
        vr_error_wrap(err, "loading the tokenizer vocab (rwkv_vocab_v20230424.txt)");
        return st;
    }
    st = vr_tokenizer_load_memory(data, size, vocab_path, out, err);
    free(data);
    return st;
}

int vr_tokenizer_n_vocab(const vr_tokenizer *tok) { return tok->n_vocab; }

/* ---------------------------------------------------------------- encode / decode */

vr_status vr_tokenizer_encode(const vr_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n_ids,
                              vr_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (len > (size_t)0x7FFFFFFF)
        return vr_error_set(err, VR_ERR_INVALID, "text of %zu bytes is too long to tokenise (limit 2 GiB)", len);
    int32_t *out = malloc(sizeof(int32_t) * (len ? len : 1));
    if (!out) return vr_error_set(err, VR_ERR_NOMEM, "out of memory tokenising %zu bytes", len);
    const uint8_t *s = (const uint8_t *)text;
    size_t pos = 0;
    int n = 0;
    while (pos < len) {
        int32_t best = t->root_id[s[pos]];
        size_t best_len = 1;
        if (pos + 1 < len) {
            int node = t->level2[(s[pos] << 8) | s[pos + 1]];
            if (node >= 0) {
                if (t->node_id[node] >= 0) {
                    best = t->node_id[node];
                    best_len = 2;
                }
                size_t d = 2;
                while (pos + d < len) {
                    node = find_child(t, node, s[pos + d]);
                    if (node < 0) break;
                    d++;
                    if (t->node_id[node] >= 0) {
                        best = t->node_id[node];
                        best_len = d;
                    }
                }
            }
        }
        out[n++] = best;
        pos += best_len;
    }
    if (n > 0 && (size_t)n < len / 2) { /* give back the unused tail of a big buffer */
        int32_t *shrunk = realloc(out, sizeof(int32_t) * (size_t)n);
        if (shrunk) out = shrunk;
    }
    *ids = out;
    *n_ids = n;
    return VR_OK;
}

const char *vr_tokenizer_token_bytes(const vr_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab || t->tok_len[id] == 0) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->tok_len[id];
    return (const char *)t->pool + t->tok_off[id];
}

vr_status vr_tokenizer_decode_bytes(const vr_tokenizer *t, const int32_t *ids, int n, char **out, size_t *out_len,
                                    vr_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t l = 0;
        if (!vr_tokenizer_token_bytes(t, ids[i], &l))
            return vr_error_set(err, VR_ERR_INVALID, "cannot decode token id %d (position %d): not in the vocab (valid ids have an entry in 1..%d)",
                                (int)ids[i], i, t->n_vocab - 1);
        total += l;
    }
    char *buf = malloc(total + 1);
    if (!buf) return vr_error_set(err, VR_ERR_NOMEM, "out of memory decoding %d tokens", n);
    size_t p = 0;
    for (int i = 0; i < n; i++) {
        size_t l = 0;
        const char *b = vr_tokenizer_token_bytes(t, ids[i], &l);
        memcpy(buf + p, b, l);
        p += l;
    }
    buf[p] = 0;
    *out = buf;
    if (out_len) *out_len = p;
    return VR_OK;
}

char *vr_tokenizer_decode_upstream(const vr_tokenizer *t, const int32_t *ids, int n) {
    static const char replacement[] = "\xEF\xBF\xBD";
    char *bytes = NULL;
    size_t len = 0;
    if (vr_tokenizer_decode_bytes(t, ids, n, &bytes, &len, NULL) == VR_OK && vr_utf8_valid(bytes, len)) return bytes;
    free(bytes);
    char *r = malloc(sizeof replacement);
    if (r) memcpy(r, replacement, sizeof replacement);
    return r;
}
