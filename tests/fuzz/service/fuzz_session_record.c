/* tests/fuzz/service/fuzz_session_record.c — arbitrary bytes as a session record read back from
 * the store: refused or decoded, never a crash; a decoded record re-encodes and decodes to the
 * same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/session_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vr_session_record r;
    vr_error err;
    if (vr_session_record_decode(data, size, &r, &err) != VR_OK) return 0;
    uint8_t *again = NULL;
    size_t n = 0;
    vr_session_record back;
    if (vr_session_record_encode(&r, &again, &n, &err) != VR_OK) abort();
    if (vr_session_record_decode(again, n, &back, &err) != VR_OK) abort();
    if (back.committed_turn != r.committed_turn || back.created_ms != r.created_ms ||
        back.updated_ms != r.updated_ms || back.scan != r.scan || back.fingerprint != r.fingerprint ||
        strcmp(back.tenant, r.tenant) != 0 || back.n_transcript != r.n_transcript ||
        back.image_len != r.image_len || strcmp(back.session, r.session) != 0 ||
        (r.n_transcript && memcmp(back.transcript, r.transcript, sizeof(int32_t) * (size_t)r.n_transcript)) ||
        (r.image_len && memcmp(back.image, r.image, r.image_len)))
        abort();
    vr_session_record_free(&back);
    vr_session_record_free(&r);
    free(again);
    return 0;
}

/* Found by libFuzzer (UBSan): a huge image_bytes was cast to size_t before any range check. */
static const char huge_numbers[] =
    "{\"version\":1,\"tenant\":\"acme\",\"session\":\"01\",\"committed_turn\":1,\"scan\":0,"
    "\"model_fingerprint\":\"000000001234abcd\",\"created_ms\":0,\"updated_ms\":0,"
    "\"image_bytes\":1.11111e+99,\"transcript\":[24,-200,261]}";

/* Found by libFuzzer: a 16-digit turn was re-encoded with 15 significant digits. */
static const char long_turn[] =
    "{\"tenant\":\"\",\"session\":\"0\",\"committed_turn\":6666666666666661,\"scan\":0,"
    "\"model_fingerprint\":\"000000001235abcd\",\"image_bytes\":0,\"transcript\":[]}";

int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes) {
    *seeds = malloc(4 * sizeof **seeds);
    *sizes = malloc(4 * sizeof **sizes);
    for (int i = 0; i < 2; i++) {
        vr_session_record r;
        memset(&r, 0, sizeof r);
        strcpy(r.tenant, "acme");
        strcpy(r.session, i ? "s-2" : "0123abcd");
        r.committed_turn = 1 + i;
        int32_t ids[] = {24281, 59, 33, -200, 11, 261};
        r.transcript = ids;
        r.n_transcript = 6;
        uint8_t img[] = {0xff, 0xd8, 0xff, 0xe0, 0, 1, 2};
        r.image = i ? img : NULL;
        r.image_len = i ? sizeof img : 0;
        r.fingerprint = 0x1234abcdULL;
        vr_session_record_encode(&r, &(*seeds)[i], &(*sizes)[i], NULL);
    }
    (*sizes)[2] = sizeof huge_numbers; /* with its NUL: the header terminator */
    (*seeds)[2] = malloc(sizeof huge_numbers);
    memcpy((*seeds)[2], huge_numbers, sizeof huge_numbers);
    (*sizes)[3] = sizeof long_turn;
    (*seeds)[3] = malloc(sizeof long_turn);
    memcpy((*seeds)[3], long_turn, sizeof long_turn);
    return 4;
}
