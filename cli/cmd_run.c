/* cli/cmd_run.c — `vrwkv run` (one question + follow-ups, streamed or as one JSON object) and
 * `vrwkv chat` (interactive). Argument handling and printing only: the dialogue itself is
 * model/engine's turn loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_writer.h"
#include "common/mapped_file.h"
#include "common/pytext.h"
#include "model/engine.h"

enum { MAX_IMAGE_BYTES = 64 << 20 };

typedef struct dialogue_options {
    vr_engine_options engine;
    const char *image_path;
    vr_image_position position;
    vr_scan_mode scan;
    vr_sampling_params sampling;
    int max_tokens;
    int32_t stop_tokens[16];
    int n_stop_tokens;
} dialogue_options;

#define COMMON_ARGS                                                                                              \
    {"model", VR_ARG_STRING, "checkpoint (.pth or .safetensors)", 0, 0, 0},                                      \
        {"config", VR_ARG_STRING, "model.json with what the shapes cannot tell", 0, 0, 0},                       \
        {"vocab", VR_ARG_STRING, "rwkv_vocab_v20230424.txt", 0, 0, 0},                                           \
        {"image", VR_ARG_STRING, "JPEG or PNG file", 0, 0, 0},                                                   \
        {"image-position", VR_ARG_STRING, "first|middle|last (default middle)", 0, 0, 0},                        \
        {"scan", VR_ARG_STRING, "uni|bi|multi (default bi)", 0, 0, 0},                                           \
        {"max-tokens", VR_ARG_STRING, "tokens per answer (default 100)", 0, 0, 0},                              \
        {"temperature", VR_ARG_STRING, "0 = greedy (default)", 0, 0, 0},                                         \
        {"top-p", VR_ARG_STRING, "nucleus sampling (default 1)", 0, 0, 0},                                       \
        {"top-k", VR_ARG_STRING, "0 = off (default)", 0, 0, 0},                                                  \
        {"presence-penalty", VR_ARG_STRING, "default 0", 0, 0, 0},                                               \
        {"frequency-penalty", VR_ARG_STRING, "default 0", 0, 0, 0},                                              \
        {"seed", VR_ARG_STRING, "sampling seed (default 0)", 0, 0, 0},                                           \
        {"stop", VR_ARG_LIST, "stop token id (default 261)", 0, 0, 0},                                           \
        {"threads", VR_ARG_STRING, "CPU threads (default: all)", 0, 0, 0},                                        \
        {"backend", VR_ARG_STRING, "cpu|cuda (default cpu)", 0, 0, 0}, {"help", VR_ARG_FLAG, "this help", 0, 0, 0}

static const char *get(vr_arg *a, int n, const char *name) { return vr_args_get(a, n, name)->value; }

static vr_status parse_dialogue(vr_arg *a, int n, dialogue_options *o, vr_error *err) {
    memset(o, 0, sizeof *o);
    o->engine.model_path = get(a, n, "model");
    o->engine.config_path = get(a, n, "config");
    o->engine.vocab_path = get(a, n, "vocab");
    o->image_path = get(a, n, "image");
    if (!o->engine.model_path) return vr_error_set(err, VR_ERR_INVALID, "--model is required");
    if (!o->engine.vocab_path) return vr_error_set(err, VR_ERR_INVALID, "--vocab is required");
    o->position = VR_IMAGE_MIDDLE;
    o->scan = VR_SCAN_BI;
    o->max_tokens = 100;
    vr_sampling_params_default(&o->sampling);
    const char *s;
    long l;
    double d;
    vr_status st;
    if ((s = get(a, n, "image-position")) && (st = vr_image_position_parse(s, &o->position, err))) return st;
    if ((s = get(a, n, "scan")) && (st = vr_scan_mode_parse(s, &o->scan, err))) return st;
    if ((s = get(a, n, "max-tokens"))) {
        if ((st = vr_parse_int("max-tokens", s, 1, 1 << 20, &l, err))) return st;
        o->max_tokens = (int)l;
    }
    if ((s = get(a, n, "temperature"))) {
        if ((st = vr_parse_float("temperature", s, 0, 100, &d, err))) return st;
        o->sampling.temperature = (float)d;
    }
    if ((s = get(a, n, "top-p"))) {
        if ((st = vr_parse_float("top-p", s, 0, 1, &d, err))) return st;
        o->sampling.top_p = (float)d;
    }
    if ((s = get(a, n, "top-k"))) {
        if ((st = vr_parse_int("top-k", s, 0, 1 << 20, &l, err))) return st;
        o->sampling.top_k = (int)l;
    }
    if ((s = get(a, n, "presence-penalty"))) {
        if ((st = vr_parse_float("presence-penalty", s, -100, 100, &d, err))) return st;
        o->sampling.presence_penalty = (float)d;
    }
    if ((s = get(a, n, "frequency-penalty"))) {
        if ((st = vr_parse_float("frequency-penalty", s, -100, 100, &d, err))) return st;
        o->sampling.frequency_penalty = (float)d;
    }
    if ((s = get(a, n, "seed")) && (st = vr_parse_u64("seed", s, &o->sampling.seed, err))) return st;
    if ((s = get(a, n, "threads"))) {
        if ((st = vr_parse_int("threads", s, 1, 1024, &l, err))) return st;
        o->engine.threads = (int)l;
    }
    if ((st = vr_parse_backend(get(a, n, "backend"), err))) return st;
    o->engine.backend = get(a, n, "backend");
    vr_arg *stop = vr_args_get(a, n, "stop");
    if (stop->n_values > 16) return vr_error_set(err, VR_ERR_INVALID, "--stop: at most 16 stop tokens");
    for (int i = 0; i < stop->n_values; i++) {
        if ((st = vr_parse_int("stop", stop->values[i], 0, 65535, &l, err))) return st;
        o->stop_tokens[o->n_stop_tokens++] = (int32_t)l;
    }
    return vr_sampling_params_check(&o->sampling, err);
}

/* Streams token bytes to stdout without splitting a UTF-8 character across writes. */
typedef struct stream_ctx {
    int enabled;
    char pending[64];
    size_t n_pending;
    vr_strbuf text; /* the whole answer's bytes */
} stream_ctx;

static int on_token(void *p, int32_t token, const char *bytes, size_t len) {
    (void)token;
    stream_ctx *c = p;
    if (vr_strbuf_append(&c->text, bytes, len) != VR_OK) return 1;
    if (c->enabled) {
        for (size_t i = 0; i < len; i++) {
            if (c->n_pending == sizeof c->pending) {
                fwrite(c->pending, 1, c->n_pending, stdout);
                c->n_pending = 0;
            }
            c->pending[c->n_pending++] = bytes[i];
        }
        size_t ok = vr_utf8_complete_prefix(c->pending, c->n_pending);
        if (ok) {
            fwrite(c->pending, 1, ok, stdout);
            memmove(c->pending, c->pending + ok, c->n_pending - ok);
            c->n_pending -= ok;
            fflush(stdout);
        }
    }
    return 0;
}

static void stream_end(stream_ctx *c) {
    if (c->enabled) {
        fwrite(c->pending, 1, c->n_pending, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    c->n_pending = 0;
}

typedef struct turn_record {
    int32_t *prompt;
    int n_prompt;
    vr_turn_result result;
    char *text;
    size_t n_text;
} turn_record;

static vr_status load_image_features(vr_engine *e, const char *path, float **features, vr_error *err) {
    char *data = NULL;
    size_t size = 0;
    vr_status st = vr_read_file(path, MAX_IMAGE_BYTES, &data, &size, err);
    if (st != VR_OK) return st;
    st = vr_engine_encode_image(e, (const uint8_t *)data, size, path, features, err);
    free(data);
    return st;
}

/* What a dialogue runs on. */
typedef struct dialogue {
    vr_engine *e;
    float *features; /* the image's, NULL without --image */
    vr_session *s;
    vr_sampler *sampler;
} dialogue;

/* Opens the engine, encodes the image (when there is one), creates the session and the
 * sampler. On failure what was made stays in d: dialogue_close frees it. */
static vr_status dialogue_open(const dialogue_options *o, dialogue *d, vr_error *err) {
    vr_status st;
    memset(d, 0, sizeof *d);
    if ((st = vr_engine_open(&o->engine, &d->e, err)) != VR_OK) return st;
    if (o->image_path && (st = load_image_features(d->e, o->image_path, &d->features, err)) != VR_OK) return st;
    if ((st = vr_session_create(d->e, o->scan, &d->s, err)) != VR_OK) return st;
    return vr_sampler_create(&o->sampling, d->e->cfg.vocab_size, &d->sampler, err);
}

static void dialogue_close(dialogue *d) {
    free(d->features);
    vr_sampler_free(d->sampler);
    vr_session_free(d->s);
    vr_engine_free(d->e);
    memset(d, 0, sizeof *d);
}

/* One user turn: build the prompt, run the turn loop, record it. The image goes with the first
 * turn. */
static vr_status do_turn(const dialogue *d, const dialogue_options *o, const char *question, int first, int stream,
                         turn_record *rec, vr_error *err) {
    vr_engine *e = d->e;
    const float *features = first ? d->features : NULL;
    memset(rec, 0, sizeof *rec);
    vr_status st = first ? vr_prompt_first_turn(e->tok, question, features != NULL, o->position, &rec->prompt,
                                                &rec->n_prompt, err)
                         : vr_prompt_next_turn(e->tok, question, &rec->prompt, &rec->n_prompt, err);
    if (st != VR_OK) return st;
    vr_turn_options topt = {o->max_tokens, o->stop_tokens, o->n_stop_tokens};
    stream_ctx sc = {.enabled = stream};
    vr_sampler_reset(d->sampler);
    st = vr_session_turn(e, d->s, d->sampler, rec->prompt, rec->n_prompt, features, e->cfg.num_image_tokens, &topt,
                         on_token, &sc, &rec->result, err);
    stream_end(&sc);
    rec->text = sc.text.p;
    rec->n_text = sc.text.n;
    return st;
}

static void turn_record_free(turn_record *r) {
    free(r->prompt);
    free(r->text);
    vr_turn_result_free(&r->result);
}

static void print_turn_json(const turn_record *r) {
    printf("\"prompt_tokens\": ");
    vr_json_ints(stdout, r->prompt, r->n_prompt);
    printf(", \"tokens\": ");
    vr_json_ints(stdout, r->result.tokens, r->result.n_tokens);
    printf(", \"text\": ");
    vr_json_string(stdout, r->text ? r->text : "", r->n_text);
    printf(", \"finish_reason\": \"%s\"", r->result.stopped ? "stop" : "length");
}

static vr_status write_logits(const char *path, const float *logits, int n, vr_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return vr_error_set(err, VR_ERR_IO, "%s: cannot write", path);
    size_t w = fwrite(logits, sizeof(float), (size_t)n, f); /* little-endian hosts only (x86-64, arm64) */
    if (fclose(f) != 0 || w != (size_t)n) return vr_error_set(err, VR_ERR_IO, "%s: write failed", path);
    return VR_OK;
}

int vr_cmd_run(int argc, char **argv) {
    vr_arg args[] = {COMMON_ARGS,
                     {"prompt", VR_ARG_STRING, "the user's question (no <image> marker)", 0, 0, 0},
                     {"followup", VR_ARG_LIST, "a further user turn in the same dialogue", 0, 0, 0},
                     {"json", VR_ARG_FLAG, "print one JSON object instead of streaming", 0, 0, 0},
                     {"dump-logits", VR_ARG_STRING, "write the logits that chose the first token (f32 LE)", 0, 0, 0}};
    int na = (int)(sizeof args / sizeof args[0]);
    const char **pos = NULL;
    int npos = 0;
    vr_error err = {0};
    int rc = 1;
    dialogue d = {0};
    turn_record *turns = NULL;
    int n_turns = 0;
    dialogue_options o;
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK) goto usage;
    if (get(args, na, "help")) {
        vr_args_usage("run", "--model CKPT --vocab VOCAB [--image IMG] --prompt TEXT [options]", args, na);
        rc = 0;
        goto done;
    }
    if (npos) {
        vr_error_set(&err, VR_ERR_INVALID, "unexpected argument '%s'", pos[0]);
        goto usage;
    }
    if (parse_dialogue(args, na, &o, &err) != VR_OK) goto usage;
    const char *prompt = get(args, na, "prompt");
    if (!prompt) {
        vr_error_set(&err, VR_ERR_INVALID, "--prompt is required");
        goto usage;
    }
    int json = get(args, na, "json") != NULL;
    const char *dump = get(args, na, "dump-logits");
    vr_arg *follow = vr_args_get(args, na, "followup");
    if (dialogue_open(&o, &d, &err) != VR_OK) goto fail;
    turns = calloc((size_t)follow->n_values + 1, sizeof *turns);
    if (!turns) goto fail;
    for (int t = 0; t <= follow->n_values; t++) {
        const char *q = t == 0 ? prompt : follow->values[t - 1];
        if (do_turn(&d, &o, q, t == 0, !json, &turns[t], &err) != VR_OK) {
            n_turns = t + 1;
            goto fail;
        }
        n_turns = t + 1;
        if (t == 0 && dump && write_logits(dump, turns[0].result.first_logits, d.e->cfg.vocab_size, &err) != VR_OK)
            goto fail;
    }
    if (json) {
        printf("{");
        print_turn_json(&turns[0]);
        printf(", \"turns\": [");
        for (int t = 1; t < n_turns; t++) {
            printf("%s{", t > 1 ? ", " : "");
            print_turn_json(&turns[t]);
            printf("}");
        }
        printf("]}\n");
    }
    rc = 0;
    goto done;
usage:
    rc = 2;
fail:
    if (rc) vr_cli_fail("run", err.msg[0] ? err.msg : "out of memory");
done:
    for (int t = 0; t < n_turns; t++) turn_record_free(&turns[t]);
    free(turns);
    dialogue_close(&d);
    vr_args_free(args, na);
    free(pos);
    return rc;
}

static char *read_line(FILE *f) {
    size_t cap = 256, n = 0;
    char *buf = malloc(cap);
    int c;
    if (!buf) return NULL;
    while ((c = fgetc(f)) != EOF && c != '\n') {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        buf[n++] = (char)c;
    }
    if (c == EOF && n == 0) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

int vr_cmd_chat(int argc, char **argv) {
    vr_arg args[] = {COMMON_ARGS};
    int na = (int)(sizeof args / sizeof args[0]);
    const char **pos = NULL;
    int npos = 0;
    vr_error err = {0};
    int rc = 1;
    dialogue d = {0};
    dialogue_options o;
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK || npos) {
        if (npos) vr_error_set(&err, VR_ERR_INVALID, "unexpected argument '%s'", pos[0]);
        rc = 2;
        goto fail;
    }
    if (get(args, na, "help")) {
        vr_args_usage("chat", "--model CKPT --vocab VOCAB [--image IMG] [options]", args, na);
        rc = 0;
        goto done;
    }
    if (parse_dialogue(args, na, &o, &err) != VR_OK) {
        rc = 2;
        goto fail;
    }
    if (dialogue_open(&o, &d, &err) != VR_OK) goto fail;
    fprintf(stderr, "vrwkv chat: %d layers, n_embd %d%s. Empty line or Ctrl-D ends.\n", d.e->cfg.n_layer,
            d.e->cfg.n_embd, d.features ? ", image attached to the first turn" : "");
    for (int t = 0;; t++) {
        fputs("User: ", stdout);
        fflush(stdout);
        char *line = read_line(stdin);
        if (!line || !line[0]) {
            free(line);
            break;
        }
        fputs("Assistant:", stdout);
        turn_record rec;
        vr_status st = do_turn(&d, &o, line, t == 0, 1, &rec, &err);
        free(line);
        turn_record_free(&rec);
        if (st != VR_OK) {
            /* a refused question (e.g. a literal <image>) does not end the dialogue */
            fprintf(stderr, "vrwkv chat: %s\n", err.msg);
            if (st != VR_ERR_INVALID) goto fail;
            t--;
        }
    }
    rc = 0;
    goto done;
fail:
    if (rc) vr_cli_fail("chat", err.msg[0] ? err.msg : "out of memory");
done:
    dialogue_close(&d);
    vr_args_free(args, na);
    free(pos);
    return rc;
}
