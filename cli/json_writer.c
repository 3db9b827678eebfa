/* cli/json_writer.c — JSON string escaping and arrays for the CLI's --json output. */
#include "cli/json_writer.h"

#include "model/tokenizer.h"

void vr_json_string(FILE *f, const char *s, size_t len) {
    fputc('"', f);
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            switch (c) {
            case '"': fputs("\\\"", f); break;
            case '\\': fputs("\\\\", f); break;
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            case '\b': fputs("\\b", f); break;
            case '\f': fputs("\\f", f); break;
            default:
                if (c < 0x20) fprintf(f, "\\u%04x", c);
                else fputc(c, f);
            }
            i++;
            continue;
        }
        size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if (n > 1 && i + n <= len && vr_utf8_valid(s + i, n)) {
            fwrite(s + i, 1, n, f);
            i += n;
        } else {
            fputs("\xef\xbf\xbd", f);
            i++;
        }
    }
    fputc('"', f);
}

void vr_json_ints(FILE *f, const int32_t *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", v[i]);
    fputc(']', f);
}
