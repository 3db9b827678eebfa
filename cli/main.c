/* cli/main.c — the `vrwkv` binary: dispatches to a subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"

int vr_cli_fail(const char *cmd, const char *msg) {
    fprintf(stderr, "vrwkv %s: %s\n", cmd, msg);
    return 1;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} commands[] = {
    {"run", vr_cmd_run, "answer a question about an image (and follow-ups) with a model"},
    {"chat", vr_cmd_chat, "interactive multi-turn dialogue in the terminal"},
    {"tokenize", vr_cmd_tokenize, "text -> RWKV World token ids (--decode: ids -> text)"},
    {"preprocess", vr_cmd_preprocess, "image -> CLIP pixel tensor (f32 CHW)"},
    {"encode-image", vr_cmd_encode_image, "image -> projected image features (f32 [n_img, n_embd])"},
    {"mkmodel", vr_cmd_mkmodel, "write random weights of a real VisualRWKV shape"},
    {"bench", vr_cmd_bench, "measure prefill, decode, tokenizer and image throughput"},
    {"eval", vr_cmd_eval, "answer a benchmark question file like upstream evaluate.py"},
    {"score", vr_cmd_score, "score an answer file like the upstream benchmark scorers"},
#ifdef VRWKV_WITH_SERVICE
    {"serve", vr_cmd_serve, "coordinator, vision worker and shards in one process"},
    {"coordinator", vr_cmd_coordinator, "the cluster's API server and scheduler"},
    {"worker", vr_cmd_worker, "a vision worker or a layer shard of a cluster"},
    {"client", vr_cmd_client, "talk to a running vrwkv server over gRPC"},
#endif
};

static void usage(void) {
    fprintf(stderr, "usage: vrwkv <command> [options]   (vrwkv <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(stderr, "  %-14s %s\n", commands[i].name, commands[i].what);
}

/* Long-running service processes share cores with each other (several shards on one machine):
 * OpenMP threads that spin while idle would starve them. libgomp reads OMP_WAIT_POLICY when it
 * loads, so set it (unless the user did) and start again. */
static void prefer_passive_openmp(char **argv) {
    const char *cmd = argv[1];
    if (getenv("OMP_WAIT_POLICY") || !(!strcmp(cmd, "serve") || !strcmp(cmd, "worker") || !strcmp(cmd, "coordinator")))
        return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv); /* on failure, carry on with the default policy */
}

int main(int argc, char **argv) {
    if (argc >= 2) prefer_passive_openmp(argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc, argv);
    fprintf(stderr, "vrwkv: unknown command '%s'\n", argv[1]);
    usage();
    return 2;
}
