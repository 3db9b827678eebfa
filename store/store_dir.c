/* store/store_dir.c — the embedded file backend ("dir:/path"): one file per key,
 *   /path/<tenant>/<session>/rec and /path/<tenant>/<session>/blob.<turn>.<layer>,
 * each written to a temp file in the same directory, fsync'd, then renamed over the old one,
 * so a reader (or a crash) never sees a half-written value. TTL is the file's mtime + ttl:
 * expired files read as absent and are removed lazily and by the sweep at open.
 * Must not follow ids outside /path: store.c refuses ids other than [A-Za-z0-9._-], ".", "..". */
#include "store/store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMP_PREFIX ".tmp."
#define STALE_TMP_SECONDS 3600

typedef struct dir_impl {
    char root[PATH_MAX];
} dir_impl;

static vr_status path_of(vr_store *s, char *buf, size_t cap, const char *tenant, const char *session,
                         const char *name, vr_error *err) {
    dir_impl *d = s->impl;
    int n = name ? snprintf(buf, cap, "%s/%s/%s/%s", d->root, tenant, session, name)
                 : snprintf(buf, cap, "%s/%s/%s", d->root, tenant, session);
    if (n < 0 || (size_t)n >= cap)
        return vr_error_set(err, VR_ERR_INVALID, "store path under %s is longer than %zu bytes", d->root, cap);
    return VR_OK;
}

static void blob_name(char *buf, size_t cap, int64_t turn, int layer) {
    snprintf(buf, cap, "blob.%lld.%d", (long long)turn, layer);
}

/* Parses "blob.<turn>.<layer>"; returns 1 on a match. */
static int parse_blob_name(const char *name, int64_t *turn, int *layer) {
    if (strncmp(name, "blob.", 5) != 0) return 0;
    const char *p = name + 5;
    char *end = NULL;
    errno = 0;
    long long t = strtoll(p, &end, 10);
    if (errno || end == p || *end != '.' || t < 0) return 0;
    p = end + 1;
    long l = strtol(p, &end, 10);
    if (errno || end == p || *end != 0 || l < 0 || l > INT_MAX) return 0;
    *turn = t;
    *layer = (int)l;
    return 1;
}

static struct timespec wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

/* mtime + ttl <= now, to the nanosecond. */
static int is_expired(const vr_store *s, const struct stat *stt, struct timespec now) {
    if (s->ttl <= 0) return 0;
    time_t end = stt->st_mtim.tv_sec + (time_t)s->ttl;
    return end < now.tv_sec || (end == now.tv_sec && stt->st_mtim.tv_nsec <= now.tv_nsec);
}

static vr_status mkdir_one(const char *path, vr_error *err) {
    if (mkdir(path, 0700) == 0 || errno == EEXIST) return VR_OK;
    return vr_error_set(err, VR_ERR_IO, "cannot create directory %s: %s", path, strerror(errno));
}

static vr_status ensure_session_dir(vr_store *s, const char *tenant, const char *session, vr_error *err) {
    dir_impl *d = s->impl;
    char p[PATH_MAX];
    int n = snprintf(p, sizeof p, "%s/%s", d->root, tenant);
    if (n < 0 || (size_t)n >= sizeof p)
        return vr_error_set(err, VR_ERR_INVALID, "store path under %s is too long", d->root);
    vr_status st = mkdir_one(p, err);
    if (st != VR_OK) return st;
    st = path_of(s, p, sizeof p, tenant, session, NULL, err);
    if (st != VR_OK) return st;
    return mkdir_one(p, err);
}

static vr_status write_all(int fd, const uint8_t *p, size_t n, const char *path, vr_error *err) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return vr_error_set(err, VR_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return VR_OK;
}

/* Writes dir/name atomically: temp file in dir, fsync, rename. */
static vr_status write_atomic(const char *dir, const char *name, const uint8_t *data, size_t len, vr_error *err) {
    char tmp[PATH_MAX], final[PATH_MAX];
    int a = snprintf(tmp, sizeof tmp, "%s/" TMP_PREFIX "%s.XXXXXX", dir, name);
    int b = snprintf(final, sizeof final, "%s/%s", dir, name);
    if (a < 0 || (size_t)a >= sizeof tmp || b < 0 || (size_t)b >= sizeof final)
        return vr_error_set(err, VR_ERR_INVALID, "store path under %s is too long", dir);
    int fd = mkstemp(tmp);
    if (fd < 0) return vr_error_set(err, VR_ERR_IO, "cannot create a temp file in %s: %s", dir, strerror(errno));
    vr_status st = write_all(fd, data, len, tmp, err);
    if (st == VR_OK && fsync(fd) != 0) st = vr_error_set(err, VR_ERR_IO, "cannot fsync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == VR_OK)
        st = vr_error_set(err, VR_ERR_IO, "cannot close %s: %s", tmp, strerror(errno));
    if (st == VR_OK && rename(tmp, final) != 0)
        st = vr_error_set(err, VR_ERR_IO, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
    if (st != VR_OK) unlink(tmp);
    return st;
}

/* Reads a whole file; VR_ERR_NOT_FOUND when missing or expired (an expired file is removed). */
static vr_status read_value(vr_store *s, const char *path, const char *what, uint8_t **data, size_t *len,
                            vr_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return vr_error_set(err, VR_ERR_NOT_FOUND, "no %s (%s)", what, path);
        return vr_error_set(err, VR_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    struct stat stt;
    if (fstat(fd, &stt) != 0) {
        close(fd);
        return vr_error_set(err, VR_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    }
    if (is_expired(s, &stt, wall_now())) {
        close(fd);
        unlink(path);
        return vr_error_set(err, VR_ERR_NOT_FOUND, "no %s (%s expired)", what, path);
    }
    if (!S_ISREG(stt.st_mode) || (uint64_t)stt.st_size > VR_STORE_VALUE_MAX) {
        close(fd);
        return vr_error_set(err, VR_ERR_FORMAT, "%s is not a regular file under %zu bytes", path, VR_STORE_VALUE_MAX);
    }
    size_t n = (size_t)stt.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory reading %zu bytes from %s", n, path);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            free(buf);
            return vr_error_set(err, VR_ERR_IO, "cannot read %s: %s", path, e ? strerror(e) : "file shrank");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *len = n;
    return VR_OK;
}

static vr_status dir_put_blob(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                              const uint8_t *data, size_t len, vr_error *err) {
    char dir[PATH_MAX], name[64];
    vr_status st = ensure_session_dir(s, tenant, session, err);
    if (st == VR_OK) st = path_of(s, dir, sizeof dir, tenant, session, NULL, err);
    if (st != VR_OK) return st;
    blob_name(name, sizeof name, turn, layer);
    return write_atomic(dir, name, data, len, err);
}

static vr_status dir_get_blob(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                              uint8_t **data, size_t *len, vr_error *err) {
    char path[PATH_MAX], name[64], what[2 * VR_STORE_ID_MAX + 128];
    blob_name(name, sizeof name, turn, layer);
    vr_status st = path_of(s, path, sizeof path, tenant, session, name, err);
    if (st != VR_OK) return st;
    snprintf(what, sizeof what, "state blob for tenant %s session %s turn %lld layer %d", tenant, session,
             (long long)turn, layer);
    return read_value(s, path, what, data, len, err);
}

static vr_status dir_commit(vr_store *s, const char *tenant, const char *session, int64_t turn, const uint8_t *rec,
                            size_t len, vr_error *err) {
    char dir[PATH_MAX];
    vr_status st = ensure_session_dir(s, tenant, session, err);
    if (st == VR_OK) st = path_of(s, dir, sizeof dir, tenant, session, NULL, err);
    if (st == VR_OK) st = write_atomic(dir, "rec", rec, len, err);
    if (st != VR_OK) return st;
    /* Refresh this turn's blobs (mtime = now), drop older turns: best-effort. */
    DIR *dh = opendir(dir);
    if (!dh) return VR_OK;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        int64_t t = 0;
        int l = 0;
        if (!parse_blob_name(e->d_name, &t, &l) || t > turn) continue;
        if (t == turn && s->ttl <= 0) continue;
        if (t == turn)
            utimensat(dirfd(dh), e->d_name, NULL, 0);
        else
            unlinkat(dirfd(dh), e->d_name, 0);
    }
    closedir(dh);
    return VR_OK;
}

static vr_status dir_get_session(vr_store *s, const char *tenant, const char *session, uint8_t **rec, size_t *len,
                                 vr_error *err) {
    char path[PATH_MAX], what[2 * VR_STORE_ID_MAX + 96];
    vr_status st = path_of(s, path, sizeof path, tenant, session, "rec", err);
    if (st != VR_OK) return st;
    snprintf(what, sizeof what, "session record for tenant %s session %s", tenant, session);
    return read_value(s, path, what, rec, len, err);
}

/* Removes every entry of a session directory, then the directory. */
static vr_status remove_session_dir(const char *dir, vr_error *err) {
    DIR *dh = opendir(dir);
    if (!dh) {
        if (errno == ENOENT) return VR_OK;
        return vr_error_set(err, VR_ERR_IO, "cannot open %s: %s", dir, strerror(errno));
    }
    vr_status st = VR_OK;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (unlinkat(dirfd(dh), e->d_name, 0) != 0 && errno != ENOENT && st == VR_OK)
            st = vr_error_set(err, VR_ERR_IO, "cannot remove %s/%s: %s", dir, e->d_name, strerror(errno));
    }
    closedir(dh);
    if (st == VR_OK && rmdir(dir) != 0 && errno != ENOENT)
        st = vr_error_set(err, VR_ERR_IO, "cannot remove %s: %s", dir, strerror(errno));
    return st;
}

static vr_status dir_delete_session(vr_store *s, const char *tenant, const char *session, vr_error *err) {
    char dir[PATH_MAX];
    vr_status st = path_of(s, dir, sizeof dir, tenant, session, NULL, err);
    if (st != VR_OK) return st;
    return remove_session_dir(dir, err);
}

static vr_status dir_ping(vr_store *s, vr_error *err) {
    dir_impl *d = s->impl;
    struct stat stt;
    if (stat(d->root, &stt) != 0 || !S_ISDIR(stt.st_mode))
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "store directory %s is missing", d->root);
    if (access(d->root, W_OK | X_OK) != 0)
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "store directory %s is not writable: %s", d->root,
                            strerror(errno));
    return VR_OK;
}

/* Removes expired values and stale temp files under root/<tenant>/<session>/ (best-effort). */
static void sweep(vr_store *s) {
    dir_impl *d = s->impl;
    struct timespec now = wall_now();
    DIR *td = opendir(d->root);
    if (!td) return;
    struct dirent *te;
    while ((te = readdir(td)) != NULL) {
        if (te->d_name[0] == '.' || vr_store_check_id(te->d_name, "tenant", NULL) != VR_OK) continue;
        char tpath[PATH_MAX];
        int n = snprintf(tpath, sizeof tpath, "%s/%s", d->root, te->d_name);
        if (n < 0 || (size_t)n >= sizeof tpath) continue;
        DIR *sd = opendir(tpath);
        if (!sd) continue;
        struct dirent *se;
        while ((se = readdir(sd)) != NULL) {
            if (strcmp(se->d_name, ".") == 0 || strcmp(se->d_name, "..") == 0) continue;
            char spath[PATH_MAX];
            n = snprintf(spath, sizeof spath, "%s/%s", tpath, se->d_name);
            if (n < 0 || (size_t)n >= sizeof spath) continue;
            DIR *fd = opendir(spath);
            if (!fd) continue;
            int left = 0;
            struct dirent *fe;
            while ((fe = readdir(fd)) != NULL) {
                if (strcmp(fe->d_name, ".") == 0 || strcmp(fe->d_name, "..") == 0) continue;
                struct stat stt;
                if (fstatat(dirfd(fd), fe->d_name, &stt, AT_SYMLINK_NOFOLLOW) != 0) continue;
                int is_tmp = strncmp(fe->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0;
                int drop = is_tmp ? stt.st_mtim.tv_sec + STALE_TMP_SECONDS <= now.tv_sec : is_expired(s, &stt, now);
                if (drop && S_ISREG(stt.st_mode) && unlinkat(dirfd(fd), fe->d_name, 0) == 0) continue;
                left++;
            }
            closedir(fd);
            if (!left) rmdir(spath);
        }
        closedir(sd);
    }
    closedir(td);
}

static void dir_close(vr_store *s) {
    free(s->impl);
    s->impl = NULL;
}

static const vr_store_backend_ops dir_ops = {
    .name = "dir",
    .put_blob = dir_put_blob,
    .get_blob = dir_get_blob,
    .commit = dir_commit,
    .get_session = dir_get_session,
    .delete_session = dir_delete_session,
    .ping = dir_ping,
    .close = dir_close,
};

vr_status vr_store_dir_open(vr_store *s, const char *path, vr_error *err) {
    if (!path || !*path) return vr_error_set(err, VR_ERR_INVALID, "store URL dir: names no directory (use dir:/path)");
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    dir_impl *d = calloc(1, sizeof *d);
    if (!d) return vr_error_set(err, VR_ERR_NOMEM, "out of memory opening the dir store");
    if (n + 2 * VR_STORE_ID_MAX + 64 >= sizeof d->root) {
        free(d);
        return vr_error_set(err, VR_ERR_INVALID, "store directory path is too long (%zu bytes)", n);
    }
    memcpy(d->root, path, n);
    d->root[n] = 0;
    /* mkdir -p */
    for (size_t i = 1; i <= n; i++) {
        if (d->root[i] != '/' && d->root[i] != 0) continue;
        char c = d->root[i];
        d->root[i] = 0;
        int rc = mkdir(d->root, 0700);
        int e = errno;
        d->root[i] = c;
        if (rc != 0 && e != EEXIST) {
            vr_status st = vr_error_set(err, VR_ERR_IO, "cannot create store directory %s: %s", d->root, strerror(e));
            free(d);
            return st;
        }
    }
    s->impl = d;
    s->ops = &dir_ops;
    if (dir_ping(s, err) != VR_OK) {
        vr_status st = vr_error_set(err, VR_ERR_IO, "cannot open dir store: %s is not a writable directory", d->root);
        dir_close(s);
        return st;
    }
    sweep(s);
    return VR_OK;
}
