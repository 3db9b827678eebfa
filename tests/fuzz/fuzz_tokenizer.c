/* tests/fuzz/fuzz_tokenizer.c — fuzz target: encoding arbitrary bytes and decoding the ids must
 * give the bytes back, every id must be known, and decode_upstream must agree with
 * vr_utf8_valid. Uses ../shared's World vocab, else a tiny vocab written to /tmp. Tests only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/tokenizer.h"
#include "tests/support/fixtures.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes);

static vr_tokenizer *g_tok;

static void cleanup(void) { vr_tokenizer_free(g_tok); }

/* All 256 single bytes plus a few multi-byte tokens that overlap one another. */
static const char *write_tiny_vocab(void) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/vrwkv_fuzz_vocab_%d.txt", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    for (int b = 0; b < 256; b++) fprintf(f, "%d b'\\x%02x' 1\n", b + 1, b);
    fprintf(f, "257 '\\n\\n' 2\n258 '  ' 2\n259 '    ' 4\n260 'ab' 2\n261 'abc' 3\n262 'abcd' 4\n"
               "263 '\\u4f60\\u597d' 6\n264 b'\\xe4\\xbd' 2\n265 '<image>' 7\n266 'aaaaaaaaaaaaaaaaaaaaaaaaaa' 26\n");
    fclose(f);
    return path;
}

static vr_tokenizer *tok(void) {
    if (g_tok) return g_tok;
    vr_error err = {0};
    const char *dir = vrt_shared_dir();
    char path[4200];
    int tmp = 0;
    if (dir) {
        snprintf(path, sizeof path, "%s/rwkv_vocab_v20230424.txt", dir);
    } else {
        const char *p = write_tiny_vocab();
        if (!p) {
            fprintf(stderr, "fuzz_tokenizer: cannot write a temporary vocab\n");
            abort();
        }
        snprintf(path, sizeof path, "%s", p);
        tmp = 1;
    }
    if (vr_tokenizer_load(path, &g_tok, &err) != VR_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    if (tmp) remove(path);
    atexit(cleanup);
    return g_tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vr_tokenizer *t = tok();
    int32_t *ids = NULL;
    int n = 0;
    vr_error err = {0};
    if (vr_tokenizer_encode(t, (const char *)data, size, &ids, &n, &err) != VR_OK) abort();
    if ((size_t)n > size) abort();
    char *back = NULL;
    size_t len = 0;
    if (vr_tokenizer_decode_bytes(t, ids, n, &back, &len, &err) != VR_OK) abort();
    if (len != size || (size && memcmp(back, data, size) != 0)) abort();
    char *up = vr_tokenizer_decode_upstream(t, ids, n);
    if (!up) abort();
    if (vr_utf8_valid((const char *)data, size)) {
        if (memcmp(up, data, size) != 0) abort();
    } else if (strcmp(up, "\xEF\xBF\xBD") != 0) {
        abort();
    }
    size_t pre = vr_utf8_complete_prefix((const char *)data, size);
    if (pre > size || size - pre > 3) abort();
    free(up);
    free(back);
    free(ids);
    return 0;
}

int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes) {
    static const char *const s[] = {
        "Hello world",
        "User: <image>\nWhat is in this image?\n\nAssistant:",
        "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",
        "                                                                                                                                  x",
        "\xff\xfe\x00\x01\r\n\t\xE4\xBD",
        "def f(x):\n    return {\"a\": [1, 2]}\n",
    };
    int n = (int)(sizeof s / sizeof s[0]);
    *seeds = malloc(sizeof(uint8_t *) * (size_t)n);
    *sizes = malloc(sizeof(size_t) * (size_t)n);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(s[i]);
        if (i == 4) len = 10; /* keeps the embedded NUL */
        (*seeds)[i] = malloc(len ? len : 1);
        memcpy((*seeds)[i], s[i], len);
        (*sizes)[i] = len;
    }
    return n;
}
