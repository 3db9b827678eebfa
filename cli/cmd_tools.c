/* cli/cmd_tools.c — the small tools: `tokenize` (and --decode), `preprocess` (image → CLIP
 * pixels) and `encode-image` (image → projected features). Argument handling and file output
 * only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_writer.h"
#include "common/mapped_file.h"
#include "model/engine.h"

static vr_status write_f32(const char *path, const float *v, size_t n, vr_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return vr_error_set(err, VR_ERR_IO, "%s: cannot write", path);
    size_t w = fwrite(v, sizeof(float), n, f);
    if (fclose(f) != 0 || w != n) return vr_error_set(err, VR_ERR_IO, "%s: write failed", path);
    return VR_OK;
}

int vr_cmd_tokenize(int argc, char **argv) {
    vr_arg args[] = {{"vocab", VR_ARG_STRING, "rwkv_vocab_v20230424.txt", 0, 0, 0},
                     {"decode", VR_ARG_FLAG, "arguments are ids (or one JSON array); print the text", 0, 0, 0},
                     {"help", VR_ARG_FLAG, "this help", 0, 0, 0}};
    int na = 3;
    const char **pos = NULL;
    int npos = 0, rc = 1;
    vr_error err = {0};
    vr_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    char *text = NULL;
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK) {
        rc = 2;
        goto fail;
    }
    if (args[2].value) {
        vr_args_usage("tokenize", "--vocab VOCAB TEXT | --vocab VOCAB --decode ID...", args, na);
        rc = 0;
        goto done;
    }
    if (!args[0].value) {
        vr_error_set(&err, VR_ERR_INVALID, "--vocab is required");
        rc = 2;
        goto fail;
    }
    if (vr_tokenizer_load(args[0].value, &tok, &err) != VR_OK) goto fail;
    if (!args[1].value) {
        if (npos != 1) {
            vr_error_set(&err, VR_ERR_INVALID, "give exactly one TEXT argument (got %d)", npos);
            rc = 2;
            goto fail;
        }
        int n = 0;
        if (vr_tokenizer_encode(tok, pos[0], strlen(pos[0]), &ids, &n, &err) != VR_OK) goto fail;
        vr_json_ints(stdout, ids, n);
        putchar('\n');
    } else {
        /* ids as separate arguments, or comma/space separated, brackets allowed */
        int cap = 64, n = 0;
        ids = malloc((size_t)cap * sizeof *ids);
        for (int i = 0; ids && i < npos; i++) {
            const char *p = pos[i];
            while (*p) {
                while (*p == '[' || *p == ']' || *p == ',' || *p == ' ') p++;
                if (!*p) break;
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p) {
                    vr_error_set(&err, VR_ERR_INVALID, "'%s' is not a token id", pos[i]);
                    rc = 2;
                    goto fail;
                }
                if (n == cap) {
                    int32_t *t = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
                    if (!t) goto fail;
                    ids = t;
                }
                ids[n++] = (int32_t)v;
                p = end;
            }
        }
        if (!ids) goto fail;
        size_t len = 0;
        if (vr_tokenizer_decode_bytes(tok, ids, n, &text, &len, &err) != VR_OK) goto fail;
        fwrite(text, 1, len, stdout);
        putchar('\n');
    }
    rc = 0;
    goto done;
fail:
    vr_cli_fail("tokenize", err.msg[0] ? err.msg : "out of memory");
done:
    free(ids);
    free(text);
    vr_tokenizer_free(tok);
    vr_args_free(args, na);
    free(pos);
    return rc;
}

int vr_cmd_preprocess(int argc, char **argv) {
    vr_arg args[] = {{"image", VR_ARG_STRING, "JPEG or PNG file", 0, 0, 0},
                     {"size", VR_ARG_STRING, "CLIP image size (e.g. 336)", 0, 0, 0},
                     {"out", VR_ARG_STRING, "output file: f32 LE [3, size, size]", 0, 0, 0},
                     {"help", VR_ARG_FLAG, "this help", 0, 0, 0}};
    int na = 4, npos = 0, rc = 1;
    const char **pos = NULL;
    vr_error err = {0};
    vr_image img = {0};
    float *pixels = NULL;
    long size = 0;
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK) {
        rc = 2;
        goto fail;
    }
    if (args[3].value) {
        vr_args_usage("preprocess", "--image IMG --size N --out FILE", args, na);
        rc = 0;
        goto done;
    }
    if (!args[0].value || !args[1].value || !args[2].value || npos) {
        vr_error_set(&err, VR_ERR_INVALID, npos ? "unexpected argument '%s'" : "--image, --size and --out are required",
                     npos ? pos[0] : "");
        rc = 2;
        goto fail;
    }
    if (vr_parse_int("size", args[1].value, 1, 4096, &size, &err) != VR_OK) {
        rc = 2;
        goto fail;
    }
    if (vr_image_load(args[0].value, &img, &err) != VR_OK) goto fail;
    vr_clip_preprocess pp;
    vr_clip_preprocess_default(&pp, (int)size);
    pixels = malloc((size_t)3 * size * size * sizeof(float));
    if (!pixels) goto fail;
    if (vr_clip_preprocess_image(&pp, &img, pixels, NULL, &err) != VR_OK) goto fail;
    if (write_f32(args[2].value, pixels, (size_t)3 * size * size, &err) != VR_OK) goto fail;
    rc = 0;
    goto done;
fail:
    vr_cli_fail("preprocess", err.msg[0] ? err.msg : "out of memory");
done:
    free(pixels);
    vr_image_free(&img);
    vr_args_free(args, na);
    free(pos);
    return rc;
}

int vr_cmd_encode_image(int argc, char **argv) {
    vr_arg args[] = {{"model", VR_ARG_STRING, "checkpoint (.pth or .safetensors)", 0, 0, 0},
                     {"config", VR_ARG_STRING, "model.json", 0, 0, 0},
                     {"image", VR_ARG_STRING, "JPEG or PNG file", 0, 0, 0},
                     {"out", VR_ARG_STRING, "output file: f32 LE [n_img, n_embd]", 0, 0, 0},
                     {"help", VR_ARG_FLAG, "this help", 0, 0, 0}};
    int na = 5, npos = 0, rc = 1;
    const char **pos = NULL;
    vr_error err = {0};
    vr_engine *e = NULL;
    char *data = NULL;
    float *features = NULL;
    if (vr_args_parse(args, na, argc, argv, 2, &pos, &npos, &err) != VR_OK) {
        rc = 2;
        goto fail;
    }
    if (args[4].value) {
        vr_args_usage("encode-image", "--model CKPT [--config model.json] --image IMG --out FILE", args, na);
        rc = 0;
        goto done;
    }
    if (!args[0].value || !args[2].value || !args[3].value || npos) {
        vr_error_set(&err, VR_ERR_INVALID, npos ? "unexpected argument '%s'" : "--model, --image and --out are required",
                     npos ? pos[0] : "");
        rc = 2;
        goto fail;
    }
    vr_engine_options eo = {args[0].value, args[1].value, NULL, 0, NULL, NULL};
    size_t size = 0;
    if (vr_engine_open(&eo, &e, &err) != VR_OK) goto fail;
    if (vr_read_file(args[2].value, 64 << 20, &data, &size, &err) != VR_OK) goto fail;
    if (vr_engine_encode_image(e, (const uint8_t *)data, size, args[2].value, &features, &err) != VR_OK) goto fail;
    if (write_f32(args[3].value, features, (size_t)e->cfg.num_image_tokens * e->cfg.n_embd, &err) != VR_OK) goto fail;
    rc = 0;
    goto done;
fail:
    vr_cli_fail("encode-image", err.msg[0] ? err.msg : "out of memory");
done:
    free(features);
    free(data);
    vr_engine_free(e);
    vr_args_free(args, na);
    free(pos);
    return rc;
}
