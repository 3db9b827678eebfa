/* eval/tsv.c — pandas 1.5.3 read_table() with default options, for the MMBench question TSVs:
 * the C tokenizer's state machine (TAB, `"` quoting with `""`, multi-line quoted fields,
 * \n / \r\n / \r line ends, blank and spaces-only lines skipped, short rows padded, a first data
 * row longer than the header becoming an implicit index), header renaming, NA strings and the
 * int → float → bool → string column inference. Must not know any column's meaning. */
#include "eval/tsv.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/mapped_file.h"
#include "common/pytext.h"
#include "model/tokenizer.h"

/* pandas 1.5.3 STR_NA_VALUES (tables.json → pandas_default_na_strings). */
static const char *const NA_STRINGS[18] = {
    "",     "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A",   "NA",  "NULL",    "NaN",      "n/a",  "nan",  "null",
};

int vr_tsv_is_na_string(const char *s) {
    for (size_t i = 0; i < sizeof NA_STRINGS / sizeof NA_STRINGS[0]; i++)
        if (strcmp(s, NA_STRINGS[i]) == 0) return 1;
    return 0;
}

/* ------------------------------------------------------------------ tokenizer */

/* Fields are stored as offsets into one byte buffer (each NUL-terminated); rows as ranges of
 * the field array. */
typedef struct {
    vr_strbuf bytes;
    size_t *field_off;
    size_t n_fields, cap_fields;
    size_t *row_first, *row_count, *row_line;
    size_t n_rows, cap_rows;
    int oom;
} tokens;

static void tk_grow(void **p, size_t *cap, size_t need, size_t elem, int *oom) {
    if (need <= *cap || *oom) return;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *np = realloc(*p, c * elem);
    if (!np) {
        *oom = 1;
        return;
    }
    *p = np;
    *cap = c;
}

typedef struct {
    tokens *t;
    size_t field_start; /* byte offset of the open field */
    size_t row_first;   /* first field of the open row */
    size_t row_line;
    int row_open;
} tk_state;

static void begin_row(tk_state *s, size_t line) {
    s->row_first = s->t->n_fields;
    s->row_line = line;
    s->row_open = 1;
    s->field_start = s->t->bytes.n;
}

static void push_char(tk_state *s, char c) { vr_strbuf_append(&s->t->bytes, &c, 1); }

static void end_field(tk_state *s) {
    tokens *t = s->t;
    vr_strbuf_append(&t->bytes, "", 1); /* the NUL that ends this field */
    tk_grow((void **)&t->field_off, &t->cap_fields, t->n_fields + 1, sizeof(size_t), &t->oom);
    if (t->oom) return;
    t->field_off[t->n_fields++] = s->field_start;
    s->field_start = t->bytes.n;
}

static void end_row(tk_state *s) {
    tokens *t = s->t;
    size_t cap = t->cap_rows;
    tk_grow((void **)&t->row_first, &cap, t->n_rows + 1, sizeof(size_t), &t->oom);
    cap = t->cap_rows;
    tk_grow((void **)&t->row_count, &cap, t->n_rows + 1, sizeof(size_t), &t->oom);
    cap = t->cap_rows;
    tk_grow((void **)&t->row_line, &cap, t->n_rows + 1, sizeof(size_t), &t->oom);
    t->cap_rows = cap;
    if (t->oom) return;
    t->row_first[t->n_rows] = s->row_first;
    t->row_count[t->n_rows] = t->n_fields - s->row_first;
    t->row_line[t->n_rows] = s->row_line;
    t->n_rows++;
    s->row_open = 0;
    s->field_start = t->bytes.n;
}

enum {
    START_RECORD,
    START_FIELD,
    IN_FIELD,
    IN_QUOTED_FIELD,
    QUOTE_IN_QUOTED_FIELD,
    WHITESPACE_LINE,
    EAT_CRNL,
    EAT_CRNL_NOP
};

/* What ends a field outside quotes: a tab (the next field starts) or a line end (the row ends;
 * a "\r" may be followed by "\n"). Returns the next state, or -1 when c ends nothing. */
static int field_end(tk_state *s, char c, size_t *line) {
    if (c == '\t') {
        end_field(s);
        return START_FIELD;
    }
    if (c == '\n') {
        end_field(s);
        end_row(s);
        (*line)++;
        return START_RECORD;
    }
    if (c == '\r') {
        end_field(s);
        return EAT_CRNL;
    }
    return -1;
}

/* The pandas C tokenizer (tokenize_bytes) for delimiter '\t', quotechar '"', doublequote,
 * no escape char, no comments, skip_blank_lines. */
static vr_status tokenize(const char *d, size_t n, const char *name, tokens *t, vr_error *err) {
    tk_state s = {.t = t};
    int state = START_RECORD;
    size_t line = 1;          /* physical line of the byte being read */
    size_t ws_line_start = 0; /* where a possibly blank line began */
    size_t quote_line = 0;
    size_t i = 0;
    while (i < n) {
        char c = d[i++];
        int next;
        switch (state) {
        case START_RECORD:
            if (c == '\n') {
                line++;
                break;
            }
            if (c == '\r') {
                line++;
                state = EAT_CRNL_NOP;
                break;
            }
            if (c == ' ') { /* isblank(c) && c != delimiter */
                ws_line_start = i - 1;
                state = WHITESPACE_LINE;
                break;
            }
            begin_row(&s, line);
            state = START_FIELD;
            /* fall through */
        case START_FIELD:
            if ((next = field_end(&s, c, &line)) >= 0) {
                state = next;
            } else if (c == '"') {
                quote_line = line;
                state = IN_QUOTED_FIELD;
            } else {
                push_char(&s, c);
                state = IN_FIELD;
            }
            break;
        case WHITESPACE_LINE:
            if (c == '\n') {
                line++;
                state = START_RECORD;
            } else if (c == '\r') {
                line++;
                state = EAT_CRNL_NOP;
            } else if (c != ' ') {
                /* not blank after all: read the line again from its start */
                i = ws_line_start;
                begin_row(&s, line);
                state = START_FIELD;
            }
            break;
        case IN_FIELD:
            if ((next = field_end(&s, c, &line)) >= 0) state = next;
            else push_char(&s, c);
            break;
        case IN_QUOTED_FIELD:
            if (c == '"') {
                state = QUOTE_IN_QUOTED_FIELD;
            } else {
                if (c == '\n' || (c == '\r' && (i >= n || d[i] != '\n'))) line++;
                push_char(&s, c);
            }
            break;
        case QUOTE_IN_QUOTED_FIELD:
            if (c == '"') {
                push_char(&s, c);
                state = IN_QUOTED_FIELD;
            } else if ((next = field_end(&s, c, &line)) >= 0) {
                state = next;
            } else {
                push_char(&s, c);
                state = IN_FIELD;
            }
            break;
        case EAT_CRNL:
            line++;
            if (c == '\n') {
                end_row(&s);
                state = START_RECORD;
            } else if (c == '\t') {
                /* "\r\t": the \r ended the row and the tab ends an empty first field */
                end_row(&s);
                begin_row(&s, line);
                end_field(&s);
                state = START_FIELD;
            } else {
                end_row(&s);
                state = START_RECORD;
                i--; /* read this character again */
            }
            break;
        case EAT_CRNL_NOP:
            state = START_RECORD;
            if (c != '\n' && c != '\t') i--;
            break;
        }
        if (t->oom || t->bytes.oom) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory reading the table", name);
    }
    switch (state) {
    case IN_QUOTED_FIELD:
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: a quoted field that starts on line %zu is never closed (pandas: EOF inside string); "
                            "check for an unbalanced '\"'",
                            name, quote_line);
    case START_FIELD:
    case IN_FIELD:
    case QUOTE_IN_QUOTED_FIELD:
        end_field(&s);
        end_row(&s);
        break;
    case EAT_CRNL:
        end_row(&s);
        break;
    default:
        break;
    }
    if (t->oom || t->bytes.oom) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory reading the table", name);
    return VR_OK;
}

/* ------------------------------------------------------------------ type inference */

static int ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* pandas str_to_int64: ASCII spaces around, optional sign, digits only; int64 range. */
static int parse_int(const char *s, long long *out) {
    const char *p = s;
    while (ascii_space(*p)) p++;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    } else if (*p == '+') {
        p++;
    }
    if (!isdigit((unsigned char)*p)) return 0;
    unsigned long long v = 0;
    unsigned long long lim = neg ? (unsigned long long)LLONG_MAX + 1ull : (unsigned long long)LLONG_MAX;
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (lim - d) / 10) return 0; /* overflow: pandas tries uint64, then float */
        v = v * 10 + d;
        p++;
    }
    while (ascii_space(*p)) p++;
    if (*p) return 0;
    if (neg) *out = v == (unsigned long long)LLONG_MAX + 1ull ? LLONG_MIN : -(long long)v;
    else *out = (long long)v;
    return 1;
}

/* pandas precise_xstrtod + the inf spellings of _try_double: spaces around, sign, digits with
 * an optional '.', at least one digit, an optional exponent; or inf/Infinity with a sign. */
static int parse_float(const char *s, double *out) {
    static const char *const pos_inf[] = {"inf", "+inf", "Infinity", "+Infinity"};
    static const char *const neg_inf[] = {"-inf", "-Infinity"};
    for (size_t k = 0; k < 4; k++)
        if (strcasecmp(s, pos_inf[k]) == 0) {
            *out = HUGE_VAL;
            return 1;
        }
    for (size_t k = 0; k < 2; k++)
        if (strcasecmp(s, neg_inf[k]) == 0) {
            *out = -HUGE_VAL;
            return 1;
        }
    const char *p = s;
    while (ascii_space(*p)) p++;
    const char *start = p;
    if (*p == '-' || *p == '+') p++;
    int digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        const char *e = p + 1;
        if (*e == '-' || *e == '+') e++;
        if (isdigit((unsigned char)*e)) {
            while (isdigit((unsigned char)*e)) e++;
            p = e;
        }
    }
    const char *end = p;
    while (ascii_space(*p)) p++;
    if (*p) return 0;
    char buf[512];
    size_t len = (size_t)(end - start);
    char *tmp = len < sizeof buf ? buf : malloc(len + 1);
    if (!tmp) return 0;
    memcpy(tmp, start, len);
    tmp[len] = 0;
    errno = 0;
    double v = strtod(tmp, NULL);
    if (tmp != buf) free(tmp);
    if (isinf(v)) return 0; /* pandas reports an out-of-range number as not a float */
    *out = v;
    return 1;
}

/* pandas _try_bool_flex: True/TRUE/true/False/... (to_boolean is case-insensitive). */
static int parse_bool(const char *s, int *out) {
    if (strcasecmp(s, "true") == 0) {
        *out = 1;
        return 1;
    }
    if (strcasecmp(s, "false") == 0) {
        *out = 0;
        return 1;
    }
    return 0;
}

static void infer_column(vr_tsv_table *t, size_t col) {
    int all_int = 1, all_float = 1, all_bool = 1, any_na = 0;
    for (size_t r = 0; r < t->n_rows; r++) {
        vr_tsv_cell *c = &t->cells[r * t->n_cols + col];
        c->na = vr_tsv_is_na_string(c->text);
        any_na |= c->na;
    }
    for (size_t r = 0; r < t->n_rows; r++) {
        vr_tsv_cell *c = &t->cells[r * t->n_cols + col];
        if (c->na) continue;
        long long iv = 0;
        double dv = 0;
        int bv = 0;
        if (all_int && !parse_int(c->text, &iv)) all_int = 0;
        if (all_float && !parse_float(c->text, &dv)) all_float = 0;
        if (all_bool && !parse_bool(c->text, &bv)) all_bool = 0;
        if (!all_int && !all_float && !all_bool) break;
    }
    vr_tsv_type type;
    if (all_int && !any_na) type = VR_TSV_INT;
    else if (all_int || all_float) type = VR_TSV_FLOAT; /* also an all-NA column */
    else if (all_bool) type = VR_TSV_BOOL;
    else type = VR_TSV_STRING;
    t->types[col] = type;
    for (size_t r = 0; r < t->n_rows; r++) {
        vr_tsv_cell *c = &t->cells[r * t->n_cols + col];
        if (c->na) continue;
        switch (type) {
        case VR_TSV_INT:
            parse_int(c->text, &c->i);
            c->d = (double)c->i;
            break;
        case VR_TSV_FLOAT:
            parse_float(c->text, &c->d);
            break;
        case VR_TSV_BOOL:
            parse_bool(c->text, &c->b);
            break;
        case VR_TSV_STRING:
            break;
        }
    }
}

/* ------------------------------------------------------------------ header names */

/* pandas: an empty name becomes "Unnamed: <i>"; a repeated name X becomes X.1, X.2, ... */
static vr_status make_names(vr_tsv_table *t, const char *const *raw, const char *name, vr_error *err) {
    for (size_t i = 0; i < t->n_cols; i++) {
        char *nm = NULL;
        if (raw[i][0] == 0) {
            char buf[48];
            snprintf(buf, sizeof buf, "Unnamed: %zu", i);
            nm = strdup(buf);
        } else {
            nm = strdup(raw[i]);
        }
        if (!nm) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", name);
        /* count earlier names equal to nm and rename as pandas' dedup loop does */
        for (;;) {
            size_t cnt = 0;
            for (size_t j = 0; j < i; j++)
                if (strcmp(t->names[j], nm) == 0) cnt++;
            if (cnt == 0) break;
            vr_strbuf b = {0};
            vr_strbuf_printf(&b, "%s.%zu", nm, cnt);
            char *nn = vr_strbuf_take(&b, NULL);
            free(nm);
            if (!nn) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", name);
            nm = nn;
        }
        t->names[i] = nm;
    }
    return VR_OK;
}

/* ------------------------------------------------------------------ public */

vr_status vr_tsv_parse(const char *data, size_t n, const char *name, vr_tsv_table *out, vr_error *err) {
    memset(out, 0, sizeof *out);
    if (!name) name = "table";
    if (n >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        data += 3;
        n -= 3;
    }
    if (!vr_utf8_valid(data, n)) {
        size_t line = 1, k = 0;
        while (k < n) {
            size_t at = k;
            if (VR_UTF8_IS_BAD(vr_utf8_decode_next(data, n, &k))) break;
            if (data[at] == '\n') line++;
        }
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: line %zu is not valid UTF-8 (pandas reads TSVs as UTF-8); re-save the file as UTF-8",
                            name, line);
    }
    if (memchr(data, 0, n))
        return vr_error_set(err, VR_ERR_FORMAT, "%s: the file contains a NUL byte; it is not a text table", name);
    tokens tk = {0};
    vr_status st = tokenize(data, n, name, &tk, err);
    if (st != VR_OK) goto done;
    if (tk.n_rows == 0) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: no columns to parse (the file is empty)", name);
        goto done;
    }
    const char *bytes = tk.bytes.p;
    size_t header_n = tk.row_count[0];
    size_t n_data = tk.n_rows - 1;
    /* pandas end_line: a row may not have more fields than the row before it (after padding);
     * the first data row is exempt, and extra leading fields there form an implicit index. */
    size_t skip = 0;
    if (n_data > 0 && tk.row_count[1] > header_n) skip = tk.row_count[1] - header_n;
    size_t prev = n_data > 0 ? tk.row_count[1] : 0;
    for (size_t r = 2; r < tk.n_rows; r++) {
        if (tk.row_count[r] > prev) {
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: line %zu has %zu fields but the rows before it have %zu (pandas: Error tokenizing "
                              "data. C error: Expected %zu fields); a field probably holds an unquoted tab",
                              name, tk.row_line[r], tk.row_count[r], prev, prev);
            goto done;
        }
    }
    out->n_cols = header_n;
    out->n_rows = n_data;
    out->names = calloc(header_n ? header_n : 1, sizeof(char *));
    out->types = calloc(header_n ? header_n : 1, sizeof(vr_tsv_type));
    out->cells = calloc(n_data * header_n + 1, sizeof(vr_tsv_cell));
    out->row_line = calloc(n_data ? n_data : 1, sizeof(size_t));
    const char **raw = calloc(header_n ? header_n : 1, sizeof(char *));
    if (!out->names || !out->types || !out->cells || !out->row_line || !raw) {
        free(raw);
        st = vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    for (size_t c = 0; c < header_n; c++) raw[c] = bytes + tk.field_off[tk.row_first[0] + c];
    st = make_names(out, raw, name, err);
    free(raw);
    if (st != VR_OK) goto done;
    for (size_t r = 0; r < n_data; r++) {
        size_t first = tk.row_first[r + 1], cnt = tk.row_count[r + 1];
        out->row_line[r] = tk.row_line[r + 1];
        for (size_t c = 0; c < header_n; c++) {
            size_t k = c + skip;
            out->cells[r * header_n + c].text = k < cnt ? bytes + tk.field_off[first + k] : "";
        }
    }
    /* cell texts point into the token bytes, which the table keeps */
    out->storage = tk.bytes.p;
    tk.bytes.p = NULL;
    for (size_t c = 0; c < header_n; c++) infer_column(out, c);
done:
    vr_strbuf_free(&tk.bytes);
    free(tk.field_off);
    free(tk.row_first);
    free(tk.row_count);
    free(tk.row_line);
    if (st != VR_OK) vr_tsv_free(out);
    return st;
}

vr_status vr_tsv_read(const char *path, vr_tsv_table *out, vr_error *err) {
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t n = 0;
    vr_status st = vr_read_file(path, (size_t)4 << 30, &data, &n, err);
    if (st != VR_OK) return st;
    st = vr_tsv_parse(data, n, path, out, err);
    free(data);
    return st;
}

void vr_tsv_free(vr_tsv_table *t) {
    if (!t) return;
    if (t->names)
        for (size_t i = 0; i < t->n_cols; i++) free(t->names[i]);
    free(t->names);
    free(t->types);
    free(t->cells);
    free(t->row_line);
    free(t->storage);
    memset(t, 0, sizeof *t);
}

long vr_tsv_col(const vr_tsv_table *t, const char *name) {
    for (size_t i = 0; i < t->n_cols; i++)
        if (strcmp(t->names[i], name) == 0) return (long)i;
    return -1;
}

cJSON *vr_tsv_cell_json(const vr_tsv_table *t, size_t row, size_t col) {
    const vr_tsv_cell *c = vr_tsv_at(t, row, col);
    if (c->na) return cJSON_CreateNull();
    switch (t->types[col]) {
    case VR_TSV_INT: return cJSON_CreateNumber((double)c->i);
    case VR_TSV_FLOAT: return cJSON_CreateNumber(c->d);
    case VR_TSV_BOOL: return cJSON_CreateBool(c->b);
    case VR_TSV_STRING: return cJSON_CreateString(c->text);
    }
    return NULL;
}

cJSON *vr_tsv_row_json(const vr_tsv_table *t, size_t row) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (size_t c = 0; c < t->n_cols; c++) {
        cJSON *v = vr_tsv_cell_json(t, row, c);
        if (!v || !cJSON_AddItemToObject(o, t->names[c], v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}
