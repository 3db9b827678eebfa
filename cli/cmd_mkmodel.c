/* cli/cmd_mkmodel.c — `vrwkv mkmodel`: random weights of a real shape, for tests and benches. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/synthetic.h"

int vr_cmd_mkmodel(int argc, char **argv) {
    vr_arg args[] = {{"shape", VR_ARG_STRING, "tiny|1b6|3b|7b", 0, 0, 0},
                     {"out", VR_ARG_STRING, "output .pth (or .safetensors)", 0, 0, 0},
                     {"seed", VR_ARG_STRING, "random seed (default 1)", 0, 0, 0},
                     {"help", VR_ARG_FLAG, "this help", 0, 0, 0},
                     {"dtype", VR_ARG_STRING, "bf16 (default) or f16", 0, 0, 0}};
    int na = 5, npos = 0, rc = 2;
    const char **pos = NULL;
    vr_error err = {0};
    uint64_t seed = 1;
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK) goto fail;
    if (args[3].value) {
        vr_args_usage("mkmodel", "--shape tiny|1b6|3b|7b --out FILE [--seed S] [--dtype bf16|f16]", args, na);
        rc = 0;
        goto done;
    }
    if (!args[0].value || !args[1].value || npos) {
        vr_error_set(&err, VR_ERR_INVALID, "--shape and --out are required");
        goto fail;
    }
    const vr_synthetic_shape *shape = vr_synthetic_shape_find(args[0].value);
    if (!shape) {
        vr_error_set(&err, VR_ERR_INVALID, "--shape: unknown shape '%s' (expected tiny, 1b6, 3b or 7b)", args[0].value);
        goto fail;
    }
    if (args[2].value && vr_parse_u64("seed", args[2].value, &seed, &err) != VR_OK) goto fail;
    vr_dtype dtype;
    if (vr_synthetic_dtype_parse(args[4].value, &dtype, &err) != VR_OK) goto fail;
    rc = 1;
    if (vr_synthetic_write(shape, seed, dtype, args[1].value, &err) != VR_OK) goto fail;
    fprintf(stderr, "vrwkv mkmodel: wrote %s (shape %s, %s, seed %llu)\n", args[1].value, shape->name,
            vr_dtype_name(dtype), (unsigned long long)seed);
    rc = 0;
    goto done;
fail:
    vr_cli_fail("mkmodel", err.msg);
done:
    vr_args_free(args, na);
    free(pos);
    return rc;
}
