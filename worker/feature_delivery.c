/* worker/feature_delivery.c — the vision-to-stage-0 feature path (see feature_delivery.h): the
 * frame, the inbox's storage and the sender, over worker/frame_link. Must not interpret the
 * floats beyond their shape, and must never report features delivered that were not stored. */
#include "worker/feature_delivery.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bytes.h"
#include "common/log.h"
#include "worker/frame_link.h"

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ inbox */

typedef struct entry {
    uint64_t key;
    float *data;
    size_t bytes;
    int64_t expires_ms;
    struct entry *next;
} entry;

struct vr_feature_inbox {
    vr_feature_inbox_options o;
    pthread_mutex_t mu;
    entry *entries;
    int n_entries;
    size_t bytes;
    vr_frame_server *server; /* the vision workers' connections */
};

/* Drops expired entries (with mu held). */
static void expire(vr_feature_inbox *in, int64_t now) {
    for (entry **pp = &in->entries; *pp;) {
        entry *e = *pp;
        if (e->expires_ms > now) {
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        in->bytes -= e->bytes;
        in->n_entries--;
        vr_log(VR_LOG_WARN, "features_expired", "key=%016llx", (unsigned long long)e->key);
        free(e->data);
        free(e);
    }
}

vr_status vr_features_frame_check(const uint8_t *p, size_t len, int n_img, int n_embd, uint64_t *key,
                                  const uint8_t **floats, vr_error *err) {
    *key = len >= 16 ? vr_get_u64le(p + 8) : 0;
    *floats = NULL;
    if (len < VR_FEATURES_HEADER_SIZE || memcmp(p, VR_FEATURES_MAGIC, 4) != 0)
        return vr_error_set(err, VR_ERR_FORMAT, "not a features frame (%zu bytes)", len);
    uint32_t version = vr_get_u32le(p + 4), rows = vr_get_u32le(p + 16), cols = vr_get_u32le(p + 20);
    if (version != VR_FEATURES_VERSION)
        return vr_error_set(err, VR_ERR_FORMAT, "features frame version %u; this build speaks %d", version,
                            VR_FEATURES_VERSION);
    if ((int64_t)rows != n_img || (int64_t)cols != n_embd)
        return vr_error_set(err, VR_ERR_INVALID, "features of shape [%u, %u]; this model takes [%d, %d]", rows, cols,
                            n_img, n_embd);
    size_t bytes = (size_t)rows * cols * sizeof(float);
    if (len != VR_FEATURES_HEADER_SIZE + bytes)
        return vr_error_set(err, VR_ERR_FORMAT, "features frame of %zu bytes, its header says %zu", len,
                            VR_FEATURES_HEADER_SIZE + bytes);
    *floats = p + VR_FEATURES_HEADER_SIZE;
    return VR_OK;
}

/* Checks one features frame and stores it; the status and message go back in the ack. */
static vr_status store_frame(vr_feature_inbox *in, const uint8_t *p, size_t len, uint64_t *key, vr_error *err) {
    const uint8_t *floats = NULL;
    vr_status st = vr_features_frame_check(p, len, in->o.n_img, in->o.n_embd, key, &floats, err);
    if (st != VR_OK) return st;
    size_t bytes = len - VR_FEATURES_HEADER_SIZE;
    entry *e = calloc(1, sizeof *e);
    float *data = malloc(bytes ? bytes : 1);
    if (!e || !data) {
        free(e);
        free(data);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory for %zu bytes of features", bytes);
    }
    memcpy(data, floats, bytes);
    pthread_mutex_lock(&in->mu);
    int64_t now = now_ms();
    expire(in, now);
    for (entry **pp = &in->entries; *pp; pp = &(*pp)->next) /* a key sent again replaces the old copy */
        if ((*pp)->key == *key) {
            entry *old = *pp;
            *pp = old->next;
            in->bytes -= old->bytes;
            in->n_entries--;
            free(old->data);
            free(old);
            break;
        }
    if (in->bytes + bytes > in->o.max_bytes) {
        st = vr_error_set(err, VR_ERR_NOMEM, "the features inbox is full (%zu of %zu bytes held)", in->bytes,
                          in->o.max_bytes);
    } else {
        e->key = *key;
        e->data = data;
        e->bytes = bytes;
        e->expires_ms = now + in->o.ttl_ms;
        e->next = in->entries;
        in->entries = e;
        in->n_entries++;
        in->bytes += bytes;
        e = NULL;
        data = NULL;
    }
    pthread_mutex_unlock(&in->mu);
    free(e);
    free(data);
    return st;
}

static vr_status handle_frame(void *ctx, const uint8_t *frame, size_t len, uint64_t *key, vr_error *err) {
    vr_feature_inbox *in = ctx;
    vr_status st = store_frame(in, frame, len, key, err);
    if (st == VR_OK)
        vr_log(VR_LOG_DEBUG, "features_received", "key=%016llx", (unsigned long long)*key);
    else
        vr_log(VR_LOG_WARN, "features_refused", "key=%016llx error=%s", (unsigned long long)*key, err->msg);
    return st;
}

vr_status vr_feature_inbox_create(const vr_feature_inbox_options *o, vr_feature_inbox **out, vr_error *err) {
    *out = NULL;
    if (o->n_img <= 0 || o->n_embd <= 0 || o->ttl_ms <= 0 || o->max_peers <= 0)
        return vr_error_set(err, VR_ERR_INVALID, "features inbox: bad options");
    vr_feature_inbox *in = calloc(1, sizeof *in);
    if (!in) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    in->o = *o;
    pthread_mutex_init(&in->mu, NULL);
    size_t max_frame = VR_FEATURES_HEADER_SIZE + (size_t)o->n_img * o->n_embd * sizeof(float);
    vr_status st = vr_frame_server_create(VR_FEATURES_TAG, VR_FEATURES_ACK_TAG, o->max_peers, max_frame, handle_frame, in,
                                          &in->server, err);
    if (st != VR_OK) {
        vr_feature_inbox_free(in);
        return st;
    }
    *out = in;
    return VR_OK;
}

void vr_feature_inbox_use_nccl(vr_feature_inbox *in, int device) { vr_frame_server_use_nccl(in->server, device); }

vr_status vr_feature_inbox_serve(vr_feature_inbox *in, vr_transport *t, vr_error *err) {
    return vr_frame_server_serve(in->server, t, err);
}

vr_status vr_feature_inbox_take(vr_feature_inbox *in, uint64_t key, float **features, vr_error *err) {
    *features = NULL;
    pthread_mutex_lock(&in->mu);
    expire(in, now_ms());
    for (entry **pp = &in->entries; *pp; pp = &(*pp)->next) {
        if ((*pp)->key != key) continue;
        entry *e = *pp;
        *pp = e->next;
        in->bytes -= e->bytes;
        in->n_entries--;
        pthread_mutex_unlock(&in->mu);
        *features = e->data;
        free(e);
        return VR_OK;
    }
    pthread_mutex_unlock(&in->mu);
    return vr_error_set(err, VR_ERR_NOT_FOUND,
                        "image features %016llx are not on this shard (taken already, expired, or sent to another "
                        "stage 0); retry the request",
                        (unsigned long long)key);
}

int vr_feature_inbox_has(vr_feature_inbox *in, uint64_t key) {
    pthread_mutex_lock(&in->mu);
    expire(in, now_ms());
    int found = 0;
    for (const entry *e = in->entries; e && !found; e = e->next) found = e->key == key;
    pthread_mutex_unlock(&in->mu);
    return found;
}

void vr_feature_inbox_usage(vr_feature_inbox *in, int *entries, size_t *bytes) {
    pthread_mutex_lock(&in->mu);
    expire(in, now_ms());
    if (entries) *entries = in->n_entries;
    if (bytes) *bytes = in->bytes;
    pthread_mutex_unlock(&in->mu);
}

void vr_feature_inbox_free(vr_feature_inbox *in) {
    if (!in) return;
    vr_frame_server_free(in->server); /* first: no handler runs after this */
    while (in->entries) {
        entry *e = in->entries;
        in->entries = e->next;
        free(e->data);
        free(e);
    }
    pthread_mutex_destroy(&in->mu);
    free(in);
}

/* ------------------------------------------------------------------ sender */

struct vr_feature_sender {
    vr_frame_client *client;
    pthread_mutex_t mu; /* guards all below */
    uint8_t *frame;
    size_t frame_cap;
    /* the last address that could not be reached, and until when it is not tried again: a stage
     * 0 behind a dropping firewall must not cost every image a connect timeout */
    char failed[300];
    int64_t failed_until_ms;
    char failed_why[200];
};

vr_status vr_feature_sender_create(vr_feature_sender **out, vr_error *err) {
    vr_feature_sender *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    vr_status st = vr_frame_client_create(VR_PEER_VISION, VR_FEATURES_TAG, VR_FEATURES_ACK_TAG, &s->client, err);
    if (st != VR_OK) {
        vr_feature_sender_free(s);
        return st;
    }
    *out = s;
    return VR_OK;
}

void vr_feature_sender_use_nccl(vr_feature_sender *s, int device) { vr_frame_client_use_nccl(s->client, device); }

vr_status vr_feature_sender_deliver(vr_feature_sender *s, const char *address, uint64_t key, const float *features,
                                    int n_img, int n_embd, int timeout_ms, vr_error *err) {
    if (!address || !*address || n_img <= 0 || n_embd <= 0 || !features)
        return vr_error_set(err, VR_ERR_INVALID, "features delivery: bad arguments");
    size_t bytes = (size_t)n_img * n_embd * sizeof(float), len = VR_FEATURES_HEADER_SIZE + bytes;
    pthread_mutex_lock(&s->mu);
    vr_status st = VR_OK;
    int64_t now = now_ms();
    if (!strcmp(s->failed, address) && now < s->failed_until_ms) {
        st = vr_error_set(err, VR_ERR_UNAVAILABLE, "%s could not be reached just now (%s); tried again in %lld ms",
                          address, s->failed_why, (long long)(s->failed_until_ms - now));
        pthread_mutex_unlock(&s->mu);
        return st;
    }
    if (len > s->frame_cap) {
        uint8_t *f = realloc(s->frame, len);
        if (!f) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory for a %zu-byte features frame", len);
        else s->frame = f, s->frame_cap = len;
    }
    if (st == VR_OK) {
        memcpy(s->frame, VR_FEATURES_MAGIC, 4);
        vr_put_u32le(s->frame + 4, VR_FEATURES_VERSION);
        vr_put_u64le(s->frame + 8, key);
        vr_put_u32le(s->frame + 16, (uint32_t)n_img);
        vr_put_u32le(s->frame + 20, (uint32_t)n_embd);
        memcpy(s->frame + VR_FEATURES_HEADER_SIZE, features, bytes);
        st = vr_frame_client_send(s->client, address, key, s->frame, len, timeout_ms, err);
        if (st == VR_OK) {
            s->failed[0] = 0;
        } else if (st == VR_ERR_UNAVAILABLE || st == VR_ERR_CANCELLED || st == VR_ERR_FORMAT) { /* not a refusal */
            snprintf(s->failed, sizeof s->failed, "%s", address);
            snprintf(s->failed_why, sizeof s->failed_why, "%.150s", err->msg);
            s->failed_until_ms = now_ms() + VR_FEATURES_RETRY_MS;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

void vr_feature_sender_free(vr_feature_sender *s) {
    if (!s) return;
    vr_frame_client_free(s->client);
    free(s->frame);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
