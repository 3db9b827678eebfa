/* eval/questions.h — loads a benchmark question file the way upstream evaluate.py does
 * (load_questions, get_question_id, split_list/get_chunk): `.jsonl` (one json.loads per line),
 * `.json` (one array), `.tsv` (pandas read_table, eval/tsv.h). Each question is its record as a
 * cJSON object plus its id (with its type) and image reference. Builds no prompts and reads no
 * images. */
#ifndef VR_EVAL_QUESTIONS_H
#define VR_EVAL_QUESTIONS_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "common/error.h"

typedef enum { VR_QFILE_JSONL = 0, VR_QFILE_JSON, VR_QFILE_TSV } vr_question_format;

/* Where the question's image comes from. NONE: no "image" key (upstream uses an all-zero image).
 * FILE: "image" is a file name under --image_folder (json/jsonl). BASE64: "image" is the
 * base64 of the file (MMBench TSVs, evaluate.py without --image_folder). INVALID: the key is
 * there but its value is not a string (NaN in a TSV, a number): upstream would crash. */
typedef enum { VR_IMAGE_REF_NONE = 0, VR_IMAGE_REF_FILE, VR_IMAGE_REF_BASE64, VR_IMAGE_REF_INVALID } vr_image_ref_kind;

typedef struct vr_question {
    cJSON *record;       /* the line as upstream loaded it (owned); TSV NaN → null */
    size_t index;        /* 0-based position among the file's records (json index, jsonl line-1
                          * counting every line, tsv data row) */
    size_t line_no;      /* 1-based line where the record starts (json: 0) */
    /* the question id: the first present of question_id, id, index */
    const char *id_key;  /* which key held it */
    int id_is_int;
    long long id_int;    /* when id_is_int */
    const char *id_str;  /* when !id_is_int: points into record */
    char id_text[64];    /* the id for messages: the integer, or the string (truncated) */
    vr_image_ref_kind image_kind;
    const char *image;   /* the "image" string (points into record), or NULL */
    char **nan_fields;   /* TSV: the fields pandas read as NaN, in column order */
    size_t n_nan_fields;
} vr_question;

/* A line (jsonl) or record that could not be used: not JSON, not an object, no usable id. */
typedef struct vr_question_error {
    size_t line_no; /* 1-based (json: the array index + 1) */
    char msg[400];
} vr_question_error;

typedef struct vr_question_set {
    vr_question_format format;
    vr_question *items;
    size_t n;
    vr_question_error *errors; /* only with collect_errors */
    size_t n_errors;
} vr_question_set;

/* Loads path by its suffix (.jsonl, .json, .tsv; anything else is an error naming them).
 * collect_errors = 0: the first bad record is an error (upstream crashes there too).
 * collect_errors = 1: bad records are listed in out->errors with their line and left out;
 * only a file that cannot be read at all (missing, not UTF-8 for TSV, a broken .json array) is
 * an error. */
vr_status vr_questions_load(const char *path, int collect_errors, vr_question_set *out, vr_error *err);
/* The same from bytes in memory; format by the suffix of name. */
vr_status vr_questions_parse(const char *data, size_t n, const char *name, int collect_errors, vr_question_set *out,
                             vr_error *err);
void vr_questions_free(vr_question_set *s);

/* get_question_id on any record: fills the id fields of q from record (which q does not own
 * here). Errors: no id key (upstream: "Cannot find question id in line"), or an id that is not
 * an integer or a string. */
vr_status vr_question_id(const cJSON *record, vr_question *q, vr_error *err);

/* split_list + get_chunk: chunk size = ceil(n / num_chunks); chunk k is [k*size, min(n,(k+1)*size)).
 * num_chunks < 1, chunk_idx < 0 or a chunk that does not exist (upstream: IndexError; also
 * every chunk of an empty list) is VR_ERR_INVALID with a message saying how many chunks exist. */
vr_status vr_questions_chunk(size_t n, int num_chunks, int chunk_idx, size_t *start, size_t *end, vr_error *err);

#endif
