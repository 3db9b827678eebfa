/* cli/cmd_service.c — the service processes: `vrwkv coordinator`, `vrwkv worker --role
 * vision|shard`, and `vrwkv serve` (coordinator, vision worker and shards as threads of one
 * process). Parses options, starts the parts, waits for SIGINT/SIGTERM, stops them. */
#ifdef VRWKV_WITH_SERVICE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/log.h"
#include "coordinator/coordinator.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "worker/shard.h"
#include "worker/vision_worker.h"

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void wait_for_signal(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (!stop_requested) usleep(100 * 1000);
}

static const char *get(vr_arg *a, int n, const char *name) { return vr_args_get(a, n, name)->value; }

static int opt_int(vr_arg *a, int n, const char *name, int def, long min, long max, vr_error *err, int *bad) {
    const char *s = get(a, n, name);
    long v = def;
    if (s && vr_parse_int(name, s, min, max, &v, err) != VR_OK) *bad = 1;
    return (int)v;
}

/* "redis://…" from --redis, or --store, or the default */
static const char *store_url(vr_arg *a, int n, const char *def) {
    const char *r = get(a, n, "redis");
    if (r) return r;
    const char *s = get(a, n, "store");
    return s ? s : def;
}

#define FAIL(cmd, code)                                                                                      \
    do {                                                                                                     \
        vr_cli_fail(cmd, err.msg[0] ? err.msg : "failed");                                                   \
        rc = code;                                                                                           \
        goto done;                                                                                           \
    } while (0)

int vr_cmd_coordinator(int argc, char **argv) {
    vr_arg args[] = {{"model", VR_ARG_STRING, "checkpoint (for the config and tokenizer checks)", 0, 0, 0},
                     {"config", VR_ARG_STRING, "model.json", 0, 0, 0},
                     {"vocab", VR_ARG_STRING, "rwkv_vocab_v20230424.txt", 0, 0, 0},
                     {"host", VR_ARG_STRING, "bind address (default 127.0.0.1)", 0, 0, 0},
                     {"port", VR_ARG_STRING, "gRPC port (API + worker control)", 0, 0, 0},
                     {"tenants", VR_ARG_STRING, "tenants JSON file", 0, 0, 0},
                     {"api-key", VR_ARG_STRING, "a single tenant's key (instead of --tenants)", 0, 0, 0},
                     {"redis", VR_ARG_STRING, "redis://[:password@]host:port[/db]", 0, 0, 0},
                     {"store", VR_ARG_STRING, "memory | dir:PATH (without --redis)", 0, 0, 0},
                     {"ttl", VR_ARG_STRING, "session TTL in seconds (default 86400)", 0, 0, 0},
                     {"metrics-port", VR_ARG_STRING, "Prometheus /metrics port", 0, 0, 0},
                     {"max-batch", VR_ARG_STRING, "turns per pipeline step (default 64)", 0, 0, 0},
                     {"max-prompt-tokens", VR_ARG_STRING, "prompt limit for every tenant", 0, 0, 0},
                     {"max-tokens", VR_ARG_STRING, "default tokens per answer (default 256)", 0, 0, 0},
                     {"inline-features", VR_ARG_FLAG,
                      "image features come back through the coordinator instead of going from the vision worker "
                      "straight to stage 0 (for networks where workers cannot reach the shards' transport ports)",
                      0, 0, 0},
                     {"help", VR_ARG_FLAG, "this help", 0, 0, 0}};
    int na = (int)(sizeof args / sizeof args[0]), npos = 0, rc = 1, bad = 0;
    const char **pos = NULL;
    vr_error err = {0};
    vr_coordinator *c = NULL;
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK || npos) {
        if (npos) vr_error_set(&err, VR_ERR_INVALID, "unexpected argument '%s'", pos[0]);
        FAIL("coordinator", 2);
    }
    if (get(args, na, "help")) {
        vr_args_usage("coordinator", "--model CKPT --vocab VOCAB --port P (--tenants F | --api-key K) [options]", args, na);
        rc = 0;
        goto done;
    }
    vr_coordinator_options o = {0};
    o.model_path = get(args, na, "model");
    o.config_path = get(args, na, "config");
    o.vocab_path = get(args, na, "vocab");
    o.host = get(args, na, "host");
    o.port = opt_int(args, na, "port", 0, 0, 65535, &err, &bad);
    o.tenants_path = get(args, na, "tenants");
    o.api_key = get(args, na, "api-key");
    o.store_url = store_url(args, na, "memory");
    o.ttl_seconds = opt_int(args, na, "ttl", 86400, 0, 1 << 30, &err, &bad);
    o.metrics_port = opt_int(args, na, "metrics-port", -1, -1, 65535, &err, &bad);
    o.max_batch = opt_int(args, na, "max-batch", 64, 1, 4096, &err, &bad);
    o.max_prompt_tokens = opt_int(args, na, "max-prompt-tokens", 0, 0, 1 << 24, &err, &bad);
    o.default_max_tokens = opt_int(args, na, "max-tokens", 256, 1, 1 << 20, &err, &bad);
    o.inline_features = get(args, na, "inline-features") != NULL;
    if (bad) FAIL("coordinator", 2);
    if (!o.model_path) {
        vr_error_set(&err, VR_ERR_INVALID, "--model is required");
        FAIL("coordinator", 2);
    }
    if (vr_coordinator_start(&o, &c, &err) != VR_OK) FAIL("coordinator", 1);
    printf("coordinator listening on %s\n", vr_coordinator_address(c));
    fflush(stdout);
    wait_for_signal();
    rc = 0;
done:
    vr_coordinator_stop(c);
    vr_args_free(args, na);
    free(pos);
    return rc;
}

int vr_cmd_worker(int argc, char **argv) {
    vr_arg args[] = {{"role", VR_ARG_STRING, "vision | shard", 0, 0, 0},
                     {"layers", VR_ARG_STRING, "shard: A:B, the layers [A, B) it serves", 0, 0, 0},
                     {"coordinator", VR_ARG_STRING, "host:port to register with", 0, 0, 0},
                     {"model", VR_ARG_STRING, "checkpoint", 0, 0, 0},
                     {"config", VR_ARG_STRING, "model.json", 0, 0, 0},
                     {"host", VR_ARG_STRING, "bind and advertise (default 127.0.0.1)", 0, 0, 0},
                     {"port", VR_ARG_STRING, "gRPC port (default any)", 0, 0, 0},
                     {"transport-port", VR_ARG_STRING, "shard: activation port (default any)", 0, 0, 0},
                     {"redis", VR_ARG_STRING, "shard: redis://host:port state store", 0, 0, 0},
                     {"store", VR_ARG_STRING, "shard: memory | dir:PATH (without --redis)", 0, 0, 0},
                     {"ttl", VR_ARG_STRING, "state TTL in seconds (default 86400)", 0, 0, 0},
                     {"max-sessions", VR_ARG_STRING, "shard: live state slots (default 256)", 0, 0, 0},
                     {"threads", VR_ARG_STRING, "CPU threads", 0, 0, 0},
                     {"metrics-port", VR_ARG_STRING, "Prometheus /metrics port", 0, 0, 0},
                     {"backend", VR_ARG_STRING, "cpu (default) or cuda: GPU 0 of CUDA_VISIBLE_DEVICES, one process per GPU", 0, 0, 0},
                     {"transport", VR_ARG_STRING, "tcp (default) or nccl: activations, features and handed-off states to NCCL peers on other GPUs; needs cuda", 0, 0, 0},
                     {"help", VR_ARG_FLAG, "this help", 0, 0, 0}};
    int na = (int)(sizeof args / sizeof args[0]), npos = 0, rc = 1, bad = 0;
    const char **pos = NULL;
    vr_error err = {0};
    vr_shard *shard = NULL;
    vr_vision_worker *vision = NULL;
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK || npos) {
        if (npos) vr_error_set(&err, VR_ERR_INVALID, "unexpected argument '%s'", pos[0]);
        FAIL("worker", 2);
    }
    if (get(args, na, "help")) {
        vr_args_usage("worker", "--role vision|shard [--layers A:B] --coordinator HOST:PORT --model CKPT [options]", args,
                      na);
        rc = 0;
        goto done;
    }
    const char *role = get(args, na, "role");
    const char *backend = get(args, na, "backend");
    if (vr_parse_backend(backend, &err) != VR_OK) FAIL("worker", 2);
    int port = opt_int(args, na, "port", 0, 0, 65535, &err, &bad);
    int metrics = opt_int(args, na, "metrics-port", -1, -1, 65535, &err, &bad);
    int threads = opt_int(args, na, "threads", 0, 0, 1024, &err, &bad);
    const char *transport = get(args, na, "transport");
    if (transport && strcmp(transport, "tcp") && strcmp(transport, "nccl")) {
        vr_error_set(&err, VR_ERR_INVALID, "--transport %s: expected tcp or nccl", transport);
        FAIL("worker", 2);
    }
    int nccl = transport && !strcmp(transport, "nccl");
    if (bad) FAIL("worker", 2);
    if (!role || !get(args, na, "model") || !get(args, na, "coordinator")) {
        vr_error_set(&err, VR_ERR_INVALID, "--role, --model and --coordinator are required");
        FAIL("worker", 2);
    }
    if (!strcmp(role, "vision")) {
        vr_vision_worker_options o = {get(args, na, "model"), get(args, na, "config"), get(args, na, "host"), port,
                                      get(args, na, "coordinator"), threads, metrics, backend, nccl};
        if (vr_vision_worker_start(&o, &vision, &err) != VR_OK) FAIL("worker", 1);
        printf("vision worker listening on %s\n", vr_vision_worker_address(vision));
    } else if (!strcmp(role, "shard")) {
        const char *layers = get(args, na, "layers");
        int a = 0, b = 0, used = 0;
        if (!layers || sscanf(layers, "%d:%d%n", &a, &b, &used) != 2 || layers[used] || a < 0 || b <= a) {
            vr_error_set(&err, VR_ERR_INVALID, "--layers A:B is required for a shard (e.g. 0:12)");
            FAIL("worker", 2);
        }
        vr_shard_options o = {0};
        o.model_path = get(args, na, "model");
        o.config_path = get(args, na, "config");
        o.layer_first = a;
        o.layer_last = b;
        o.host = get(args, na, "host");
        o.port = port;
        o.transport_port = opt_int(args, na, "transport-port", 0, 0, 65535, &err, &bad);
        o.coordinator = get(args, na, "coordinator");
        o.store_url = store_url(args, na, "memory");
        o.ttl_seconds = opt_int(args, na, "ttl", 86400, 0, 1 << 30, &err, &bad);
        o.max_sessions = opt_int(args, na, "max-sessions", 256, 1, 1 << 20, &err, &bad);
        o.threads = threads;
        o.metrics_port = metrics;
        o.backend = backend;
        o.nccl = nccl;
        if (bad) FAIL("worker", 2);
        if (vr_shard_start(&o, &shard, &err) != VR_OK) FAIL("worker", 1);
        printf("shard worker (layers %d:%d) listening on %s\n", a, b, vr_shard_address(shard));
    } else {
        vr_error_set(&err, VR_ERR_INVALID, "--role must be vision or shard, not '%s'", role);
        FAIL("worker", 2);
    }
    fflush(stdout);
    wait_for_signal();
    rc = 0;
done:
    vr_shard_stop(shard);
    vr_vision_worker_stop(vision);
    vr_args_free(args, na);
    free(pos);
    return rc;
}

int vr_cmd_serve(int argc, char **argv) {
    vr_arg args[] = {{"model", VR_ARG_STRING, "checkpoint", 0, 0, 0},
                     {"config", VR_ARG_STRING, "model.json", 0, 0, 0},
                     {"vocab", VR_ARG_STRING, "rwkv_vocab_v20230424.txt", 0, 0, 0},
                     {"host", VR_ARG_STRING, "bind address (default 127.0.0.1)", 0, 0, 0},
                     {"port", VR_ARG_STRING, "gRPC port (default 50051)", 0, 0, 0},
                     {"shards", VR_ARG_STRING, "layer shards (default 1)", 0, 0, 0},
                     {"api-key", VR_ARG_STRING, "the API key (default: printed at start)", 0, 0, 0},
                     {"tenants", VR_ARG_STRING, "tenants JSON file", 0, 0, 0},
                     {"redis", VR_ARG_STRING, "redis://host:port (default: embedded store)", 0, 0, 0},
                     {"store", VR_ARG_STRING, "memory | dir:PATH (default memory)", 0, 0, 0},
                     {"metrics-port", VR_ARG_STRING, "Prometheus /metrics port", 0, 0, 0},
                     {"threads", VR_ARG_STRING, "CPU threads", 0, 0, 0},
                     {"backend", VR_ARG_STRING, "cpu (default) or cuda: the shards and vision worker on GPU 0", 0, 0, 0},
                     {"inline-features", VR_ARG_FLAG, "image features come back through the coordinator", 0, 0, 0},
                     {"help", VR_ARG_FLAG, "this help", 0, 0, 0}};
    int na = (int)(sizeof args / sizeof args[0]), npos = 0, rc = 1, bad = 0;
    const char **pos = NULL;
    vr_error err = {0};
    vr_coordinator *c = NULL;
    vr_vision_worker *vision = NULL;
    vr_shard *shards[64] = {0};
    int n_shards = 0;
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK || npos) {
        if (npos) vr_error_set(&err, VR_ERR_INVALID, "unexpected argument '%s'", pos[0]);
        FAIL("serve", 2);
    }
    if (get(args, na, "help")) {
        vr_args_usage("serve", "--model CKPT [--config model.json] --vocab VOCAB [--port P] [--shards N]", args, na);
        rc = 0;
        goto done;
    }
    int want = opt_int(args, na, "shards", 1, 1, 64, &err, &bad);
    int threads = opt_int(args, na, "threads", 0, 0, 1024, &err, &bad);
    const char *backend = get(args, na, "backend");
    if (vr_parse_backend(backend, &err) != VR_OK) FAIL("serve", 2);
    vr_coordinator_options o = {0};
    o.model_path = get(args, na, "model");
    o.config_path = get(args, na, "config");
    o.vocab_path = get(args, na, "vocab");
    o.host = get(args, na, "host");
    o.port = opt_int(args, na, "port", 50051, 0, 65535, &err, &bad);
    o.tenants_path = get(args, na, "tenants");
    o.api_key = get(args, na, "api-key");
    o.store_url = store_url(args, na, "memory");
    o.ttl_seconds = 86400;
    o.metrics_port = opt_int(args, na, "metrics-port", -1, -1, 65535, &err, &bad);
    o.inline_features = get(args, na, "inline-features") != NULL;
    if (bad) FAIL("serve", 2);
    if (!o.model_path || !o.vocab_path) {
        vr_error_set(&err, VR_ERR_INVALID, "--model and --vocab are required");
        FAIL("serve", 2);
    }
    if (!o.tenants_path && !o.api_key) o.api_key = "vrwkv-local-key";
    vr_checkpoint *ck = NULL;
    vr_model_config cfg;
    if (vr_checkpoint_open(o.model_path, &ck, &err) != VR_OK) FAIL("serve", 1);
    vr_status st = vr_config_load(ck, o.config_path, &cfg, &err);
    vr_checkpoint_free(ck);
    if (st != VR_OK) FAIL("serve", 1);
    if (want > cfg.n_layer) want = cfg.n_layer;
    if (vr_coordinator_start(&o, &c, &err) != VR_OK) FAIL("serve", 1);
    if (cfg.has_vision) {
        vr_vision_worker_options vo = {o.model_path, o.config_path, o.host, 0, vr_coordinator_address(c), threads, -1,
                                       backend, 0}; /* one GPU for all: no NCCL */
        if (vr_vision_worker_start(&vo, &vision, &err) != VR_OK) FAIL("serve", 1);
    }
    for (int i = 0; i < want; i++) {
        vr_shard_options so = {0};
        so.model_path = o.model_path;
        so.config_path = o.config_path;
        so.layer_first = cfg.n_layer * i / want;
        so.layer_last = cfg.n_layer * (i + 1) / want;
        so.host = o.host;
        so.coordinator = vr_coordinator_address(c);
        so.store_url = o.store_url; /* a memory store is per shard: fine, each keeps only its own layers */
        so.ttl_seconds = o.ttl_seconds;
        so.threads = threads;
        so.metrics_port = -1;
        so.backend = backend;
        if (vr_shard_start(&so, &shards[n_shards], &err) != VR_OK) FAIL("serve", 1);
        n_shards++;
    }
    printf("vrwkv serving on %s (%d shard%s)%s%s\n", vr_coordinator_address(c), n_shards, n_shards == 1 ? "" : "s",
           o.api_key ? ", api key: " : "", o.api_key ? o.api_key : "");
    fflush(stdout);
    wait_for_signal();
    rc = 0;
done:
    for (int i = n_shards - 1; i >= 0; i--) vr_shard_stop(shards[i]);
    vr_vision_worker_stop(vision);
    vr_coordinator_stop(c);
    vr_args_free(args, na);
    free(pos);
    return rc;
}
#endif
