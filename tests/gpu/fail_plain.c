/* tests/gpu/fail_plain.c — vrt_fail for the plain-C GPU tests (the device machine may have no
 * cmocka): prints the message and exits with status 1. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/support/fixtures.h"

void vrt_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stdout);
    exit(1);
}
