/* coordinator/session_record.c — encoding and strict decoding of session records. */
#include "coordinator/session_record.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/rwkv.h"

enum { MAX_TRANSCRIPT = 1 << 22 };
#define MAX_EXACT 9007199254740992.0 /* 2^53: every integer up to here is exact in a JSON double */

/* A JSON number that is an integer in [lo, hi] (both within +-2^53), so the cast is defined. */
static int json_int(const cJSON *j, double lo, double hi, int64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= lo && d <= hi) || d != (double)(int64_t)d) return 0;
    *out = (int64_t)d;
    return 1;
}

/* Exactly the 16 hex digits vr_session_record_encode writes. */
static int parse_fingerprint(const char *s, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (h < 0) return 0;
        v = v << 4 | (uint64_t)h;
    }
    if (s[16]) return 0;
    *out = v;
    return 1;
}

/* An integer written exactly: cJSON prints a number with 15 significant digits when that reads
 * back within a relative 2^-52, so 6666666666666661 would come back as ...660 (libFuzzer). The
 * decoder accepts integers up to 2^53, which a double holds exactly. */
static void add_int(cJSON *o, const char *name, int64_t v) {
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)v);
    cJSON_AddRawToObject(o, name, text);
}

vr_status vr_session_record_encode(const vr_session_record *r, uint8_t **out, size_t *len, vr_error *err) {
    *out = NULL;
    *len = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON *ids = cJSON_CreateArray();
    if (!o || !ids) {
        cJSON_Delete(o);
        cJSON_Delete(ids);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)r->fingerprint);
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "tenant", r->tenant);
    cJSON_AddStringToObject(o, "session", r->session);
    add_int(o, "committed_turn", r->committed_turn);
    cJSON_AddNumberToObject(o, "scan", r->scan);
    cJSON_AddStringToObject(o, "model_fingerprint", fp);
    add_int(o, "created_ms", r->created_ms);
    add_int(o, "updated_ms", r->updated_ms);
    add_int(o, "image_bytes", (int64_t)r->image_len);
    for (int i = 0; i < r->n_transcript; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->transcript[i]));
    cJSON_AddItemToObject(o, "transcript", ids);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    size_t tl = strlen(text);
    uint8_t *buf = malloc(tl + 1 + r->image_len);
    if (!buf) {
        free(text);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    memcpy(buf, text, tl + 1);
    if (r->image_len) memcpy(buf + tl + 1, r->image, r->image_len);
    free(text);
    *out = buf;
    *len = tl + 1 + r->image_len;
    return VR_OK;
}

vr_status vr_session_record_decode(const uint8_t *data, size_t len, vr_session_record *r, vr_error *err) {
    memset(r, 0, sizeof *r);
    const uint8_t *nul = memchr(data, 0, len);
    if (!nul) return vr_error_set(err, VR_ERR_FORMAT, "session record is corrupt (no header terminator)");
    cJSON *o = cJSON_Parse((const char *)data);
    if (!o) return vr_error_set(err, VR_ERR_FORMAT, "session record is corrupt (bad JSON)");
    vr_status st = VR_OK;
    const cJSON *v, *tenant = cJSON_GetObjectItemCaseSensitive(o, "tenant"),
                   *session = cJSON_GetObjectItemCaseSensitive(o, "session"),
                   *turn = cJSON_GetObjectItemCaseSensitive(o, "committed_turn"),
                   *scan = cJSON_GetObjectItemCaseSensitive(o, "scan"),
                   *fp = cJSON_GetObjectItemCaseSensitive(o, "model_fingerprint"),
                   *img = cJSON_GetObjectItemCaseSensitive(o, "image_bytes"),
                   *ids = cJSON_GetObjectItemCaseSensitive(o, "transcript");
    /* every number is range-checked before its cast (a huge double cast to an integer is UB) */
    int64_t turn_v = 0, scan_v = 0, img_v = 0, created = 0, updated = 0;
    uint64_t fp_v = 0;
    const cJSON *cms = cJSON_GetObjectItemCaseSensitive(o, "created_ms"),
                *ums = cJSON_GetObjectItemCaseSensitive(o, "updated_ms");
    if (!cJSON_IsString(tenant) || !cJSON_IsString(session) || !cJSON_IsString(fp) || !cJSON_IsArray(ids) ||
        strlen(tenant->valuestring) > 128 || strlen(session->valuestring) > 128 ||
        !json_int(turn, 0, MAX_EXACT, &turn_v) || !json_int(scan, VR_SCAN_UNI, VR_SCAN_MULTI, &scan_v) ||
        !json_int(img, 0, MAX_EXACT, &img_v) || (uint64_t)img_v != len - (size_t)(nul - data) - 1 ||
        !parse_fingerprint(fp->valuestring, &fp_v) || (cms && !json_int(cms, -MAX_EXACT, MAX_EXACT, &created)) ||
        (ums && !json_int(ums, -MAX_EXACT, MAX_EXACT, &updated)) || cJSON_GetArraySize(ids) > MAX_TRANSCRIPT) {
        st = vr_error_set(err, VR_ERR_FORMAT, "session record is corrupt (missing or inconsistent fields)");
        goto done;
    }
    snprintf(r->tenant, sizeof r->tenant, "%s", tenant->valuestring);
    snprintf(r->session, sizeof r->session, "%s", session->valuestring);
    r->committed_turn = turn_v;
    r->scan = (int)scan_v;
    r->fingerprint = fp_v;
    r->created_ms = created;
    r->updated_ms = updated;
    r->n_transcript = cJSON_GetArraySize(ids);
    r->transcript = malloc(sizeof(int32_t) * (size_t)(r->n_transcript + 1));
    if (!r->transcript) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    int i = 0;
    cJSON_ArrayForEach(v, ids) {
        int64_t id = 0;
        if (!json_int(v, -200, 1e7, &id)) {
            st = vr_error_set(err, VR_ERR_FORMAT, "session record is corrupt (bad transcript id)");
            goto done;
        }
        r->transcript[i++] = (int32_t)id;
    }
    r->image_len = (size_t)img_v;
    if (r->image_len) {
        r->image = malloc(r->image_len);
        if (!r->image) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(r->image, nul + 1, r->image_len);
    }
done:
    cJSON_Delete(o);
    if (st != VR_OK) vr_session_record_free(r);
    return st;
}

void vr_session_record_free(vr_session_record *r) {
    free(r->transcript);
    free(r->image);
    memset(r, 0, sizeof *r);
}

vr_status vr_session_record_append(vr_session_record *r, const int32_t *ids, int n, vr_error *err) {
    int32_t *t = realloc(r->transcript, sizeof(int32_t) * (size_t)(r->n_transcript + n + 1));
    if (!t) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    memcpy(t + r->n_transcript, ids, sizeof(int32_t) * (size_t)n);
    r->transcript = t;
    r->n_transcript += n;
    return VR_OK;
}
