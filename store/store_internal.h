/* store/store_internal.h — what the store front (store.c) and its backends share: the backend
 * table and the store struct. Only the store/ sources include it; it must not leak into other folders. */
#ifndef VR_STORE_INTERNAL_H
#define VR_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "store/store.h"

/* A backend's operations. store.c validates arguments and holds the store mutex around
 * every call, so backends see valid ids, turn >= 0, layer >= 0 and need no locking. */
typedef struct vr_store_backend_ops {
    const char *name;
    vr_status (*put_blob)(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                          const uint8_t *data, size_t len, vr_error *err);
    vr_status (*get_blob)(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                          uint8_t **data, size_t *len, vr_error *err);
    vr_status (*commit)(vr_store *s, const char *tenant, const char *session, int64_t turn, const uint8_t *rec,
                        size_t len, vr_error *err);
    vr_status (*get_session)(vr_store *s, const char *tenant, const char *session, uint8_t **rec, size_t *len,
                             vr_error *err);
    vr_status (*delete_session)(vr_store *s, const char *tenant, const char *session, vr_error *err);
    vr_status (*ping)(vr_store *s, vr_error *err);
    void (*close)(vr_store *s); /* frees s->impl */
} vr_store_backend_ops;

struct vr_store {
    const vr_store_backend_ops *ops;
    void *impl;
    int ttl; /* seconds, <= 0: none */
    pthread_mutex_t mu;
    _Atomic uint64_t n_ops, n_errors, n_not_found, n_reconnects, lat_total_ns, lat_max_ns;
};

/* Each fills s->ops and s->impl; s->ttl is already set. */
vr_status vr_store_redis_open(vr_store *s, const char *url, vr_error *err);
vr_status vr_store_memory_open(vr_store *s, vr_error *err);
vr_status vr_store_dir_open(vr_store *s, const char *path, vr_error *err);

/* A malloc'd copy of n bytes (at least 1 byte allocated, so never NULL on success). */
uint8_t *vr_store_dup_bytes(const uint8_t *p, size_t n);

#endif
