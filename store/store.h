/* store/store.h — the conversation-state store shared by shard workers and the coordinator:
 * per-layer state blobs and the session record, keyed by tenant and session, with a TTL.
 * One interface, three backends chosen by URL:
 *   "redis://[[user]:password@]host[:port][/db]"  Redis through hiredis (AUTH and SELECT as given;
 *                                                 port defaults to 6379, db to 0)
 *   "memory"                                      embedded, in-process (lost at exit)
 *   "dir:/path"                                   embedded, one file per key under /path, written
 *                                                 atomically (temp file + rename)
 * Values are opaque bytes: this layer never parses a blob or a record (model/state.h checks
 * blobs, the coordinator serialises records). It must not know about models or tensors.
 *
 * Keys (Redis; the embedded backends keep the same structure):
 *   vrwkv:<tenant>:<session>:rec                    the session record
 *   vrwkv:<tenant>:<session>:blob:<turn>:<layer>    a layer's state blob after <turn>
 *   vrwkv:<tenant>:<session>:keys                   a set naming every other key of the session
 * Tenant and session ids must be 1..128 bytes of [A-Za-z0-9._-], and not "." or "..";
 * anything else is refused with VR_ERR_INVALID, so ids cannot inject into keys or paths.
 *
 * Every function is thread-safe (one mutex per store). With Redis, a lost connection is
 * re-established on the next call (and a call that fails on a broken connection is retried
 * once on a new one); connect and commands time out after 2 s, so a dead Redis gives
 * VR_ERR_UNAVAILABLE within a few seconds instead of hanging. */
#ifndef VR_STORE_H
#define VR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vr_store vr_store;

#define VR_STORE_ID_MAX 128                          /* longest tenant or session id, bytes */
#define VR_STORE_VALUE_MAX ((size_t)512 * 1024 * 1024) /* largest blob or record (Redis limit) */

/* Opens a store. ttl_seconds > 0: keys expire ttl_seconds after they were last written or
 * committed; <= 0: no expiry. Redis: connects now, so a wrong URL or a down server fails here
 * (VR_ERR_UNAVAILABLE; VR_ERR_AUTH for a refused password). dir: creates the directory
 * (mode 0700) when missing and removes expired files left from earlier runs. */
vr_status vr_store_open(const char *url, int ttl_seconds, vr_store **out, vr_error *err);
void vr_store_close(vr_store *s);

/* "redis", "memory" or "dir". */
const char *vr_store_backend(const vr_store *s);

/* Stores a blob (replacing any previous one) with the store's TTL. turn >= 0, layer >= 0. */
vr_status vr_store_put_blob(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                            const uint8_t *data, size_t len, vr_error *err);
/* *data is malloc'd (the caller frees it; never NULL on success, even for len 0).
 * VR_ERR_NOT_FOUND when absent or expired; *data = NULL, *len = 0 on any error. */
vr_status vr_store_get_blob(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                            uint8_t **data, size_t *len, vr_error *err);

/* Atomically (Redis MULTI/EXEC) sets the session record and refreshes the TTL of the record
 * and of every blob of `turn`. After a successful commit, blobs of turns < `turn` of this
 * session are deleted (best-effort: a failure there does not fail the commit). */
vr_status vr_store_commit_session(vr_store *s, const char *tenant, const char *session, int64_t turn,
                                  const uint8_t *record, size_t len, vr_error *err);
/* *rec is malloc'd; VR_ERR_NOT_FOUND when no record was committed or it expired. */
vr_status vr_store_get_session(vr_store *s, const char *tenant, const char *session, uint8_t **rec, size_t *len,
                               vr_error *err);
/* Removes every key of the session (record, all blobs of all turns, the index).
 * Deleting a session that does not exist is not an error. */
vr_status vr_store_delete_session(vr_store *s, const char *tenant, const char *session, vr_error *err);

/* Checks the store answers (Redis PING; dir: the directory is writable). */
vr_status vr_store_ping(vr_store *s, vr_error *err);

/* Counters since open, for metrics; readable at any time without waiting for a call in flight. */
typedef struct vr_store_stats_t {
    uint64_t ops;              /* calls of put/get/commit/get_session/delete/ping */
    uint64_t errors;           /* calls that failed with anything but VR_ERR_NOT_FOUND */
    uint64_t not_found;        /* calls that answered VR_ERR_NOT_FOUND */
    uint64_t reconnects;       /* Redis connections re-established after a lost one */
    uint64_t total_latency_ns; /* sum of call durations, lock wait included */
    uint64_t max_latency_ns;   /* longest call */
} vr_store_stats_t;

void vr_store_stats(vr_store *s, vr_store_stats_t *out);

/* VR_OK when id is a valid tenant or session id; VR_ERR_INVALID (naming `what`) otherwise. */
vr_status vr_store_check_id(const char *id, const char *what, vr_error *err);

#endif
