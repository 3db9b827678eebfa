/* cli/cmd_eval.c — `vrwkv eval` (a benchmark question file → upstream's answer file, in-process
 * or through a running cluster) and `vrwkv score` (the upstream scorers over an eval dir).
 * Argument handling, the cluster generation backend (a small pool of threads, each running
 * one-shot Generate streams) and printing only: the question/answer logic is eval/runner and
 * the scoring eval/score_*. The cluster part is built only with the service
 * (VRWKV_WITH_SERVICE); it must speak only the public API (proto/vrwkv.proto). */
#include <pthread.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "eval/answers.h"
#include "eval/runner.h"
#include "eval/score.h"

#ifdef VRWKV_WITH_SERVICE
#include "proto/rpc.h"
#include "proto/vrwkv.pb-c.h"
#endif

static const char *get(vr_arg *a, int n, const char *name) { return vr_args_get(a, n, name)->value; }

/* ------------------------------------------------------------------ cluster backend */

#ifdef VRWKV_WITH_SERVICE

enum { CLUSTER_RETRIES = 8 };

typedef struct cluster_backend {
    vr_rpc_channel *ch;
    vr_rpc_metadata md[1];
    char *auth;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    vr_eval_job **queue; /* submitted, not yet taken by a thread (FIFO) */
    int n_queue;
    vr_eval_job **done;  /* finished, not yet returned (FIFO) */
    int n_done;
    int cap;
    int stopping;
    pthread_t *threads;
    int n_threads;
} cluster_backend;

/* One Generate call for a job: fills its tokens and status. Returns the gRPC code (-1: the
 * call could not be made) so that the caller can retry transient refusals. */
static int cluster_generate(cluster_backend *b, vr_eval_job *j) {
    Vrwkv__V1__GenerateRequest req = VRWKV__V1__GENERATE_REQUEST__INIT;
    req.raw_human_message = (char *)j->human;
    req.text = "";
    if (j->has_image_token && j->image) {
        req.image.data = (uint8_t *)j->image;
        req.image.len = j->image_len;
    } else if (j->has_image_token) {
        req.zero_image = 1;
    }
    req.image_position = j->position == VR_IMAGE_FIRST  ? VRWKV__V1__IMAGE_POSITION__IMAGE_POSITION_FIRST
                         : j->position == VR_IMAGE_LAST ? VRWKV__V1__IMAGE_POSITION__IMAGE_POSITION_LAST
                                                        : VRWKV__V1__IMAGE_POSITION__IMAGE_POSITION_MIDDLE;
    req.scan = j->scan == VR_SCAN_UNI     ? VRWKV__V1__SCAN_MODE__SCAN_UNI
               : j->scan == VR_SCAN_MULTI ? VRWKV__V1__SCAN_MODE__SCAN_MULTI
                                          : VRWKV__V1__SCAN_MODE__SCAN_BI;
    req.max_tokens = j->max_tokens;
    int32_t stop = VR_STOP_TOKEN_DEFAULT;
    req.stop_tokens = &stop;
    req.n_stop_tokens = 1;
    size_t n = vrwkv__v1__generate_request__get_packed_size(&req);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        j->status = vr_error_set(&j->err, VR_ERR_NOMEM, "out of memory");
        return -1;
    }
    vrwkv__v1__generate_request__pack(&req, buf);
    vr_rpc_stream *s = NULL;
    vr_status st = vr_rpc_stream_open(b->ch, "/vrwkv.v1.Vrwkv/Generate", b->md, 1, buf, n, 0, &s, &j->err);
    free(buf);
    if (st != VR_OK) {
        j->status = st;
        return -1;
    }
    j->n_tokens = 0;
    j->n_bytes = 0;
    Vrwkv__V1__Final *final = NULL;
    int done = 0;
    while (!done && st == VR_OK) {
        uint8_t *msg = NULL;
        size_t len = 0;
        st = vr_rpc_stream_next(s, &msg, &len, &done, &j->err);
        if (done || st != VR_OK) {
            free(msg);
            break;
        }
        Vrwkv__V1__GenerateResponse *r = vrwkv__v1__generate_response__unpack(NULL, len, msg);
        free(msg);
        if (!r) {
            st = vr_error_set(&j->err, VR_ERR_INTERNAL, "a Generate message is not a GenerateResponse");
            break;
        }
        if (r->event_case == VRWKV__V1__GENERATE_RESPONSE__EVENT_TOKEN && r->token) {
            st = vr_eval_job_add_token(j, r->token->token, r->token->text.data, r->token->text.len, r->token->logit,
                                       r->token->logprob, &j->err);
        } else if (r->event_case == VRWKV__V1__GENERATE_RESPONSE__EVENT_FINAL && r->final && !final) {
            final = r->final;
            r->final = NULL;
            r->event_case = VRWKV__V1__GENERATE_RESPONSE__EVENT__NOT_SET;
        }
        vrwkv__v1__generate_response__free_unpacked(r, NULL);
    }
    int code = -1;
    if (done) {
        const char *smsg = "";
        vr_rpc_stream_status(s, &code, &smsg);
        if (code != VR_RPC_STATUS_OK)
            st = vr_error_set(&j->err, vr_rpc_status_from_code(code), "%s: %s", vr_rpc_status_name(code), smsg);
        else if (!final)
            st = vr_error_set(&j->err, VR_ERR_INTERNAL, "the Generate stream ended without a Final message");
    }
    if (st == VR_OK && final->stop_token && !strcmp(final->finish_reason, "stop")) {
        /* the stop token counts as generated (upstream decodes it and averages over it); its
         * bytes are "\n\n" for 261, the only stop token eval asks for */
        st = vr_eval_job_add_token(j, final->stop_token, "\n\n", final->stop_token == VR_STOP_TOKEN_DEFAULT ? 2 : 0,
                                   final->stop_logit, final->stop_logprob, &j->err);
    }
    if (final) vrwkv__v1__final__free_unpacked(final, NULL);
    vr_rpc_stream_free(s);
    j->status = st;
    return code;
}

static void *cluster_thread(void *p) {
    cluster_backend *b = p;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (!b->n_queue && !b->stopping) pthread_cond_wait(&b->cv_work, &b->mu);
        if (b->stopping) {
            pthread_mutex_unlock(&b->mu);
            return NULL;
        }
        vr_eval_job *j = b->queue[0];
        memmove(b->queue, b->queue + 1, (size_t)(--b->n_queue) * sizeof *b->queue);
        pthread_mutex_unlock(&b->mu);
        /* transient refusals (the server busy or a worker restarting) are retried with backoff */
        for (int attempt = 0;; attempt++) {
            int code = cluster_generate(b, j);
            int transient = code == VR_RPC_STATUS_UNAVAILABLE || code == VR_RPC_STATUS_RESOURCE_EXHAUSTED;
            if (!transient || attempt >= CLUSTER_RETRIES) break;
            struct timespec ts = {0, (long)(50 << attempt) * 1000000L};
            if (ts.tv_nsec >= 1000000000L) ts = (struct timespec){ts.tv_nsec / 1000000000L, ts.tv_nsec % 1000000000L};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&b->mu);
        b->done[b->n_done++] = j;
        pthread_cond_signal(&b->cv_done);
        pthread_mutex_unlock(&b->mu);
    }
}

static vr_status cluster_submit(void *ctx, vr_eval_job *job, vr_error *err) {
    cluster_backend *b = ctx;
    pthread_mutex_lock(&b->mu);
    vr_status st = VR_OK;
    if (b->n_queue + b->n_done >= b->cap) st = vr_error_set(err, VR_ERR_INTERNAL, "eval: cluster queue overflow");
    else {
        b->queue[b->n_queue++] = job;
        pthread_cond_signal(&b->cv_work);
    }
    pthread_mutex_unlock(&b->mu);
    return st;
}

static vr_status cluster_next(void *ctx, vr_eval_job **out, vr_error *err) {
    cluster_backend *b = ctx;
    pthread_mutex_lock(&b->mu);
    while (!b->n_done) pthread_cond_wait(&b->cv_done, &b->mu);
    *out = b->done[0];
    memmove(b->done, b->done + 1, (size_t)(--b->n_done) * sizeof *b->done);
    pthread_mutex_unlock(&b->mu);
    (void)err; /* a failed question carries its own status; the runner decides what it means */
    return VR_OK;
}

static void cluster_backend_free(vr_eval_backend *bk) {
    cluster_backend *b = bk->ctx;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    pthread_cond_broadcast(&b->cv_work);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->n_threads; i++) pthread_join(b->threads[i], NULL);
    vr_rpc_channel_free(b->ch);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv_work);
    pthread_cond_destroy(&b->cv_done);
    free(b->queue);
    free(b->done);
    free(b->threads);
    free(b->auth);
    free(b);
    memset(bk, 0, sizeof *bk);
}

static vr_status cluster_backend_create(const char *addr, const char *key, int concurrency, vr_eval_backend *out,
                                        vr_error *err) {
    memset(out, 0, sizeof *out);
    cluster_backend *b = calloc(1, sizeof *b);
    if (!b) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv_work, NULL);
    pthread_cond_init(&b->cv_done, NULL);
    out->ctx = b;
    out->capacity = concurrency;
    b->cap = concurrency;
    size_t kl = strlen(key);
    b->auth = malloc(kl + 8);
    b->queue = calloc((size_t)concurrency, sizeof *b->queue);
    b->done = calloc((size_t)concurrency, sizeof *b->done);
    b->threads = calloc((size_t)concurrency, sizeof *b->threads);
    if (!b->auth || !b->queue || !b->done || !b->threads) {
        cluster_backend_free(out);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    snprintf(b->auth, kl + 8, "Bearer %s", key);
    b->md[0].key = "authorization";
    b->md[0].value = b->auth;
    vr_status st = vr_rpc_channel_create(addr, &b->ch, err);
    for (int i = 0; st == VR_OK && i < concurrency; i++) {
        if (pthread_create(&b->threads[i], NULL, cluster_thread, b) != 0)
            st = vr_error_set(err, VR_ERR_NOMEM, "cannot start thread %d of %d", i + 1, concurrency);
        else b->n_threads++;
    }
    if (st != VR_OK) {
        cluster_backend_free(out);
        return st;
    }
    out->submit = cluster_submit;
    out->next = cluster_next;
    return VR_OK;
}

#endif /* VRWKV_WITH_SERVICE */

/* ------------------------------------------------------------------ vrwkv eval */

/* --check-answers: every line re-written through eval/answers must give the same bytes. */
static int check_answers(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: cannot read", path);
        return vr_cli_fail("eval", msg);
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0, bad = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        lineno++;
        size_t n = (size_t)got - (line[got - 1] == '\n');
        char *again = NULL;
        size_t len = 0;
        vr_error err = {0};
        if (vr_answer_line_reformat(line, n, &again, &len, &err) != VR_OK) {
            fprintf(stderr, "%s:%zu: %s\n", path, lineno, err.msg);
            bad++;
        } else if (len != n || memcmp(again, line, n) != 0) {
            fprintf(stderr, "%s:%zu: not in upstream's format; expected:\n%s\n", path, lineno, again);
            bad++;
        }
        free(again);
    }
    free(line);
    fclose(f);
    printf("%zu lines, %zu not in upstream's format\n", lineno, bad);
    return bad ? 1 : 0;
}

int vr_cmd_eval(int argc, char **argv) {
    vr_arg args[] = {
        {"addr", VR_ARG_STRING, "a running vrwkv server HOST:PORT (with --api-key)", 0, 0, 0},
        {"api-key", VR_ARG_STRING, "the tenant's API key", 0, 0, 0},
        {"model", VR_ARG_STRING, "in-process: checkpoint (.pth or .safetensors)", 0, 0, 0},
        {"config", VR_ARG_STRING, "in-process: model.json", 0, 0, 0},
        {"vocab", VR_ARG_STRING, "in-process: rwkv_vocab_v20230424.txt", 0, 0, 0},
        {"threads", VR_ARG_STRING, "in-process: CPU threads (default: all)", 0, 0, 0},
        {"backend", VR_ARG_STRING, "in-process: cpu (default) or cuda", 0, 0, 0},
        {"questions", VR_ARG_STRING, "question file (.jsonl, .json or .tsv)", 0, 0, 0},
        {"dataset", VR_ARG_STRING, "default|mmbench|mmbench_cn (upstream --dataset_name)", 0, 0, 0},
        {"images", VR_ARG_STRING, "image folder (upstream --image_folder); none: base64 images (TSV)", 0, 0, 0},
        {"image-position", VR_ARG_STRING, "first|middle|last (default first)", 0, 0, 0},
        {"scan", VR_ARG_STRING, "uni|bi|multi (default bi)", 0, 0, 0},
        {"max-tokens", VR_ARG_STRING, "tokens per answer (default 128)", 0, 0, 0},
        {"out", VR_ARG_STRING, "the answer file (.jsonl)", 0, 0, 0},
        {"concurrency", VR_ARG_STRING, "questions in flight (default 64 with --addr, 16 in-process)", 0, 0, 0},
        {"num-chunks", VR_ARG_STRING, "split the questions like upstream --num-chunks (default 1)", 0, 0, 0},
        {"chunk-idx", VR_ARG_STRING, "answer this chunk (default 0)", 0, 0, 0},
        {"resume", VR_ARG_FLAG, "skip the questions already in --out and append", 0, 0, 0},
        {"model-id", VR_ARG_STRING, "model_id of the answer lines (default: the checkpoint's folder name)", 0, 0, 0},
        {"quiet", VR_ARG_FLAG, "no progress on stderr", 0, 0, 0},
        {"check-answers", VR_ARG_STRING, "only check that every line of an answer file is in upstream's format", 0, 0, 0},
        {"help", VR_ARG_FLAG, "this help", 0, 0, 0},
    };
    int na = (int)(sizeof args / sizeof args[0]);
    const char **pos = NULL;
    int npos = 0;
    vr_error err = {0};
    int rc = 2;
    vr_engine *e = NULL;
    vr_eval_backend b = {0};
    int cluster = 0;
    char model_id[256] = "";
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK) goto fail;
    if (get(args, na, "help")) {
        vr_args_usage("eval",
                      "(--addr HOST:PORT --api-key KEY | --model CKPT [--config model.json] --vocab VOCAB) "
                      "--questions FILE --dataset NAME [--images DIR] --out ANSWERS.jsonl [options]",
                      args, na);
        rc = 0;
        goto done;
    }
    if (npos) {
        vr_error_set(&err, VR_ERR_INVALID, "unexpected argument '%s'", pos[0]);
        goto fail;
    }
    if (get(args, na, "check-answers")) {
        rc = check_answers(get(args, na, "check-answers"));
        goto done;
    }
    vr_eval_options o = {0};
    o.questions_path = get(args, na, "questions");
    o.dataset = get(args, na, "dataset");
    o.images_dir = get(args, na, "images");
    o.out_path = get(args, na, "out");
    o.resume = get(args, na, "resume") != NULL;
    o.position = VR_IMAGE_FIRST;
    o.scan = VR_SCAN_BI;
    o.max_tokens = VR_EVAL_DEFAULT_MAX_TOKENS;
    o.num_chunks = 1;
    o.progress = get(args, na, "quiet") == NULL;
    const char *addr = get(args, na, "addr"), *key = get(args, na, "api-key"), *model = get(args, na, "model");
    const char *s;
    long l;
    if (!o.questions_path) {
        vr_error_set(&err, VR_ERR_INVALID, "--questions is required");
        goto fail;
    }
    if (!o.out_path) {
        vr_error_set(&err, VR_ERR_INVALID, "--out is required");
        goto fail;
    }
    if (!o.dataset) o.dataset = "default";
    if (!!addr == !!model) {
        vr_error_set(&err, VR_ERR_INVALID, "give either --addr (a running server) or --model (in-process)");
        goto fail;
    }
    cluster = addr != NULL;
    if (cluster && !key) {
        vr_error_set(&err, VR_ERR_INVALID, "--addr needs --api-key");
        goto fail;
    }
    if ((s = get(args, na, "image-position")) && vr_image_position_parse(s, &o.position, &err) != VR_OK) goto fail;
    if ((s = get(args, na, "scan")) && vr_scan_mode_parse(s, &o.scan, &err) != VR_OK) goto fail;
    if ((s = get(args, na, "max-tokens"))) {
        if (vr_parse_int("max-tokens", s, 1, 1 << 20, &l, &err) != VR_OK) goto fail;
        o.max_tokens = (int)l;
    }
    int concurrency = cluster ? 64 : 16;
    if ((s = get(args, na, "concurrency"))) {
        if (vr_parse_int("concurrency", s, 1, 1000, &l, &err) != VR_OK) goto fail;
        concurrency = (int)l;
    }
    if ((s = get(args, na, "num-chunks"))) {
        if (vr_parse_int("num-chunks", s, 1, 1 << 20, &l, &err) != VR_OK) goto fail;
        o.num_chunks = (int)l;
    }
    if ((s = get(args, na, "chunk-idx"))) {
        if (vr_parse_int("chunk-idx", s, 0, 1 << 20, &l, &err) != VR_OK) goto fail;
        o.chunk_idx = (int)l;
    }
    if (o.chunk_idx >= o.num_chunks) {
        vr_error_set(&err, VR_ERR_INVALID, "--chunk-idx %d: there are only %d chunks (0..%d)", o.chunk_idx,
                     o.num_chunks, o.num_chunks - 1);
        goto fail;
    }
    if ((s = get(args, na, "model-id"))) snprintf(model_id, sizeof model_id, "%s", s);
    else if (model) vr_eval_model_id(model, model_id, sizeof model_id);
    o.model_id = model_id;
    rc = 1;
    if (cluster) {
#ifdef VRWKV_WITH_SERVICE
        if (cluster_backend_create(addr, key, concurrency, &b, &err) != VR_OK) goto fail;
#else
        vr_error_set(&err, VR_ERR_UNSUPPORTED, "this vrwkv was built without the service: use --model (in-process)");
        goto fail;
#endif
    } else {
        vr_engine_options eo = {.model_path = model, .config_path = get(args, na, "config"),
                                .vocab_path = get(args, na, "vocab")};
        if (!eo.vocab_path) {
            rc = 2;
            vr_error_set(&err, VR_ERR_INVALID, "--vocab is required with --model");
            goto fail;
        }
        if ((s = get(args, na, "threads"))) {
            if (vr_parse_int("threads", s, 1, 1024, &l, &err) != VR_OK) goto fail;
            eo.threads = (int)l;
        }
        eo.backend = get(args, na, "backend");
        if (vr_parse_backend(eo.backend, &err) != VR_OK) {
            rc = 2;
            goto fail;
        }
        if (vr_engine_open(&eo, &e, &err) != VR_OK) goto fail;
        if (vr_eval_engine_backend_create(e, concurrency, &b, &err) != VR_OK) goto fail;
    }
    vr_eval_summary sum;
    if (vr_eval_run(&o, &b, &sum, &err) != VR_OK) goto fail;
    if (o.progress)
        fprintf(stderr, "vrwkv eval: %zu answered, %zu resumed, %zu skipped of %zu in %.1f s (%.2f questions/s)\n",
                sum.answered, sum.resumed, sum.skipped, sum.total, sum.seconds,
                sum.seconds > 0 ? (double)sum.answered / sum.seconds : 0.0);
    rc = 0;
    goto done;
fail:
    vr_cli_fail("eval", err.msg[0] ? err.msg : "out of memory");
done:
#ifdef VRWKV_WITH_SERVICE
    if (cluster) cluster_backend_free(&b);
#endif
    if (!cluster) vr_eval_engine_backend_free(&b);
    vr_engine_free(e);
    vr_args_free(args, na);
    free(pos);
    return rc;
}

/* ------------------------------------------------------------------ vrwkv score */

typedef vr_status (*score_fn)(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err);

static const struct {
    const char *name;
    score_fn fn;
    const char *what;
} scorers[] = {
    {"vqav2", vr_score_vqav2_val, "VQAv2 val (eval_vqa.py)"},
    {"vqav2_testdev", vr_score_vqav2_testdev, "VQAv2 test-dev upload file (convert_vqav2_for_submission.py)"},
    {"gqa", vr_score_gqa, "GQA testdev-balanced (convert_gqa_for_eval.py + eval_gqa.py)"},
    {"sqa", vr_score_scienceqa, "ScienceQA-IMG (eval_science_qa.py)"},
    {"textvqa", vr_score_textvqa, "TextVQA val (eval_textvqa.py)"},
    {"pope", vr_score_pope, "POPE (eval_pope.py)"},
    {"mme", vr_score_mme, "MME perception + cognition (LLaVA converter + official rule; not upstream)"},
    {"mmbench", vr_score_mmbench, "MMBench dev upload table (convert_mmbench_for_submission.py)"},
    {"mmbench_cn", vr_score_mmbench_cn, "MMBench-CN dev upload table (convert_mmbench_for_submission.py)"},
};

/* Distinct experiment names found in the answer folders under a directory. */
typedef struct exp_scan {
    char names[8][256];
    int n;
} exp_scan;
static exp_scan *scan_state; /* nftw takes no context pointer */

static void add_exp(const char *name) {
    for (int i = 0; i < scan_state->n; i++)
        if (!strcmp(scan_state->names[i], name)) return;
    size_t len = strlen(name);
    if (scan_state->n < 8 && len < sizeof scan_state->names[0]) memcpy(scan_state->names[scan_state->n++], name, len + 1);
}

/* The upstream scripts write answers/[<split>/]<exp>/merge.jsonl, or answers/<exp>.jsonl (MME). */
static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    if (type != FTW_F || !strstr(path, "/answers/")) return 0;
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    char *base = strrchr(copy, '/');
    if (!base) return 0;
    *base++ = 0;
    const char *parent = strrchr(copy, '/');
    parent = parent ? parent + 1 : copy;
    size_t n = strlen(base);
    if (!strcmp(base, "merge.jsonl")) add_exp(parent);
    else if (!strcmp(parent, "answers") && n > 6 && !strcmp(base + n - 6, ".jsonl")) {
        base[n - 6] = 0;
        add_exp(base);
    }
    return 0;
}

/* How many experiments <dir> holds answers of; the first one's name in *name. */
static int find_experiments(const char *dir, char *name, size_t cap) {
    exp_scan scan;
    memset(&scan, 0, sizeof scan);
    scan_state = &scan;
    nftw(dir, visit, 16, FTW_PHYS);
    scan_state = NULL;
    snprintf(name, cap, "%s", scan.n ? scan.names[0] : "");
    return scan.n;
}

int vr_cmd_score(int argc, char **argv) {
    vr_arg args[] = {
        {"dataset", VR_ARG_STRING, "the benchmark (see below)", 0, 0, 0},
        {"eval-dir", VR_ARG_STRING, "the folder laid out as upstream's $eval_dir", 0, 0, 0},
        {"answers", VR_ARG_STRING, "the answer file (default: where the upstream script reads it)", 0, 0, 0},
        {"exp-name", VR_ARG_STRING, "the answer folder name <parent>_<stem> of the checkpoint", 0, 0, 0},
        {"split", VR_ARG_STRING, "the split, where a benchmark has several", 0, 0, 0},
        {"annotations", VR_ARG_STRING, "ground-truth file instead of the upstream path", 0, 0, 0},
        {"questions", VR_ARG_STRING, "question file instead of the upstream path", 0, 0, 0},
        {"allow-missing", VR_ARG_FLAG, "score questions without an answer as wrong (and say so)", 0, 0, 0},
        {"json", VR_ARG_FLAG, "print every figure as one JSON object", 0, 0, 0},
        {"help", VR_ARG_FLAG, "this help", 0, 0, 0},
    };
    int na = (int)(sizeof args / sizeof args[0]);
    const char **pos = NULL;
    int npos = 0;
    vr_error err = {0};
    int rc = 2;
    vr_score_report rep = {0};
    size_t n_scorers = sizeof scorers / sizeof scorers[0];
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK) goto fail;
    if (get(args, na, "help")) {
        vr_args_usage("score", "--dataset NAME --eval-dir DIR [--answers FILE] [--allow-missing] [--json]", args, na);
        fprintf(stderr, "\ndatasets:\n");
        for (size_t i = 0; i < n_scorers; i++) fprintf(stderr, "  %-14s %s\n", scorers[i].name, scorers[i].what);
        rc = 0;
        goto done;
    }
    if (npos) {
        vr_error_set(&err, VR_ERR_INVALID, "unexpected argument '%s'", pos[0]);
        goto fail;
    }
    const char *dataset = get(args, na, "dataset"), *dir = get(args, na, "eval-dir");
    if (!dataset || !dir) {
        vr_error_set(&err, VR_ERR_INVALID, "--dataset and --eval-dir are required");
        goto fail;
    }
    score_fn fn = NULL;
    for (size_t i = 0; i < n_scorers; i++)
        if (!strcmp(dataset, scorers[i].name)) fn = scorers[i].fn;
    if (!fn) {
        char names[512] = "";
        size_t k = 0;
        for (size_t i = 0; i < n_scorers && k < sizeof names; i++)
            k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", i ? ", " : "", scorers[i].name);
        vr_error_set(&err, VR_ERR_INVALID, "--dataset '%s' is not one of %s", dataset, names);
        goto fail;
    }
    vr_score_options o = {0};
    o.answers_path = get(args, na, "answers");
    o.annotation_path = get(args, na, "annotations");
    o.question_path = get(args, na, "questions");
    o.exp_name = get(args, na, "exp-name");
    o.split = get(args, na, "split");
    o.allow_missing = get(args, na, "allow-missing") != NULL;
    char found_exp[256] = "";
    if (!o.answers_path && !o.exp_name) {
        /* the upstream scripts keep answers in answers/<split>/<exp_name>/: with one experiment
         * there, it is the one to score */
        int n_exp = find_experiments(dir, found_exp, sizeof found_exp);
        if (n_exp == 1) o.exp_name = found_exp;
        else if (n_exp > 1) {
            vr_error_set(&err, VR_ERR_INVALID,
                         "%s holds answers of several experiments: name one with --exp-name or --answers", dir);
            goto fail;
        }
    }
    rc = 1;
    if (fn(dir, &o, &rep, &err) != VR_OK) goto fail;
    if (get(args, na, "json")) {
        char *j = rep.json ? cJSON_PrintUnformatted(rep.json) : NULL;
        printf("%s\n", j ? j : "{}");
        free(j);
    } else {
        fputs(rep.stdout_text ? rep.stdout_text : "", stdout);
    }
    if (fflush(stdout) != 0) {
        vr_error_set(&err, VR_ERR_IO, "cannot write to stdout");
        goto fail;
    }
    rc = 0;
    goto done;
fail:
    vr_cli_fail("score", err.msg[0] ? err.msg : "out of memory");
done:
    vr_score_report_free(&rep);
    vr_args_free(args, na);
    free(pos);
    return rc;
}
