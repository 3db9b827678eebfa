/* cli/args.h — command-line option parsing for the vrwkv subcommands: `--name value` pairs,
 * flags, repeatable options, strict number parsing. Errors are one line naming the option.
 * Knows no subcommand semantics. */
#ifndef VR_CLI_ARGS_H
#define VR_CLI_ARGS_H

#include <stdint.h>

#include "common/error.h"

typedef enum { VR_ARG_STRING, VR_ARG_FLAG, VR_ARG_LIST } vr_arg_kind;

typedef struct vr_arg {
    const char *name; /* without "--" */
    vr_arg_kind kind;
    const char *help;
    /* results */
    const char *value; /* STRING: last value; FLAG: "1" when given */
    const char **values; /* LIST: every value (malloc'd array) */
    int n_values;
} vr_arg;

/* Parses argv[first..argc). Positional arguments go to positionals (malloc'd array). */
vr_status vr_args_parse(vr_arg *args, int n_args, int argc, char **argv, int first, const char ***positionals,
                        int *n_positionals, vr_error *err);
void vr_args_free(vr_arg *args, int n_args);
vr_arg *vr_args_get(vr_arg *args, int n_args, const char *name);
void vr_args_usage(const char *cmd, const char *synopsis, const vr_arg *args, int n_args);

vr_status vr_parse_int(const char *opt, const char *s, long min, long max, long *out, vr_error *err);
vr_status vr_parse_float(const char *opt, const char *s, double min, double max, double *out, vr_error *err);
vr_status vr_parse_u64(const char *opt, const char *s, uint64_t *out, vr_error *err);
/* --backend: "cpu" or "cuda" (NULL stays NULL: the default, cpu). */
vr_status vr_parse_backend(const char *s, vr_error *err);

#endif
