/* tests/fuzz/libfuzzer_seeds.c — linked into each fuzz target instead of replay_driver.c when
 * built for libFuzzer (-DVRWKV_LIBFUZZER=ON): before fuzzing starts, the target's seeds
 * (vr_fuzz_seeds) are written into the first corpus folder on the command line (created if
 * absent) as seed-NN, so `fuzz_x corpus/` starts from them. A file argument (reproducing a
 * crash) is left alone. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes);

static int mkdir_p(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *dir = NULL;
    for (int i = 1; i < *argc; i++)
        if ((*argv)[i][0] != '-') {
            dir = (*argv)[i];
            break;
        }
    if (!dir) return 0;
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) return 0; /* an input to run, not a corpus */
    if (mkdir_p(dir) != 0) {
        fprintf(stderr, "libfuzzer_seeds: cannot create %s: %s\n", dir, strerror(errno));
        return 0;
    }
    uint8_t **seeds = NULL;
    size_t *sizes = NULL;
    int n = vr_fuzz_seeds(&seeds, &sizes);
    for (int i = 0; i < n; i++) {
        char path[4096], tmp[4200];
        snprintf(path, sizeof path, "%s/seed-%02d", dir, i);
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()); /* -jobs: each writes its own */
        FILE *f = fopen(tmp, "wb");
        if (!f || fwrite(seeds[i], 1, sizes[i], f) != sizes[i] || fclose(f) != 0 || rename(tmp, path) != 0)
            fprintf(stderr, "libfuzzer_seeds: cannot write %s\n", path);
        free(seeds[i]);
    }
    free(seeds);
    free(sizes);
    return 0;
}
