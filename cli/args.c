/* cli/args.c — option parsing for the subcommands. */
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

vr_arg *vr_args_get(vr_arg *args, int n_args, const char *name) {
    for (int i = 0; i < n_args; i++)
        if (!strcmp(args[i].name, name)) return &args[i];
    return NULL;
}

vr_status vr_args_parse(vr_arg *args, int n_args, int argc, char **argv, int first, const char ***positionals,
                        int *n_positionals, vr_error *err) {
    *positionals = calloc((size_t)argc + 1, sizeof(char *));
    *n_positionals = 0;
    if (!*positionals) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    int only_positional = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || a[0] != '-' || a[1] != '-' ) {
            if (a[0] == '-' && a[1] && !only_positional && !(a[1] >= '0' && a[1] <= '9'))
                return vr_error_set(err, VR_ERR_INVALID, "unknown option '%s' (options start with --)", a);
            (*positionals)[(*n_positionals)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_positional = 1;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        vr_arg *opt = NULL;
        for (int j = 0; j < n_args; j++)
            if (strlen(args[j].name) == nlen && !strncmp(args[j].name, name, nlen)) opt = &args[j];
        if (!opt) return vr_error_set(err, VR_ERR_INVALID, "unknown option '--%.*s'", (int)nlen, name);
        if (opt->kind == VR_ARG_FLAG) {
            if (eq) return vr_error_set(err, VR_ERR_INVALID, "option '--%s' takes no value", opt->name);
            opt->value = "1";
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) return vr_error_set(err, VR_ERR_INVALID, "option '--%s' needs a value", opt->name);
            val = argv[++i];
        }
        if (opt->kind == VR_ARG_LIST) {
            const char **nv = realloc(opt->values, (size_t)(opt->n_values + 1) * sizeof *nv);
            if (!nv) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            opt->values = nv;
            opt->values[opt->n_values++] = val;
        }
        opt->value = val;
    }
    return VR_OK;
}

void vr_args_free(vr_arg *args, int n_args) {
    for (int i = 0; i < n_args; i++) {
        free(args[i].values);
        args[i].values = NULL;
        args[i].n_values = 0;
    }
}

void vr_args_usage(const char *cmd, const char *synopsis, const vr_arg *args, int n_args) {
    fprintf(stderr, "usage: vrwkv %s %s\n", cmd, synopsis);
    for (int i = 0; i < n_args; i++)
        fprintf(stderr, "  --%-20s %s%s\n", args[i].name, args[i].help,
                args[i].kind == VR_ARG_LIST ? " (repeatable)" : "");
}

vr_status vr_parse_int(const char *opt, const char *s, long min, long max, long *out, vr_error *err) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno) return vr_error_set(err, VR_ERR_INVALID, "--%s: '%s' is not an integer", opt, s);
    if (v < min || v > max)
        return vr_error_set(err, VR_ERR_INVALID, "--%s: %ld is out of range [%ld, %ld]", opt, v, min, max);
    *out = v;
    return VR_OK;
}

vr_status vr_parse_float(const char *opt, const char *s, double min, double max, double *out, vr_error *err) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v))
        return vr_error_set(err, VR_ERR_INVALID, "--%s: '%s' is not a number", opt, s);
    if (v < min || v > max)
        return vr_error_set(err, VR_ERR_INVALID, "--%s: %g is out of range [%g, %g]", opt, v, min, max);
    *out = v;
    return VR_OK;
}

vr_status vr_parse_u64(const char *opt, const char *s, uint64_t *out, vr_error *err) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-')
        return vr_error_set(err, VR_ERR_INVALID, "--%s: '%s' is not a non-negative integer", opt, s);
    *out = (uint64_t)v;
    return VR_OK;
}

vr_status vr_parse_backend(const char *s, vr_error *err) {
    if (s && strcmp(s, "cpu") && strcmp(s, "cuda"))
        return vr_error_set(err, VR_ERR_INVALID, "--backend %s: expected cpu or cuda", s);
    return VR_OK;
}
