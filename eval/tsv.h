/* eval/tsv.h — reads a tab-separated table exactly as pandas 1.5.3 `read_table(path)` does
 * with its defaults (the way upstream evaluate.py and convert_mmbench_for_submission.py load
 * MMBench TSVs): TAB separator, the first row is the header, `"` quoting (a field that starts
 * with `"` is quoted, `""` inside is one `"`, it may span lines; a `"` inside an unquoted field
 * is literal), blank and blank-looking (spaces only) lines skipped, pandas' default NA strings,
 * and per-column type inference (int, float, bool, else the original strings).
 * It only parses: it knows no benchmark and no column names. */
#ifndef VR_EVAL_TSV_H
#define VR_EVAL_TSV_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "common/error.h"

/* The dtype pandas infers for a column. A column whose non-NA fields are all integers is INT
 * (FLOAT when it also has an NA field: pandas cannot hold NaN in an int column); all numbers
 * (or all NA) is FLOAT; all True/False spellings is BOOL; anything else is STRING, keeping
 * every field's original text. Integers beyond int64 are read as FLOAT (pandas would use
 * uint64 for values up to 2^64-1; JSON numbers here are doubles either way). */
typedef enum { VR_TSV_INT = 0, VR_TSV_FLOAT, VR_TSV_BOOL, VR_TSV_STRING } vr_tsv_type;

/* One cell: na (pandas NaN) or a value of its column's type. */
typedef struct vr_tsv_cell {
    const char *text; /* the field as read (quotes removed); "" for a missing trailing field */
    int na;
    long long i;      /* INT */
    double d;         /* FLOAT (and INT, as a double) */
    int b;            /* BOOL */
} vr_tsv_cell;

typedef struct vr_tsv_table {
    size_t n_cols, n_rows;
    char **names;          /* column names after pandas' renaming ("Unnamed: 3", "A.1") */
    vr_tsv_type *types;
    vr_tsv_cell *cells;    /* n_rows * n_cols, row-major */
    size_t *row_line;      /* 1-based file line where each row starts */
    char *storage;         /* owns every cell text */
} vr_tsv_table;

/* The 18 strings pandas 1.5.3 reads as NaN (exact, case-sensitive, no trimming). */
int vr_tsv_is_na_string(const char *s);

/* Parses a whole file's bytes (need not be NUL-terminated). name is used in messages.
 * Errors (VR_ERR_FORMAT) name the line: invalid UTF-8, a quoted field left open at the end,
 * a row with more fields than the header, no header. */
vr_status vr_tsv_parse(const char *data, size_t n, const char *name, vr_tsv_table *out, vr_error *err);
vr_status vr_tsv_read(const char *path, vr_tsv_table *out, vr_error *err);
void vr_tsv_free(vr_tsv_table *t);

static inline const vr_tsv_cell *vr_tsv_at(const vr_tsv_table *t, size_t row, size_t col) {
    return &t->cells[row * t->n_cols + col];
}
/* The column index of name, or -1. */
long vr_tsv_col(const vr_tsv_table *t, const char *name);

/* One cell as `to_dict("records")` gives it: NaN → JSON null, INT/FLOAT → number, BOOL →
 * true/false, STRING → string. NULL when out of memory. */
cJSON *vr_tsv_cell_json(const vr_tsv_table *t, size_t row, size_t col);
/* A whole row as `to_dict("records")` gives it (keys in column order). NULL when out of memory. */
cJSON *vr_tsv_row_json(const vr_tsv_table *t, size_t row);

#endif
