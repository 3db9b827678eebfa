/* tests/support/model_checks.h — the fixture checks of the engine, run on a named backend
 * ("cpu", "cuda"). Each fails through vrt_fail. Needs ../shared (vrt_shared_dir()). */
#ifndef VR_TEST_MODEL_CHECKS_H
#define VR_TEST_MODEL_CHECKS_H

#include "model/engine.h"

/* Opens fixtures/<set>/model.pth with its model.json on backend. */
vr_engine *vrt_open_set(const char *set, const char *backend);
/* forward.json: every case, all three scan modes (18 checked). */
void vrt_run_forward_set(const char *set, const char *backend);
/* multiturn.json: two chunks on one state (6 checked). */
void vrt_run_multiturn_set(const char *set, const char *backend);
/* textonly.json and demo.json. */
void vrt_run_text_and_demo(const char *set, const char *backend);
/* B sessions stepped together give the same logits as each stepped alone (tiny set). */
void vrt_batched_step_equals_single(const char *backend);

#endif
