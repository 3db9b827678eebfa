/* common/pytext_tables.h - declarations of the generated Python/Unicode data tables
 * (common/pytext_tables.c, written by tools/gen_pytext_tables.py). Data only: the logic that
 * uses them is in common/pytext.c; nothing else should read these directly. */
#ifndef VR_PYTEXT_TABLES_H
#define VR_PYTEXT_TABLES_H

#include <stddef.h>
#include <stdint.h>

typedef struct vr_pyt_lower_entry {
    uint32_t cp;     /* a code point that str.lower() changes */
    uint32_t n;      /* how many code points it becomes (1..3) */
    uint32_t out[3]; /* those code points */
} vr_pyt_lower_entry;

extern const uint32_t vr_pyt_space[];        /* str.isspace() == regex \s, sorted */
extern const size_t vr_pyt_space_n;
extern const uint32_t vr_pyt_decimal[][2];   /* regex \d: inclusive ranges, sorted */
extern const size_t vr_pyt_decimal_n;
extern const vr_pyt_lower_entry vr_pyt_lower[]; /* sorted by cp */
extern const size_t vr_pyt_lower_n;
extern const uint32_t vr_pyt_nonprint[][2];  /* not str.isprintable(): inclusive ranges, sorted */
extern const size_t vr_pyt_nonprint_n;
extern const uint32_t vr_pyt_case_ignorable[][2]; /* Final_Sigma context: case-ignorable */
extern const size_t vr_pyt_case_ignorable_n;
extern const uint32_t vr_pyt_cased[][2];          /* cased (among non-case-ignorable) */
extern const size_t vr_pyt_cased_n;

#endif
