/* coordinator/encode_queue.c — the image encodes the scheduler needs while a turn is in flight
 * (its delivered features went stale because stage 0 changed, stage 0 lost them, or a rebuild
 * must recompute a transcript that holds an image), run on a thread of their own. An encode can
 * take seconds, or its full RPC deadline when the vision worker hangs; on the scheduler's thread
 * it would hold up the decode step of every other turn for that long.
 *
 * The turn is handed over in phase REQ_ENCODE and the scheduler leaves it alone until it comes
 * back on enc_done. This thread writes only the turn's enc_* fields, never its phase or its
 * features: the scheduler moves the answer in. No model math and no scheduling decisions here. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "coordinator/internal.h"

static void finish_locked(vr_coordinator *c, vr_request *r) {
    r->next_enc = c->enc_done;
    c->enc_done = r;
    pthread_cond_signal(&c->q_cv);
}

static void *encode_loop(void *p) {
    vr_coordinator *c = p;
    pthread_mutex_lock(&c->q_mu);
    for (;;) {
        while (!c->enc_stop && !c->enc_head) pthread_cond_wait(&c->enc_cv, &c->q_mu);
        if (c->enc_stop) break;
        vr_request *r = c->enc_head;
        c->enc_head = r->next_enc;
        if (!c->enc_head) c->enc_tail = NULL;
        pthread_mutex_unlock(&c->q_mu);

        vr_error err = {0};
        vr_image_features f = {0};
        pthread_mutex_lock(&r->mu);
        int cancelled = r->cancelled; /* its client went away while it waited here: no encode */
        pthread_mutex_unlock(&r->mu);
        vr_status st = cancelled ? vr_error_set(&err, VR_ERR_CANCELLED, "the client cancelled the request")
                       : r->record.image
                           ? vr_cluster_encode_image(c, r->record.image, r->record.image_len, r->enc_deliver, &f, &err)
                           : vr_error_set(&err, VR_ERR_UNAVAILABLE,
                                          "the session's image is missing: cannot encode it again");
        pthread_mutex_lock(&c->q_mu);
        r->enc_status = st;
        r->enc_features = f;
        snprintf(r->enc_msg, sizeof r->enc_msg, "%s", st == VR_OK ? "" : err.msg);
        finish_locked(c, r);
    }
    /* stopping: what never started comes back failed */
    while (c->enc_head) {
        vr_request *r = c->enc_head;
        c->enc_head = r->next_enc;
        r->enc_status = VR_ERR_UNAVAILABLE;
        snprintf(r->enc_msg, sizeof r->enc_msg, "the server is shutting down");
        finish_locked(c, r);
    }
    c->enc_tail = NULL;
    pthread_mutex_unlock(&c->q_mu);
    return NULL;
}

vr_status vr_encode_queue_start(vr_coordinator *c, vr_error *err) {
    c->enc_head = c->enc_tail = c->enc_done = NULL;
    c->enc_stop = 0;
    if (pthread_cond_init(&c->enc_cv, NULL) != 0) return vr_error_set(err, VR_ERR_INTERNAL, "cannot start the encoder");
    if (pthread_create(&c->encoder, NULL, encode_loop, c) != 0) {
        pthread_cond_destroy(&c->enc_cv);
        return vr_error_set(err, VR_ERR_INTERNAL, "cannot start the encode thread");
    }
    c->enc_started = 1;
    return VR_OK;
}

void vr_encode_queue_stop(vr_coordinator *c) {
    if (!c->enc_started) return;
    pthread_mutex_lock(&c->q_mu);
    c->enc_stop = 1;
    pthread_cond_broadcast(&c->enc_cv);
    pthread_mutex_unlock(&c->q_mu);
    pthread_join(c->encoder, NULL);
    pthread_cond_destroy(&c->enc_cv);
    c->enc_started = 0;
}

void vr_encode_queue_push(vr_coordinator *c, vr_request *r, int deliver, vr_req_phase next) {
    vr_log(VR_LOG_INFO, "features_reencode", "tenant=%s session=%s key=%016llx deliver=%d", r->tenant, r->session,
           (unsigned long long)r->features.key, deliver);
    r->phase = REQ_ENCODE;
    r->enc_deliver = deliver;
    r->enc_next = next;
    r->enc_status = VR_OK;
    r->enc_msg[0] = 0;
    pthread_mutex_lock(&c->q_mu);
    r->next_enc = NULL;
    if (c->enc_tail) c->enc_tail->next_enc = r;
    else c->enc_head = r;
    c->enc_tail = r;
    pthread_cond_signal(&c->enc_cv);
    pthread_mutex_unlock(&c->q_mu);
}

vr_request *vr_encode_queue_take_done_locked(vr_coordinator *c) {
    vr_request *done = c->enc_done;
    c->enc_done = NULL;
    return done;
}
