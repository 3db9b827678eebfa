/* cli/commands.h — the vrwkv subcommands; each returns the process exit status. */
#ifndef VR_CLI_COMMANDS_H
#define VR_CLI_COMMANDS_H

int vr_cmd_run(int argc, char **argv);
int vr_cmd_chat(int argc, char **argv);
int vr_cmd_tokenize(int argc, char **argv);
int vr_cmd_preprocess(int argc, char **argv);
int vr_cmd_encode_image(int argc, char **argv);
int vr_cmd_mkmodel(int argc, char **argv);
int vr_cmd_bench(int argc, char **argv);
int vr_cmd_eval(int argc, char **argv);  /* --addr (cluster mode) only with VRWKV_WITH_SERVICE */
int vr_cmd_score(int argc, char **argv);
/* only with VRWKV_WITH_SERVICE */
int vr_cmd_client(int argc, char **argv);
int vr_cmd_coordinator(int argc, char **argv);
int vr_cmd_worker(int argc, char **argv);
int vr_cmd_serve(int argc, char **argv);

/* Prints "vrwkv <cmd>: <message>" on stderr and returns 1 (or 2 for usage errors). */
int vr_cli_fail(const char *cmd, const char *msg);

#endif
