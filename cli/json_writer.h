/* cli/json_writer.h — writing JSON to a FILE: strings from arbitrary bytes (invalid UTF-8
 * becomes U+FFFD per bad byte, so output is always valid JSON) and int arrays. */
#ifndef VR_CLI_JSON_WRITER_H
#define VR_CLI_JSON_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

void vr_json_string(FILE *f, const char *s, size_t len);
void vr_json_ints(FILE *f, const int32_t *v, int n);

#endif
