/* worker/slots.h — the live recurrent states a shard holds, one slot per (tenant, session),
 * with least-recently-used eviction. A slot remembers which committed turn and how many
 * consumed ids its state reflects, so a shard can tell whether it may continue in memory or
 * must restore from the store. Holds no math and no I/O. */
#ifndef VR_SLOTS_H
#define VR_SLOTS_H

#include <stdint.h>

#include "model/sampler.h"
#include "model/state.h"

typedef struct vr_slot {
    char tenant[129], session[129];
    vr_state *state;
    vr_sampler *sampler; /* last stage only; NULL until a turn samples */
    int64_t turn;        /* the committed turn the state started this turn from (or reached) */
    int64_t tokens;      /* ids consumed in total */
    int committed;       /* the state is exactly committed turn `turn` (checkpointed or restored, not
                          * advanced since): the only kind a shard hands to its replacement */
    uint64_t last_used;
    int in_use;
} vr_slot;

typedef struct vr_slot_table {
    vr_slot *slots;
    int capacity;
    uint64_t clock;
    vr_backend *be;
    vr_model_config cfg;
    int layer_first, layer_last;
    uint64_t evictions;
} vr_slot_table;

vr_status vr_slot_table_init(vr_slot_table *t, vr_backend *be, const vr_model_config *cfg, int layer_first,
                             int layer_last, int capacity, vr_error *err);
void vr_slot_table_free(vr_slot_table *t);
/* The slot of (tenant, session) or NULL; touches it (LRU). */
vr_slot *vr_slot_find(vr_slot_table *t, const char *tenant, const char *session);
/* The slot of (tenant, session), created (zero state, turn 0, tokens 0) when absent, evicting
 * the least recently used slot when the table is full. */
vr_status vr_slot_acquire(vr_slot_table *t, const char *tenant, const char *session, vr_slot **out, vr_error *err);
void vr_slot_release(vr_slot_table *t, vr_slot *s);
int vr_slot_count(const vr_slot_table *t);

#endif
