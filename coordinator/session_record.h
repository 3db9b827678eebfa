/* coordinator/session_record.h — the session record the coordinator commits to the store after
 * every turn: tenant, session id, committed turn, consumed ids (the transcript, image as -200,
 * so a lost state can be rebuilt by recomputation), scan mode, the image bytes (to re-encode
 * on a rebuild), model fingerprint and timestamps. Serialised as JSON, a NUL, then the raw
 * image bytes. Parsing is strict: a record that fails a check is refused, never half-used. */
#ifndef VR_SESSION_RECORD_H
#define VR_SESSION_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vr_session_record {
    char tenant[129], session[129];
    int64_t committed_turn; /* 0: nothing committed */
    int32_t *transcript;    /* malloc'd */
    int n_transcript;
    int scan;               /* vr_scan_mode */
    uint8_t *image;         /* malloc'd image file bytes, NULL when none */
    size_t image_len;
    uint64_t fingerprint;
    int64_t created_ms, updated_ms;
} vr_session_record;

vr_status vr_session_record_encode(const vr_session_record *r, uint8_t **out, size_t *len, vr_error *err);
vr_status vr_session_record_decode(const uint8_t *data, size_t len, vr_session_record *r, vr_error *err);
void vr_session_record_free(vr_session_record *r);
/* Appends ids to the transcript. */
vr_status vr_session_record_append(vr_session_record *r, const int32_t *ids, int n, vr_error *err);

#endif
