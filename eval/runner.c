/* eval/runner.c — the `vrwkv eval` loop: load and chunk the questions, skip those already
 * answered (--resume), build each prompt, keep up to the backend's capacity in flight, and write
 * the answer lines strictly in question order, flushed line by line, with progress on stderr.
 * A bad question or image is reported with its id and skipped. It must not know how answers are
 * generated (eval/runner_engine.c, the cluster backend in cli/cmd_eval.c) nor format lines
 * itself (eval/answers). */
#include "eval/runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/mapped_file.h"
#include "eval/answers.h"
#include "eval/eval_prompt.h"
#include "eval/questions.h"

enum { MAX_IMAGE_BYTES = 64 << 20, PROGRESS_EVERY_S = 5 };

void vr_eval_model_id(const char *checkpoint_path, char *out, size_t cap) {
    /* Path(checkpoint).parent.name, on the absolute path when the given one has no parent */
    char *abs = realpath(checkpoint_path, NULL);
    const char *p = abs ? abs : checkpoint_path;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t slash = n;
    while (slash > 0 && p[slash - 1] != '/') slash--; /* p[slash..n) = file name */
    size_t end = slash ? slash - 1 : 0;                /* parent = p[0..end) */
    while (end > 1 && p[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && p[start - 1] != '/') start--;
    snprintf(out, cap, "%.*s", (int)(end - start), p + start);
    free(abs);
}

/* base64.b64decode(s) (validate=False): characters outside the alphabet are discarded, then
 * the padding must be right. */
static vr_status base64_decode(const char *s, uint8_t **out, size_t *out_len, vr_error *err) {
    size_t n = strlen(s);
    uint8_t *o = malloc(n / 4 * 3 + 3);
    if (!o) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t len = 0, quantum = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i], v;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+') v = 62;
        else if (c == '/') v = 63;
        else if (c == '=') {
            if (quantum % 4 >= 2) {
                pad++;
                quantum++;
                if (quantum % 4 == 0) break; /* a complete padded quantum ends the data */
            }
            continue;
        } else continue;
        if (pad) break;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        quantum++;
        if (bits >= 8) {
            bits -= 8;
            o[len++] = (uint8_t)(acc >> bits);
        }
    }
    if (quantum % 4 != 0) {
        free(o);
        return vr_error_set(err, VR_ERR_FORMAT, "the base64 image is not correctly padded");
    }
    *out = o;
    *out_len = len;
    return VR_OK;
}

/* The image bytes of a question: the file under images_dir, or the base64 value. */
static vr_status load_image(const vr_eval_options *o, const vr_question *q, uint8_t **data, size_t *len,
                            vr_error *err) {
    *data = NULL;
    *len = 0;
    if (q->image_kind == VR_IMAGE_REF_NONE) return VR_OK;
    if (q->image_kind == VR_IMAGE_REF_INVALID || !q->image)
        return vr_error_set(err, VR_ERR_FORMAT, "its \"image\" value is not a string");
    if (!o->images_dir) return base64_decode(q->image, data, len, err);
    size_t pl = strlen(o->images_dir) + strlen(q->image) + 2;
    char *path = malloc(pl);
    if (!path) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    /* os.path.join: an absolute image path replaces the folder */
    if (q->image[0] == '/') snprintf(path, pl, "%s", q->image);
    else snprintf(path, pl, "%s%s%s", o->images_dir,
                  o->images_dir[0] && o->images_dir[strlen(o->images_dir) - 1] == '/' ? "" : "/", q->image);
    char *bytes = NULL;
    vr_status st = vr_read_file(path, MAX_IMAGE_BYTES, &bytes, len, err);
    free(path);
    if (st == VR_OK) *data = (uint8_t *)bytes;
    else if (st == VR_ERR_IO) st = VR_ERR_NOT_FOUND; /* one unreadable image skips its question */
    return st;
}

/* What the runner keeps per question of the chunk until its line is written. */
typedef enum { SLOT_WAITING = 0, SLOT_IN_FLIGHT, SLOT_DONE, SLOT_SKIPPED, SLOT_RESUMED } slot_state;

typedef struct slot {
    slot_state state;
    vr_eval_job *job;
    char *prompt; /* the prompt text of the answer line */
    uint8_t *image;
} slot;

static void slot_clear(slot *s) {
    if (s->job) {
        free((void *)s->job->human);
        free((void *)s->job->ids);
        free(s->job->tokens);
        free(s->job->logits);
        free(s->job->logprobs);
        free(s->job->bytes);
        free(s->job);
    }
    free(s->prompt);
    free(s->image);
    memset(s, 0, sizeof *s);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct progress {
    int enabled, tty;
    double t0, last;
    size_t total, done, answered;
} progress;

static void fmt_duration(double s, char *buf, size_t cap) {
    long t = s < 0 ? 0 : (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
}

static void progress_show(progress *p, int final) {
    if (!p->enabled) return;
    double t = now_s();
    if (!final && t - p->last < (p->tty ? 0.2 : PROGRESS_EVERY_S)) return;
    p->last = t;
    double el = t - p->t0, rate = el > 0 ? (double)p->answered / el : 0;
    char eta[32] = "?";
    if (rate > 0) fmt_duration((double)(p->total - p->done) / rate, eta, sizeof eta);
    if (p->tty) {
        enum { W = 30 };
        int fill = p->total ? (int)((double)p->done / (double)p->total * W) : W;
        char bar[W + 1];
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
        bar[W] = 0;
        fprintf(stderr, "\r[%s] %zu/%zu  %.2f q/s  ETA %s   ", bar, p->done, p->total, rate, eta);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "vrwkv eval: %zu/%zu questions, %.2f q/s, ETA %s\n", p->done, p->total, rate, eta);
    }
    fflush(stderr);
}

static void report_skip(progress *p, const vr_question *q, const char *msg) {
    if (p->tty && p->enabled) fputc('\n', stderr);
    fprintf(stderr, "vrwkv eval: question %s (line %zu): %s; skipped\n", q->id_text, q->line_no, msg);
}

/* Counted keys of the answers already in the output (a question id may repeat: MME). */
typedef struct resume_set {
    char **keys; /* sorted */
    int *used;
    size_t n;
} resume_set;

static int cmp_key(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* 1 when one more answer with this key is in the output (and counts it as used). */
static int resume_take(resume_set *r, const char *key) {
    size_t lo = 0, hi = r->n;
    while (lo < hi) { /* the first index with keys[i] >= key */
        size_t mid = (lo + hi) / 2;
        if (strcmp(r->keys[mid], key) < 0) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; i < r->n && !strcmp(r->keys[i], key); i++)
        if (!r->used[i]) {
            r->used[i] = 1;
            return 1;
        }
    return 0;
}

/* Opens the output: truncated, or (resume) cut back to its last complete line and appended to. */
static vr_status open_output(const vr_eval_options *o, resume_set *rs, FILE **out, vr_error *err) {
    *out = NULL;
    if (o->resume) {
        vr_answer_ids ids;
        vr_status st = vr_answer_ids_read(o->out_path, &ids, err);
        if (st != VR_OK) return st;
        if (ids.truncated_tail && truncate(o->out_path, (off_t)ids.valid_bytes) != 0) {
            vr_answer_ids_free(&ids);
            return vr_error_set(err, VR_ERR_IO, "%s: cannot drop its incomplete last line: %s", o->out_path,
                                strerror(errno));
        }
        rs->keys = ids.keys;
        rs->n = ids.n;
        ids.keys = NULL;
        ids.n = 0;
        vr_answer_ids_free(&ids);
        rs->used = calloc(rs->n + 1, sizeof *rs->used);
        if (!rs->used) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        qsort(rs->keys, rs->n, sizeof *rs->keys, cmp_key);
    }
    *out = fopen(o->out_path, o->resume ? "ab" : "wb");
    if (!*out) return vr_error_set(err, VR_ERR_IO, "%s: cannot write: %s", o->out_path, strerror(errno));
    return VR_OK;
}

/* Builds the job of one question; a problem with the question itself (its text, its image)
 * returns VR_ERR_INVALID / FORMAT / NOT_FOUND with the reason in err. */
static vr_status prepare(const vr_eval_options *o, const vr_eval_backend *b, const vr_question *q, size_t index,
                         slot *s, vr_error *err) {
    vr_eval_job *j = calloc(1, sizeof *j);
    if (!j) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    s->job = j;
    j->index = index;
    j->id_text = q->id_text;
    j->position = o->position;
    j->scan = o->scan;
    j->max_tokens = o->max_tokens > 0 ? o->max_tokens : VR_EVAL_DEFAULT_MAX_TOKENS;
    vr_eval_prompt p;
    vr_status st = vr_eval_prompt_build(q->record, o->dataset, o->position, b->needs_ids ? b->tok : NULL, &p, err);
    if (st != VR_OK) return st;
    j->human = p.input_text;
    s->prompt = p.prompt;
    j->ids = p.ids;
    j->n_ids = p.n_ids;
    j->has_image_token = p.has_image;
    if (p.has_image) { /* upstream only inserts the image where the text holds <image> */
        st = load_image(o, q, &s->image, &j->image_len, err);
        j->image = s->image;
    }
    return st;
}

static vr_status write_answer(const vr_eval_options *o, const vr_question *q, slot *s, FILE *out, vr_error *err) {
    vr_eval_job *j = s->job;
    vr_answer a = {0};
    a.id.is_int = q->id_is_int;
    a.id.i = q->id_int;
    a.id.s = q->id_str;
    a.prompt = s->prompt;
    a.model_id = o->model_id ? o->model_id : "";
    a.image_file = q->image_kind == VR_IMAGE_REF_NONE ? NULL : q->image;
    char *text = NULL, *line = NULL;
    size_t line_len = 0;
    vr_status st = vr_answer_text(j->bytes ? j->bytes : "", j->n_bytes, &text, &a.text_len, err);
    a.text = text;
    vr_answer_averages(j->logits, j->logprobs, j->n_tokens, &a.avg_logit, &a.avg_prob);
    if (st == VR_OK) st = vr_answer_line(&a, &line, &line_len, err);
    if (st == VR_OK) {
        fwrite(line, 1, line_len, out);
        fputc('\n', out);
        if (fflush(out) != 0 || ferror(out))
            st = vr_error_set(err, VR_ERR_IO, "%s: write failed: %s", o->out_path, strerror(errno));
    }
    free(text);
    free(line);
    return st;
}

static int skips_question(vr_status st) {
    return st == VR_ERR_INVALID || st == VR_ERR_FORMAT || st == VR_ERR_NOT_FOUND || st == VR_ERR_UNSUPPORTED;
}

vr_status vr_eval_run(const vr_eval_options *o, vr_eval_backend *b, vr_eval_summary *sum, vr_error *err) {
    memset(sum, 0, sizeof *sum);
    double t0 = now_s();
    vr_question_set qs = {0};
    resume_set rs = {0};
    slot *slots = NULL;
    FILE *out = NULL;
    size_t lo = 0, hi = 0;
    progress pr = {0};
    vr_status st = vr_questions_load(o->questions_path, 1, &qs, err);
    if (st != VR_OK) return st;
    /* a line that is not a question at all is reported and skipped; the chunks are over the
     * loaded records like upstream's (which would have crashed on such a line) */
    for (size_t i = 0; i < qs.n_errors; i++) {
        fprintf(stderr, "vrwkv eval: %s:%zu: %s; skipped\n", o->questions_path, qs.errors[i].line_no,
                qs.errors[i].msg);
        sum->skipped++;
    }
    st = vr_questions_chunk(qs.n, o->num_chunks > 0 ? o->num_chunks : 1, o->chunk_idx, &lo, &hi, err);
    if (st == VR_OK) st = open_output(o, &rs, &out, err);
    size_t n = hi - lo;
    if (st == VR_OK && !(slots = calloc(n + 1, sizeof *slots))) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    sum->total = n;
    pr.enabled = o->progress;
    pr.tty = isatty(STDERR_FILENO);
    pr.t0 = pr.last = t0;
    pr.total = n;
    size_t next = 0, written = 0;
    int in_flight = 0;
    while (st == VR_OK && (next < n || in_flight || written < n)) {
        /* hand questions to the backend while it has room */
        while (st == VR_OK && next < n && in_flight < b->capacity) {
            size_t i = next++;
            const vr_question *q = &qs.items[lo + i];
            if (rs.n) {
                vr_answer_id id = {q->id_is_int, q->id_int, q->id_str};
                char *key = vr_answer_id_key(&id);
                if (!key) {
                    st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
                    break;
                }
                int have = resume_take(&rs, key);
                free(key);
                if (have) {
                    slots[i].state = SLOT_RESUMED;
                    continue;
                }
            }
            vr_error qerr = {0};
            vr_status ps = prepare(o, b, q, i, &slots[i], &qerr);
            if (ps == VR_OK) ps = b->submit(b->ctx, slots[i].job, &qerr);
            if (ps == VR_OK) {
                slots[i].state = SLOT_IN_FLIGHT;
                in_flight++;
            } else if (skips_question(ps)) {
                report_skip(&pr, q, qerr.msg);
                slot_clear(&slots[i]);
                slots[i].state = SLOT_SKIPPED;
            } else {
                *err = qerr;
                st = ps;
            }
        }
        /* write what is complete, in question order */
        while (st == VR_OK && written < n && slots[written].state >= SLOT_DONE) {
            slot *s = &slots[written];
            const vr_question *q = &qs.items[lo + written];
            if (s->state == SLOT_DONE && s->job->status == VR_OK) {
                st = write_answer(o, q, s, out, err);
                sum->answered++;
                pr.answered++;
            } else if (s->state == SLOT_DONE) {
                report_skip(&pr, q, s->job->err.msg);
                sum->skipped++;
            } else if (s->state == SLOT_SKIPPED) {
                sum->skipped++;
            } else {
                sum->resumed++;
            }
            slot_clear(s);
            s->state = SLOT_SKIPPED; /* cleared; never looked at again */
            written++;
            pr.done++;
            progress_show(&pr, 0);
        }
        if (st != VR_OK || !in_flight) continue;
        vr_eval_job *j = NULL;
        st = b->next(b->ctx, &j, err);
        if (st == VR_OK) {
            in_flight--;
            slots[j->index].state = SLOT_DONE;
            if (j->status != VR_OK && !skips_question(j->status)) {
                *err = j->err;
                st = j->status;
            }
        }
    }
    /* a failed run drains what is still in flight so that the backend holds no job of ours */
    while (in_flight > 0) {
        vr_eval_job *j = NULL;
        vr_error e2 = {0};
        if (b->next(b->ctx, &j, &e2) != VR_OK && !j) break;
        in_flight--;
    }
    if (st == VR_OK) progress_show(&pr, 1);
    else if (pr.enabled && pr.tty) fputc('\n', stderr);
    if (out && fclose(out) != 0 && st == VR_OK)
        st = vr_error_set(err, VR_ERR_IO, "%s: write failed: %s", o->out_path, strerror(errno));
    for (size_t i = 0; slots && i < n; i++) slot_clear(&slots[i]);
    free(slots);
    for (size_t i = 0; i < rs.n; i++) free(rs.keys[i]);
    free(rs.keys);
    free(rs.used);
    vr_questions_free(&qs);
    sum->seconds = now_s() - t0;
    return st;
}
