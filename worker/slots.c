/* worker/slots.c — slot table with LRU eviction (linear scan: a shard holds at most a few
 * thousand sessions, and a scan is cheap next to a forward pass). */
#include "worker/slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

vr_status vr_slot_table_init(vr_slot_table *t, vr_backend *be, const vr_model_config *cfg, int layer_first,
                             int layer_last, int capacity, vr_error *err) {
    memset(t, 0, sizeof *t);
    if (capacity <= 0) return vr_error_set(err, VR_ERR_INVALID, "a shard needs at least one state slot");
    t->slots = calloc((size_t)capacity, sizeof *t->slots);
    if (!t->slots) return vr_error_set(err, VR_ERR_NOMEM, "out of memory for %d slots", capacity);
    t->capacity = capacity;
    t->be = be;
    t->cfg = *cfg;
    t->layer_first = layer_first;
    t->layer_last = layer_last;
    return VR_OK;
}

static void slot_clear(vr_slot *s) {
    vr_state_free(s->state);
    vr_sampler_free(s->sampler);
    memset(s, 0, sizeof *s);
}

void vr_slot_table_free(vr_slot_table *t) {
    if (!t->slots) return;
    for (int i = 0; i < t->capacity; i++)
        if (t->slots[i].in_use) slot_clear(&t->slots[i]);
    free(t->slots);
    t->slots = NULL;
}

vr_slot *vr_slot_find(vr_slot_table *t, const char *tenant, const char *session) {
    for (int i = 0; i < t->capacity; i++) {
        vr_slot *s = &t->slots[i];
        if (s->in_use && !strcmp(s->tenant, tenant) && !strcmp(s->session, session)) {
            s->last_used = ++t->clock;
            return s;
        }
    }
    return NULL;
}

vr_status vr_slot_acquire(vr_slot_table *t, const char *tenant, const char *session, vr_slot **out, vr_error *err) {
    *out = vr_slot_find(t, tenant, session);
    if (*out) return VR_OK;
    if (strlen(tenant) > 128 || strlen(session) > 128)
        return vr_error_set(err, VR_ERR_INVALID, "tenant or session id longer than 128 bytes");
    vr_slot *free_slot = NULL, *lru = NULL;
    for (int i = 0; i < t->capacity && !free_slot; i++) {
        vr_slot *s = &t->slots[i];
        if (!s->in_use) free_slot = s;
        else if (!lru || s->last_used < lru->last_used) lru = s;
    }
    if (!free_slot) {
        /* every committed turn is already in the store: dropping the memory copy loses nothing */
        slot_clear(lru);
        t->evictions++;
        free_slot = lru;
    }
    vr_status st = vr_state_create(t->be, &t->cfg, t->layer_first, t->layer_last, &free_slot->state, err);
    if (st != VR_OK) return st;
    free_slot->in_use = 1;
    snprintf(free_slot->tenant, sizeof free_slot->tenant, "%s", tenant);
    snprintf(free_slot->session, sizeof free_slot->session, "%s", session);
    free_slot->last_used = ++t->clock;
    *out = free_slot;
    return VR_OK;
}

void vr_slot_release(vr_slot_table *t, vr_slot *s) {
    (void)t;
    if (s && s->in_use) slot_clear(s);
}

int vr_slot_count(const vr_slot_table *t) {
    int n = 0;
    for (int i = 0; i < t->capacity; i++) n += t->slots[i].in_use;
    return n;
}
