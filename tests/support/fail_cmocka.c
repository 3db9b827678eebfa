/* tests/support/fail_cmocka.c — vrt_fail for the cmocka tests: fails the running test (cmocka
 * jumps back to its runner). Only this file of tests/support needs cmocka. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "tests/support/fixtures.h"

void vrt_fail(const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail_msg("%s", msg);
    abort(); /* not reached: fail_msg does not return */
}
