/* tests/fuzz/fuzz_vocab.c — fuzz target: arbitrary bytes as the contents of a vocab file must
 * load or fail with a message, never crash; a vocab that loads must encode and decode bytes
 * back exactly. Each input is tried alone and appended to a valid base vocab (so the tokens it
 * defines usually load and the trie builder is exercised). Tests only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes);

/* A valid small vocab: all 256 single bytes as str and bytes literals, a few multi-byte tokens. */
static char *valid_vocab(size_t *n) {
    size_t cap = 256 * 24 + 512;
    char *s = malloc(cap);
    if (!s) abort();
    size_t k = 0;
    for (int b = 0; b < 256; b++) {
        if (b >= 0x20 && b < 0x7f && b != '\'' && b != '\\')
            k += (size_t)snprintf(s + k, cap - k, "%d '%c' 1\n", b + 1, b);
        else if (b < 0x80)
            k += (size_t)snprintf(s + k, cap - k, "%d '\\x%02x' 1\n", b + 1, b);
        else
            k += (size_t)snprintf(s + k, cap - k, "%d b'\\x%02x' 1\n", b + 1, b);
    }
    k += (size_t)snprintf(s + k, cap - k,
                          "257 '\\t\\t' 2\n258 \"'s\" 2\n259 '\\u4f60\\u597d' 6\n260 ' \\U0001F600' 5\n"
                          "261 '\\n\\n' 2\n262 b'\\xe4\\xbd\\n' 3\n263 '\\\\\\'\\\"' 3\n264 '\xc3\xa9t\xc3\xa9' 5\n");
    *n = k;
    return s;
}

/* Loads text as a vocab; if it loads, probe must round-trip through encode/decode. */
static void check_vocab(const char *text, size_t size, const uint8_t *probe, size_t probe_size) {
    vr_tokenizer *t = NULL;
    vr_error err = {0};
    vr_status st = vr_tokenizer_load_memory(text, size, "fuzz.txt", &t, &err);
    if (st != VR_OK) {
        if (t || err.msg[0] == 0) abort();
        return;
    }
    int32_t *ids = NULL;
    int n = 0;
    if (vr_tokenizer_encode(t, (const char *)probe, probe_size, &ids, &n, &err) != VR_OK) abort();
    char *back = NULL;
    size_t len = 0;
    if (vr_tokenizer_decode_bytes(t, ids, n, &back, &len, &err) != VR_OK) abort();
    if (len != probe_size || (probe_size && memcmp(back, probe, probe_size) != 0)) abort();
    free(back);
    free(ids);
    vr_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_vocab((const char *)data, size, data, size);
    size_t base_n = 0;
    char *base = valid_vocab(&base_n);
    char *both = malloc(base_n + size + 1);
    if (!both) abort();
    memcpy(both, base, base_n);
    if (size) memcpy(both + base_n, data, size);
    check_vocab(both, base_n + size, (const uint8_t *)both, base_n + size);
    free(both);
    free(base);
    return 0;
}

int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes) {
    static const char *const extra[] = {
        "300 'ab' 2\n301 'abc' 3\n302 'abcd' 4\n303 'b' 1\n",
        "300 '\\u4f60\\u597d' 6\r\n301 b'\\xe4\\xbd' 2\r\n302 '\\U0001F600!' 5\r\n",
        "300 '  ' 2\n301 '    ' 4\n302 '        ' 8\n303 '\\n\\n' 2\n",
        "300 '\\x0' 1\n2 'ab' 3\n\n3 b'\\u0041' 6\n",
    };
    int n_extra = (int)(sizeof extra / sizeof extra[0]);
    int n = n_extra + 1;
    *seeds = malloc(sizeof(uint8_t *) * (size_t)n);
    *sizes = malloc(sizeof(size_t) * (size_t)n);
    for (int i = 0; i < n_extra; i++) {
        size_t len = strlen(extra[i]);
        (*seeds)[i] = malloc(len);
        memcpy((*seeds)[i], extra[i], len);
        (*sizes)[i] = len;
    }
    size_t len = 0; /* the whole valid vocab as one more seed */
    (*seeds)[n_extra] = (uint8_t *)valid_vocab(&len);
    (*sizes)[n_extra] = len;
    return n;
}
