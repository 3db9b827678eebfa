/* model/tokenizer.h — the RWKV World tokenizer (upstream TRIE_TOKENIZER): greedy longest
 * byte match over rwkv_vocab_v20230424.txt, and decoding ids back to bytes.
 * Pure function of the vocabulary: no model, no I/O beyond loading the vocab file. */
#ifndef VR_TOKENIZER_H
#define VR_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vr_tokenizer vr_tokenizer;

vr_status vr_tokenizer_load(const char *vocab_path, vr_tokenizer **out, vr_error *err);
/* The same from the file's contents in memory (data need not be NUL-terminated and is not kept);
 * name is used in error messages (may be NULL). */
vr_status vr_tokenizer_load_memory(const char *data, size_t size, const char *name, vr_tokenizer **out,
                                   vr_error *err);
void vr_tokenizer_free(vr_tokenizer *tok);

/* Largest id + 1 that has an entry (65530 for the World vocab). */
int vr_tokenizer_n_vocab(const vr_tokenizer *tok);

/* Encodes len bytes (any bytes, valid UTF-8 or not). *ids is malloc'd (caller frees). */
vr_status vr_tokenizer_encode(const vr_tokenizer *tok, const char *text, size_t len, int32_t **ids, int *n_ids,
                              vr_error *err);

/* The bytes of one token; NULL (len 0) for an unknown id. */
const char *vr_tokenizer_token_bytes(const vr_tokenizer *tok, int32_t id, size_t *len);

/* Concatenates token bytes into a malloc'd NUL-terminated buffer (raw bytes, may be invalid
 * UTF-8). Unknown ids are an error naming the id. */
vr_status vr_tokenizer_decode_bytes(const vr_tokenizer *tok, const int32_t *ids, int n, char **out, size_t *out_len,
                                    vr_error *err);

/* Upstream decode(): the bytes when they are valid UTF-8 and every id is known; otherwise the
 * single character U+FFFD ("\xEF\xBF\xBD") for the whole string. Always succeeds (malloc'd). */
char *vr_tokenizer_decode_upstream(const vr_tokenizer *tok, const int32_t *ids, int n);

/* 1 when bytes [0,len) are valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int vr_utf8_valid(const char *s, size_t len);
/* Length of the longest prefix of s[0,len) that ends on a complete UTF-8 sequence boundary,
 * for streaming output without splitting a character. */
size_t vr_utf8_complete_prefix(const char *s, size_t len);

#endif
