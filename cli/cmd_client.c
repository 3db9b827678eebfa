/* cli/cmd_client.c — `vrwkv client`: talks to a running vrwkv server over gRPC (Generate,
 * streamed or as one JSON object; GetSession, DeleteSession, ListModels; grpc.health.v1 Check).
 * Argument handling, message packing and printing only. Must not depend on the model or load
 * anything of it: it speaks the public API (proto/vrwkv.proto) through proto/rpc.h and nothing
 * else. Built only with the service (VRWKV_WITH_SERVICE). */
#ifdef VRWKV_WITH_SERVICE

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_writer.h"
#include "model/tokenizer.h"
#include "common/mapped_file.h"
#include "common/pytext.h"
#include "proto/health.pb-c.h"
#include "proto/rpc.h"
#include "proto/vrwkv.pb-c.h"

enum { CLIENT_MAX_IMAGE_BYTES = 48 << 20, CLIENT_MAX_STOP = 16, HEALTH_DEFAULT_TIMEOUT_MS = 5000 };

static const char *get(vr_arg *a, int n, const char *name) { return vr_args_get(a, n, name)->value; }

/* Prints "vrwkv client: <STATUS_NAME>: <message>" for a failed call and returns 1. */
static int rpc_fail(int code, const char *server_msg, const vr_error *err) {
    if (code < 0) /* the call could not be made at all */
        fprintf(stderr, "vrwkv client: %s: %s\n", vr_rpc_status_name(vr_rpc_code_from_status(err->code)), err->msg);
    else
        fprintf(stderr, "vrwkv client: %s: %s\n", vr_rpc_status_name(code),
                server_msg && server_msg[0] ? server_msg : err->msg);
    return 1;
}


/* The answer as it arrives: ids, bytes, and the not-yet-printed tail of a UTF-8 character. */
typedef struct answer {
    int stream;
    int32_t *tokens;
    int n_tokens, cap_tokens;
    vr_strbuf text;
    size_t n_printed; /* bytes of text already written to stdout */
} answer;

static int answer_add(answer *a, int32_t token, const uint8_t *bytes, size_t len) {
    if (a->n_tokens == a->cap_tokens) {
        int cap = a->cap_tokens ? a->cap_tokens * 2 : 64;
        int32_t *t = realloc(a->tokens, (size_t)cap * sizeof *t);
        if (!t) return 1;
        a->tokens = t;
        a->cap_tokens = cap;
    }
    a->tokens[a->n_tokens++] = token;
    if (vr_strbuf_append(&a->text, bytes, len) != VR_OK) return 1;
    if (a->stream) {
        size_t ok = a->n_printed + vr_utf8_complete_prefix(a->text.p + a->n_printed, a->text.n - a->n_printed);
        if (ok > a->n_printed) {
            fwrite(a->text.p + a->n_printed, 1, ok - a->n_printed, stdout);
            fflush(stdout);
            a->n_printed = ok;
        }
    }
    return 0;
}

/* Flushes what is held back; ends the line when anything was printed or the call succeeded. */
static void answer_end(answer *a, int ok) {
    if (!a->stream) return;
    if (ok && a->text.n > a->n_printed) { /* a failed answer drops an unfinished character */
        fwrite(a->text.p + a->n_printed, 1, a->text.n - a->n_printed, stdout);
        a->n_printed = a->text.n;
    }
    if (ok || a->n_printed) fputc('\n', stdout);
    fflush(stdout);
}

/* ---- Ctrl-C: the signal handler only posts a semaphore; a watcher thread cancels the stream. */

static sem_t g_wake;
static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig) {
    (void)sig;
    g_interrupted = 1;
    sem_post(&g_wake); /* async-signal-safe */
}

typedef struct watcher {
    vr_rpc_stream *stream;
    atomic_int finished;
} watcher;

static void *watch_main(void *p) {
    watcher *w = p;
    while (sem_wait(&g_wake) != 0) {
    }
    if (g_interrupted && !atomic_load(&w->finished)) vr_rpc_stream_cancel(w->stream);
    return NULL;
}

/* ---- requests */

typedef struct client_ctx {
    vr_rpc_channel *ch;
    vr_rpc_metadata md[1];
    int n_md;
    int64_t timeout_ms;
    char *auth; /* "Bearer KEY" */
} client_ctx;

static int do_health(client_ctx *c) {
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = "";
    uint8_t buf[64];
    size_t n = grpc__health__v1__health_check_request__pack(&req, buf);
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    int code = -1;
    char *msg = NULL;
    vr_error err = {0};
    int64_t timeout = c->timeout_ms > 0 ? c->timeout_ms : HEALTH_DEFAULT_TIMEOUT_MS;
    if (vr_rpc_unary(c->ch, "/grpc.health.v1.Health/Check", NULL, 0, buf, n, timeout, &resp, &resp_len, &code, &msg,
                     &err) != VR_OK) {
        int rc = rpc_fail(code, msg, &err);
        free(msg);
        return rc;
    }
    free(msg);
    Grpc__Health__V1__HealthCheckResponse *r = grpc__health__v1__health_check_response__unpack(NULL, resp_len, resp);
    free(resp);
    if (!r) return vr_cli_fail("client", "the health response is not a HealthCheckResponse");
    int serving = r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    const char *name = serving ? "SERVING"
                       : r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                           ? "NOT_SERVING"
                       : r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
                           ? "SERVICE_UNKNOWN"
                           : "UNKNOWN";
    printf("%s\n", name);
    grpc__health__v1__health_check_response__free_unpacked(r, NULL);
    return serving ? 0 : 1;
}

/* One unary call of the public API, its response decoded as a `reply` message (the caller frees
 * it with the type's free_unpacked). NULL after printing why: the call failed, or the response is
 * not a `reply` (bad_reply says so). */
static ProtobufCMessage *unary(client_ctx *c, const char *method, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *reply, const char *bad_reply) {
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        vr_cli_fail("client", "out of memory");
        return NULL;
    }
    protobuf_c_message_pack(req, buf);
    int code = -1;
    char *msg = NULL;
    uint8_t *resp = NULL;
    size_t len = 0;
    vr_error err = {0};
    vr_status st = vr_rpc_unary(c->ch, method, c->md, c->n_md, buf, n, c->timeout_ms, &resp, &len, &code, &msg, &err);
    free(buf);
    if (st != VR_OK) {
        rpc_fail(code, msg, &err);
        free(msg);
        free(resp);
        return NULL;
    }
    free(msg);
    ProtobufCMessage *m = protobuf_c_message_unpack(reply, NULL, len, resp);
    free(resp);
    if (!m) vr_cli_fail("client", bad_reply);
    return m;
}

static int do_get_session(client_ctx *c, const char *id) {
    Vrwkv__V1__GetSessionRequest req = VRWKV__V1__GET_SESSION_REQUEST__INIT;
    req.session_id = (char *)id;
    Vrwkv__V1__Session *s = (Vrwkv__V1__Session *)unary(c, "/vrwkv.v1.Vrwkv/GetSession", &req.base,
                                                        &vrwkv__v1__session__descriptor,
                                                        "the GetSession response is not a Session");
    if (!s) return 1;
    printf("{\"session_id\": ");
    vr_json_string(stdout, s->session_id, strlen(s->session_id));
    printf(", \"committed_turn\": %llu, \"token_count\": %lld, \"created_unix_ms\": %lld, \"updated_unix_ms\": %lld, "
           "\"has_image\": %s, \"model\": ",
           (unsigned long long)s->committed_turn, (long long)s->token_count, (long long)s->created_unix_ms,
           (long long)s->updated_unix_ms, s->has_image ? "true" : "false");
    vr_json_string(stdout, s->model, strlen(s->model));
    printf("}\n");
    vrwkv__v1__session__free_unpacked(s, NULL);
    return 0;
}

static int do_delete_session(client_ctx *c, const char *id) {
    Vrwkv__V1__DeleteSessionRequest req = VRWKV__V1__DELETE_SESSION_REQUEST__INIT;
    req.session_id = (char *)id;
    Vrwkv__V1__DeleteSessionResponse *r = (Vrwkv__V1__DeleteSessionResponse *)unary(
        c, "/vrwkv.v1.Vrwkv/DeleteSession", &req.base, &vrwkv__v1__delete_session_response__descriptor,
        "the DeleteSession response is not a DeleteSessionResponse");
    if (!r) return 1;
    printf("{\"deleted\": %s}\n", r->deleted ? "true" : "false");
    vrwkv__v1__delete_session_response__free_unpacked(r, NULL);
    return 0;
}

static int do_list_models(client_ctx *c) {
    Vrwkv__V1__ListModelsRequest req = VRWKV__V1__LIST_MODELS_REQUEST__INIT;
    Vrwkv__V1__ListModelsResponse *r = (Vrwkv__V1__ListModelsResponse *)unary(
        c, "/vrwkv.v1.Vrwkv/ListModels", &req.base, &vrwkv__v1__list_models_response__descriptor,
        "the ListModels response is not a ListModelsResponse");
    if (!r) return 1;
    printf("{\"models\": [");
    for (size_t i = 0; i < r->n_models; i++) {
        const Vrwkv__V1__Model *m = r->models[i];
        printf("%s{\"name\": ", i ? ", " : "");
        vr_json_string(stdout, m->name, strlen(m->name));
        printf(", \"n_layer\": %d, \"n_embd\": %d, \"vocab_size\": %d, \"has_vision\": %s}", m->n_layer, m->n_embd,
               m->vocab_size, m->has_vision ? "true" : "false");
    }
    printf("]}\n");
    vrwkv__v1__list_models_response__free_unpacked(r, NULL);
    return 0;
}

static void print_generate_json(const answer *a, const Vrwkv__V1__Final *f) {
    printf("{\"prompt_tokens\": ");
    vr_json_ints(stdout, f->prompt_tokens, (int)f->n_prompt_tokens);
    printf(", \"tokens\": ");
    vr_json_ints(stdout, a->tokens, a->n_tokens);
    printf(", \"text\": ");
    vr_json_string(stdout, a->text.p ? a->text.p : "", a->text.n);
    printf(", \"finish_reason\": ");
    vr_json_string(stdout, f->finish_reason, strlen(f->finish_reason));
    printf(", \"turns\": [], \"session\": ");
    vr_json_string(stdout, f->session_id, strlen(f->session_id));
    printf(", \"committed_turn\": %llu", (unsigned long long)f->committed_turn);
    const Vrwkv__V1__Usage *u = f->usage;
    printf(", \"usage\": {\"prompt_tokens\": %d, \"image_tokens\": %d, \"generated_tokens\": %d}",
           u ? u->prompt_tokens : 0, u ? u->image_tokens : 0, u ? u->generated_tokens : 0);
    const Vrwkv__V1__Timings *t = f->timings;
    printf(", \"timings\": {\"queue_ms\": %.3f, \"time_to_first_token_ms\": %.3f, \"total_ms\": %.3f}}\n",
           t ? t->queue_ms : 0.0, t ? t->time_to_first_token_ms : 0.0, t ? t->total_ms : 0.0);
    fflush(stdout);
}

static int do_generate(client_ctx *c, Vrwkv__V1__GenerateRequest *req, int json) {
    size_t n = vrwkv__v1__generate_request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return vr_cli_fail("client", "out of memory");
    vrwkv__v1__generate_request__pack(req, buf);
    vr_error err = {0};
    vr_rpc_stream *s = NULL;
    vr_status st = vr_rpc_stream_open(c->ch, "/vrwkv.v1.Vrwkv/Generate", c->md, c->n_md, buf, n, c->timeout_ms, &s,
                                      &err);
    free(buf);
    if (st != VR_OK) return rpc_fail(-1, NULL, &err);

    /* Ctrl-C / SIGTERM cancel the call (the server sees the cancellation and frees its slot). */
    watcher w = {.stream = s};
    pthread_t th;
    int have_watcher = 0;
    struct sigaction sa, old_int, old_term;
    if (sem_init(&g_wake, 0, 0) == 0) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        if (pthread_create(&th, NULL, watch_main, &w) == 0) {
            have_watcher = 1;
            sigaction(SIGINT, &sa, &old_int);
            sigaction(SIGTERM, &sa, &old_term);
        }
    }

    answer a = {.stream = !json};
    Vrwkv__V1__Final *final = NULL;
    int rc = 0, done = 0;
    while (!done) {
        uint8_t *msg = NULL;
        size_t len = 0;
        st = vr_rpc_stream_next(s, &msg, &len, &done, &err);
        if (done || st != VR_OK) {
            free(msg);
            break;
        }
        Vrwkv__V1__GenerateResponse *r = vrwkv__v1__generate_response__unpack(NULL, len, msg);
        free(msg);
        if (!r) {
            rc = vr_cli_fail("client", "a Generate message is not a GenerateResponse");
            break;
        }
        if (r->event_case == VRWKV__V1__GENERATE_RESPONSE__EVENT_TOKEN && r->token) {
            if (answer_add(&a, r->token->token, r->token->text.data, r->token->text.len)) {
                rc = vr_cli_fail("client", "out of memory");
                vrwkv__v1__generate_response__free_unpacked(r, NULL);
                break;
            }
        } else if (r->event_case == VRWKV__V1__GENERATE_RESPONSE__EVENT_FINAL && r->final && !final) {
            final = r->final;
            r->final = NULL; /* keep it; the response shell is freed below */
            r->event_case = VRWKV__V1__GENERATE_RESPONSE__EVENT__NOT_SET;
        }
        vrwkv__v1__generate_response__free_unpacked(r, NULL);
    }
    if (!rc && st != VR_OK && !done) { /* transport error before the end */
        answer_end(&a, 0);
        rc = rpc_fail(-1, NULL, &err);
    } else if (!rc) {
        int code = 0;
        const char *smsg = "";
        vr_rpc_stream_status(s, &code, &smsg);
        answer_end(&a, code == VR_RPC_STATUS_OK);
        if (code != VR_RPC_STATUS_OK) {
            rc = rpc_fail(code, g_interrupted ? "interrupted" : smsg, &err);
        } else if (!final) {
            rc = vr_cli_fail("client", "INTERNAL: the stream ended without a Final message");
        } else if (json) {
            print_generate_json(&a, final);
        } else if (final->session_id[0]) {
            fprintf(stderr, "session: %s (turn %llu, %s)\n", final->session_id,
                    (unsigned long long)final->committed_turn, final->finish_reason);
        }
    }

    if (have_watcher) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        atomic_store(&w.finished, 1);
        sem_post(&g_wake);
        pthread_join(th, NULL);
        sem_destroy(&g_wake);
    }
    vr_rpc_stream_free(s);
    if (final) vrwkv__v1__final__free_unpacked(final, NULL);
    free(a.tokens);
    vr_strbuf_free(&a.text);
    return rc;
}

static vr_status parse_generate(vr_arg *a, int n, Vrwkv__V1__GenerateRequest *req, Vrwkv__V1__SamplingOptions *so,
                                int32_t *stops, vr_error *err) {
    const char *s;
    long l;
    double d;
    vr_status st;
    if ((s = get(a, n, "session"))) req->session_id = (char *)s;
    req->new_session = get(a, n, "new-session") != NULL;
    if ((s = get(a, n, "image-position"))) {
        if (!strcmp(s, "first")) req->image_position = VRWKV__V1__IMAGE_POSITION__IMAGE_POSITION_FIRST;
        else if (!strcmp(s, "middle")) req->image_position = VRWKV__V1__IMAGE_POSITION__IMAGE_POSITION_MIDDLE;
        else if (!strcmp(s, "last")) req->image_position = VRWKV__V1__IMAGE_POSITION__IMAGE_POSITION_LAST;
        else return vr_error_set(err, VR_ERR_INVALID, "--image-position: '%s' is not first, middle or last", s);
    }
    if ((s = get(a, n, "scan"))) {
        if (!strcmp(s, "uni")) req->scan = VRWKV__V1__SCAN_MODE__SCAN_UNI;
        else if (!strcmp(s, "bi")) req->scan = VRWKV__V1__SCAN_MODE__SCAN_BI;
        else if (!strcmp(s, "multi")) req->scan = VRWKV__V1__SCAN_MODE__SCAN_MULTI;
        else return vr_error_set(err, VR_ERR_INVALID, "--scan: '%s' is not uni, bi or multi", s);
    }
    if ((s = get(a, n, "max-tokens"))) {
        if ((st = vr_parse_int("max-tokens", s, 1, 1 << 20, &l, err))) return st;
        req->max_tokens = (int32_t)l;
    }
    if ((s = get(a, n, "temperature"))) {
        if ((st = vr_parse_float("temperature", s, 0, 100, &d, err))) return st;
        so->temperature = (float)d;
    }
    if ((s = get(a, n, "top-p"))) {
        if ((st = vr_parse_float("top-p", s, 0, 1, &d, err))) return st;
        so->top_p = (float)d;
    }
    if ((s = get(a, n, "top-k"))) {
        if ((st = vr_parse_int("top-k", s, 0, 1 << 20, &l, err))) return st;
        so->top_k = (int32_t)l;
    }
    if ((s = get(a, n, "presence-penalty"))) {
        if ((st = vr_parse_float("presence-penalty", s, -100, 100, &d, err))) return st;
        so->presence_penalty = (float)d;
    }
    if ((s = get(a, n, "frequency-penalty"))) {
        if ((st = vr_parse_float("frequency-penalty", s, -100, 100, &d, err))) return st;
        so->frequency_penalty = (float)d;
    }
    if ((s = get(a, n, "seed")) && (st = vr_parse_u64("seed", s, &so->seed, err))) return st;
    vr_arg *stop = vr_args_get(a, n, "stop");
    if (stop->n_values > CLIENT_MAX_STOP)
        return vr_error_set(err, VR_ERR_INVALID, "--stop: at most %d stop tokens", CLIENT_MAX_STOP);
    for (int i = 0; i < stop->n_values; i++) {
        if ((st = vr_parse_int("stop", stop->values[i], 0, 1 << 24, &l, err))) return st;
        stops[i] = (int32_t)l;
    }
    req->n_stop_tokens = (size_t)stop->n_values;
    req->stop_tokens = stops;
    req->sampling = so;
    return VR_OK;
}

int vr_cmd_client(int argc, char **argv) {
    vr_arg args[] = {
        {"addr", VR_ARG_STRING, "server address HOST:PORT", 0, 0, 0},
        {"api-key", VR_ARG_STRING, "the tenant's API key (sent as authorization: Bearer KEY)", 0, 0, 0},
        {"session", VR_ARG_STRING, "continue this session", 0, 0, 0},
        {"new-session", VR_ARG_FLAG, "start a session (its id comes back)", 0, 0, 0},
        {"image", VR_ARG_STRING, "JPEG or PNG file", 0, 0, 0},
        {"image-position", VR_ARG_STRING, "first|middle|last (default middle)", 0, 0, 0},
        {"scan", VR_ARG_STRING, "uni|bi|multi (default bi)", 0, 0, 0},
        {"max-tokens", VR_ARG_STRING, "tokens per answer (default: the server's, 100)", 0, 0, 0},
        {"temperature", VR_ARG_STRING, "0 = greedy (default)", 0, 0, 0},
        {"top-p", VR_ARG_STRING, "nucleus sampling (default 1)", 0, 0, 0},
        {"top-k", VR_ARG_STRING, "0 = off (default)", 0, 0, 0},
        {"presence-penalty", VR_ARG_STRING, "default 0", 0, 0, 0},
        {"frequency-penalty", VR_ARG_STRING, "default 0", 0, 0, 0},
        {"seed", VR_ARG_STRING, "sampling seed (default 0)", 0, 0, 0},
        {"stop", VR_ARG_LIST, "stop token id (default 261)", 0, 0, 0},
        {"timeout-ms", VR_ARG_STRING, "deadline of the call (default none; --health: 5000)", 0, 0, 0},
        {"json", VR_ARG_FLAG, "print one JSON object instead of streaming", 0, 0, 0},
        {"health", VR_ARG_FLAG, "grpc.health.v1 Check of the whole server; exit 0 only when SERVING", 0, 0, 0},
        {"get-session", VR_ARG_STRING, "print a session (JSON)", 0, 0, 0},
        {"delete-session", VR_ARG_STRING, "delete a session", 0, 0, 0},
        {"list-models", VR_ARG_FLAG, "print the served models (JSON)", 0, 0, 0},
        {"help", VR_ARG_FLAG, "this help", 0, 0, 0},
    };
    int na = (int)(sizeof args / sizeof args[0]);
    const char **pos = NULL;
    int npos = 0;
    vr_error err = {0};
    int rc = 2;
    client_ctx c = {0};
    char *image = NULL;
    size_t image_len = 0;
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK) goto usage;
    if (get(args, na, "help")) {
        vr_args_usage("client", "--addr HOST:PORT --api-key KEY [options] TEXT | --health | --get-session ID | "
                                "--delete-session ID | --list-models",
                      args, na);
        rc = 0;
        goto done;
    }
    const char *addr = get(args, na, "addr");
    if (!addr) {
        vr_error_set(&err, VR_ERR_INVALID, "--addr is required");
        goto usage;
    }
    int health = get(args, na, "health") != NULL, list = get(args, na, "list-models") != NULL;
    const char *get_id = get(args, na, "get-session"), *del_id = get(args, na, "delete-session");
    int n_actions = health + list + (get_id != NULL) + (del_id != NULL);
    if (n_actions > 1) {
        vr_error_set(&err, VR_ERR_INVALID, "--health, --get-session, --delete-session and --list-models exclude each other");
        goto usage;
    }
    if (n_actions && npos) {
        vr_error_set(&err, VR_ERR_INVALID, "unexpected argument '%s'", pos[0]);
        goto usage;
    }
    if (!n_actions && npos != 1) {
        vr_error_set(&err, VR_ERR_INVALID, npos ? "give the question as one argument (quote it)"
                                                : "the question (TEXT) is required");
        goto usage;
    }
    const char *s;
    long l;
    if ((s = get(args, na, "timeout-ms"))) {
        if (vr_parse_int("timeout-ms", s, 1, 86400000L, &l, &err) != VR_OK) goto usage;
        c.timeout_ms = l;
    }
    const char *key = get(args, na, "api-key");
    if (key) {
        size_t kl = strlen(key);
        c.auth = malloc(kl + 8);
        if (!c.auth) goto nomem;
        memcpy(c.auth, "Bearer ", 7);
        memcpy(c.auth + 7, key, kl + 1);
        c.md[0].key = "authorization";
        c.md[0].value = c.auth;
        c.n_md = 1;
    }

    Vrwkv__V1__GenerateRequest req = VRWKV__V1__GENERATE_REQUEST__INIT;
    Vrwkv__V1__SamplingOptions so = VRWKV__V1__SAMPLING_OPTIONS__INIT;
    int32_t stops[CLIENT_MAX_STOP];
    if (!n_actions) {
        if (parse_generate(args, na, &req, &so, stops, &err) != VR_OK) goto usage;
        req.text = (char *)pos[0];
        if (req.new_session && req.session_id[0]) {
            vr_error_set(&err, VR_ERR_INVALID, "--session and --new-session exclude each other");
            goto usage;
        }
        const char *img = get(args, na, "image");
        if (img) {
            if (vr_read_file(img, CLIENT_MAX_IMAGE_BYTES, &image, &image_len, &err) != VR_OK) {
                rc = vr_cli_fail("client", err.msg);
                goto done;
            }
            req.image.data = (uint8_t *)image;
            req.image.len = image_len;
        }
    }

    if (vr_rpc_channel_create(addr, &c.ch, &err) != VR_OK) {
        rc = vr_cli_fail("client", err.msg);
        goto done;
    }
    if (health) rc = do_health(&c);
    else if (list) rc = do_list_models(&c);
    else if (get_id) rc = do_get_session(&c, get_id);
    else if (del_id) rc = do_delete_session(&c, del_id);
    else rc = do_generate(&c, &req, get(args, na, "json") != NULL);
    goto done;
nomem:
    rc = vr_cli_fail("client", "out of memory");
    goto done;
usage:
    vr_cli_fail("client", err.msg[0] ? err.msg : "out of memory");
    rc = 2;
done:
    vr_rpc_channel_free(c.ch);
    free(c.auth);
    free(image);
    vr_args_free(args, na);
    free(pos);
    return rc;
}

#endif /* VRWKV_WITH_SERVICE */
