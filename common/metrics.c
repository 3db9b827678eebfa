/* common/metrics.c — the metrics registry and the Prometheus text rendering.
 * Each metric has its own mutex: updates lock only their metric, registration and rendering lock
 * the registry and then each metric in turn. Must not do I/O: the HTTP side is http_metrics.c. */
#include "common/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double vr_metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,      2.5,   5,    10,    30,   60};
const int vr_metrics_latency_buckets_count = (int)(sizeof vr_metrics_latency_buckets / sizeof(double));

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

typedef struct series {
    struct series *next;
    char **values;                  /* n_labels owned strings */
    double value;                   /* counter, gauge */
    double sum;                     /* histogram */
    unsigned long long count;       /* histogram */
    unsigned long long *buckets;    /* histogram: n_bounds + 1 non-cumulative counts (last = +Inf) */
} series;

struct vr_metric {
    struct vr_metric *next;
    vr_metrics *reg;
    metric_kind kind;
    char *name, *help;
    int n_labels;
    char *labels[VR_METRICS_MAX_LABELS];
    double *bounds;
    int n_bounds;
    pthread_mutex_t mu;
    series *head, *tail, *last_hit;
    int n_series;
};

struct vr_metrics {
    pthread_mutex_t mu;
    struct vr_metric *head, *tail;
    atomic_ullong dropped;
};

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

vr_status vr_metrics_create(vr_metrics **out, vr_error *err) {
    *out = NULL;
    vr_metrics *m = calloc(1, sizeof *m);
    if (!m) return vr_error_set(err, VR_ERR_NOMEM, "metrics registry: out of memory");
    pthread_mutex_init(&m->mu, NULL);
    atomic_init(&m->dropped, 0);
    *out = m;
    return VR_OK;
}

static void series_free(series *s, int n_labels) {
    if (s->values)
        for (int i = 0; i < n_labels; i++) free(s->values[i]);
    free(s->values);
    free(s->buckets);
    free(s);
}

static void metric_free(struct vr_metric *x) {
    series *s = x->head;
    while (s) {
        series *n = s->next;
        series_free(s, x->n_labels);
        s = n;
    }
    for (int i = 0; i < x->n_labels; i++) free(x->labels[i]);
    free(x->name);
    free(x->help);
    free(x->bounds);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

void vr_metrics_free(vr_metrics *m) {
    if (!m) return;
    struct vr_metric *x = m->head;
    while (x) {
        struct vr_metric *n = x->next;
        metric_free(x);
        x = n;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static int valid_name(const char *s, int allow_colon) {
    if (!s || !*s) return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
                 (p != s && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static vr_status add_metric(vr_metrics *m, metric_kind kind, const char *name, const char *help,
                            const char *const *label_names, int n_labels, const double *bounds, int n_bounds,
                            struct vr_metric **out, vr_error *err) {
    *out = NULL;
    if (!m) return vr_error_set(err, VR_ERR_INVALID, "metrics: no registry given");
    if (!valid_name(name, 1))
        return vr_error_set(err, VR_ERR_INVALID, "metric name \"%s\" is not a valid Prometheus name "
                                                 "([a-zA-Z_:][a-zA-Z0-9_:]*)", name ? name : "(null)");
    if (n_labels < 0 || n_labels > VR_METRICS_MAX_LABELS || (n_labels > 0 && !label_names))
        return vr_error_set(err, VR_ERR_INVALID, "metric %s: %d label names (at most %d)", name, n_labels,
                            VR_METRICS_MAX_LABELS);
    for (int i = 0; i < n_labels; i++) {
        const char *l = label_names[i];
        if (!valid_name(l, 0) || strncmp(l, "__", 2) == 0)
            return vr_error_set(err, VR_ERR_INVALID, "metric %s: label name \"%s\" is not valid "
                                                     "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                                name, l ? l : "(null)");
        if (kind == KIND_HISTOGRAM && strcmp(l, "le") == 0)
            return vr_error_set(err, VR_ERR_INVALID, "histogram %s: \"le\" is reserved for bucket bounds", name);
        for (int j = 0; j < i; j++)
            if (strcmp(label_names[j], l) == 0)
                return vr_error_set(err, VR_ERR_INVALID, "metric %s: label name \"%s\" given twice", name, l);
    }
    if (kind == KIND_HISTOGRAM) {
        if (!bounds || n_bounds <= 0) {
            bounds = vr_metrics_latency_buckets;
            n_bounds = vr_metrics_latency_buckets_count;
        }
        for (int i = 0; i < n_bounds; i++) {
            if (!isfinite(bounds[i]))
                return vr_error_set(err, VR_ERR_INVALID, "histogram %s: bucket bound %d is not finite", name, i);
            if (i > 0 && !(bounds[i] > bounds[i - 1]))
                return vr_error_set(err, VR_ERR_INVALID, "histogram %s: bucket bounds must strictly increase "
                                                         "(bound %d = %g after %g)", name, i, bounds[i], bounds[i - 1]);
        }
    }

    struct vr_metric *x = calloc(1, sizeof *x);
    if (!x) return vr_error_set(err, VR_ERR_NOMEM, "metric %s: out of memory", name);
    pthread_mutex_init(&x->mu, NULL);
    x->reg = m;
    x->kind = kind;
    x->name = dup_str(name);
    x->help = dup_str(help ? help : "");
    int oom = !x->name || !x->help;
    for (int i = 0; i < n_labels; i++) {
        x->labels[i] = dup_str(label_names[i]);
        if (!x->labels[i]) oom = 1;
        x->n_labels = i + 1;
    }
    if (kind == KIND_HISTOGRAM) {
        x->bounds = malloc((size_t)n_bounds * sizeof(double));
        if (x->bounds) {
            memcpy(x->bounds, bounds, (size_t)n_bounds * sizeof(double));
            x->n_bounds = n_bounds;
        } else {
            oom = 1;
        }
    }
    if (oom) {
        metric_free(x);
        return vr_error_set(err, VR_ERR_NOMEM, "metric %s: out of memory", name);
    }

    pthread_mutex_lock(&m->mu);
    for (struct vr_metric *y = m->head; y; y = y->next) {
        if (strcmp(y->name, name) == 0) {
            pthread_mutex_unlock(&m->mu);
            metric_free(x);
            return vr_error_set(err, VR_ERR_INVALID, "metric %s is already registered", name);
        }
    }
    if (m->tail)
        m->tail->next = x;
    else
        m->head = x;
    m->tail = x;
    pthread_mutex_unlock(&m->mu);
    *out = x;
    return VR_OK;
}

vr_status vr_metrics_counter(vr_metrics *m, const char *name, const char *help, const char *const *label_names,
                             int n_labels, vr_counter **out, vr_error *err) {
    return add_metric(m, KIND_COUNTER, name, help, label_names, n_labels, NULL, 0, out, err);
}

vr_status vr_metrics_gauge(vr_metrics *m, const char *name, const char *help, const char *const *label_names,
                           int n_labels, vr_gauge **out, vr_error *err) {
    return add_metric(m, KIND_GAUGE, name, help, label_names, n_labels, NULL, 0, out, err);
}

vr_status vr_metrics_histogram(vr_metrics *m, const char *name, const char *help, const char *const *label_names,
                               int n_labels, const double *bounds, int n_bounds, vr_histogram **out, vr_error *err) {
    return add_metric(m, KIND_HISTOGRAM, name, help, label_names, n_labels, bounds, n_bounds, out, err);
}

static int series_matches(const struct vr_metric *x, const series *s, const char *const *values) {
    for (int i = 0; i < x->n_labels; i++) {
        const char *v = values && values[i] ? values[i] : "";
        if (strcmp(s->values[i], v) != 0) return 0;
    }
    return 1;
}

/* Finds the series for values, creating it when create is set. Caller holds x->mu. */
static series *find_series(struct vr_metric *x, const char *const *values, int create) {
    if (x->last_hit && series_matches(x, x->last_hit, values)) return x->last_hit;
    for (series *s = x->head; s; s = s->next) {
        if (series_matches(x, s, values)) {
            x->last_hit = s;
            return s;
        }
    }
    if (!create) return NULL;
    if (x->n_series >= VR_METRICS_MAX_SERIES) return NULL;
    series *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (x->n_labels > 0) {
        s->values = calloc((size_t)x->n_labels, sizeof(char *));
        if (!s->values) {
            free(s);
            return NULL;
        }
        for (int i = 0; i < x->n_labels; i++) {
            s->values[i] = dup_str(values && values[i] ? values[i] : "");
            if (!s->values[i]) {
                series_free(s, x->n_labels);
                return NULL;
            }
        }
    }
    if (x->kind == KIND_HISTOGRAM) {
        s->buckets = calloc((size_t)x->n_bounds + 1, sizeof(unsigned long long));
        if (!s->buckets) {
            series_free(s, x->n_labels);
            return NULL;
        }
    }
    if (x->tail)
        x->tail->next = s;
    else
        x->head = s;
    x->tail = s;
    x->n_series++;
    x->last_hit = s;
    return s;
}

static void drop_sample(struct vr_metric *x) { atomic_fetch_add(&x->reg->dropped, 1); }

static void update(struct vr_metric *x, metric_kind kind, const char *const *values, double v, int set) {
    if (!x) return;
    if (x->kind != kind) {
        drop_sample(x);
        return;
    }
    pthread_mutex_lock(&x->mu);
    series *s = find_series(x, values, 1);
    if (s) {
        if (set)
            s->value = v;
        else
            s->value += v;
    }
    pthread_mutex_unlock(&x->mu);
    if (!s) drop_sample(x);
}

void vr_counter_add(vr_counter *c, const char *const *label_values, double v) {
    if (!(v >= 0)) return; /* negative or NaN: counters only go up */
    update(c, KIND_COUNTER, label_values, v, 0);
}

void vr_counter_inc(vr_counter *c, const char *const *label_values) { vr_counter_add(c, label_values, 1.0); }

void vr_gauge_set(vr_gauge *g, const char *const *label_values, double v) { update(g, KIND_GAUGE, label_values, v, 1); }

void vr_gauge_add(vr_gauge *g, const char *const *label_values, double v) { update(g, KIND_GAUGE, label_values, v, 0); }

void vr_histogram_observe(vr_histogram *h, const char *const *label_values, double v) {
    if (!h) return;
    if (h->kind != KIND_HISTOGRAM || isnan(v)) {
        drop_sample(h);
        return;
    }
    /* the first bucket whose upper bound holds v (binary search; n_bounds = +Inf) */
    int lo = 0, hi = h->n_bounds;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    pthread_mutex_lock(&h->mu);
    series *s = find_series(h, label_values, 1);
    if (s) {
        s->buckets[lo]++;
        s->count++;
        s->sum += v;
    }
    pthread_mutex_unlock(&h->mu);
    if (!s) drop_sample(h);
}

double vr_metric_value(vr_counter *c, const char *const *label_values) {
    if (!c || c->kind == KIND_HISTOGRAM) return 0;
    pthread_mutex_lock(&c->mu);
    series *s = find_series(c, label_values, 0);
    double v = s ? s->value : 0;
    pthread_mutex_unlock(&c->mu);
    return v;
}

int vr_histogram_read(vr_histogram *h, const char *const *label_values, double *sum, unsigned long long *count) {
    double sm = 0;
    unsigned long long n = 0;
    int found = 0;
    if (h && h->kind == KIND_HISTOGRAM) {
        pthread_mutex_lock(&h->mu);
        series *s = find_series(h, label_values, 0);
        if (s) {
            sm = s->sum;
            n = s->count;
            found = 1;
        }
        pthread_mutex_unlock(&h->mu);
    }
    if (sum) *sum = sm;
    if (count) *count = n;
    return found;
}

/* ---- rendering ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Prometheus float: shortest of %.15g / %.17g that round-trips; +Inf, -Inf, NaN spelled out. */
static void fmt_num(char out[40], double v) {
    if (isnan(v)) {
        strcpy(out, "NaN");
    } else if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, 40, "%.15g", v);
        if (strtod(out, NULL) != v) snprintf(out, 40, "%.17g", v);
    }
}

static void sb_num(sbuf *b, double v) {
    char t[40];
    fmt_num(t, v);
    sb_str(b, t);
}

static void sb_u64(sbuf *b, unsigned long long v) {
    char t[32];
    snprintf(t, sizeof t, "%llu", v);
    sb_str(b, t);
}

/* HELP text: backslash and newline escaped. Label values: also the double quote. */
static void sb_escaped(sbuf *b, const char *s, int quote) {
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            sb_put(b, "\\\\", 2);
        else if (*p == '\n')
            sb_put(b, "\\n", 2);
        else if (quote && *p == '"')
            sb_put(b, "\\\"", 2);
        else
            sb_put(b, p, 1);
    }
}

/* {a="x",b="y"[,le="..."]} or nothing when there are no labels at all. */
static void sb_labels(sbuf *b, const struct vr_metric *x, const series *s, const char *le) {
    if (x->n_labels == 0 && !le) return;
    sb_put(b, "{", 1);
    for (int i = 0; i < x->n_labels; i++) {
        if (i) sb_put(b, ",", 1);
        sb_str(b, x->labels[i]);
        sb_put(b, "=\"", 2);
        sb_escaped(b, s->values[i], 1);
        sb_put(b, "\"", 1);
    }
    if (le) {
        if (x->n_labels) sb_put(b, ",", 1);
        sb_str(b, "le=\"");
        sb_str(b, le);
        sb_put(b, "\"", 1);
    }
    sb_put(b, "}", 1);
}

static void render_metric(sbuf *b, struct vr_metric *x) {
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    sb_str(b, "# HELP ");
    sb_str(b, x->name);
    sb_put(b, " ", 1);
    sb_escaped(b, x->help, 0);
    sb_str(b, "\n# TYPE ");
    sb_str(b, x->name);
    sb_put(b, " ", 1);
    sb_str(b, type_names[x->kind]);
    sb_put(b, "\n", 1);
    pthread_mutex_lock(&x->mu);
    for (series *s = x->head; s; s = s->next) {
        if (x->kind != KIND_HISTOGRAM) {
            sb_str(b, x->name);
            sb_labels(b, x, s, NULL);
            sb_put(b, " ", 1);
            sb_num(b, s->value);
            sb_put(b, "\n", 1);
            continue;
        }
        unsigned long long cum = 0;
        for (int i = 0; i <= x->n_bounds; i++) {
            char le[40];
            if (i < x->n_bounds)
                fmt_num(le, x->bounds[i]);
            else
                strcpy(le, "+Inf");
            cum += s->buckets[i];
            sb_str(b, x->name);
            sb_str(b, "_bucket");
            sb_labels(b, x, s, le);
            sb_put(b, " ", 1);
            sb_u64(b, cum);
            sb_put(b, "\n", 1);
        }
        sb_str(b, x->name);
        sb_str(b, "_sum");
        sb_labels(b, x, s, NULL);
        sb_put(b, " ", 1);
        sb_num(b, s->sum);
        sb_put(b, "\n", 1);
        sb_str(b, x->name);
        sb_str(b, "_count");
        sb_labels(b, x, s, NULL);
        sb_put(b, " ", 1);
        sb_u64(b, s->count);
        sb_put(b, "\n", 1);
    }
    pthread_mutex_unlock(&x->mu);
}

vr_status vr_metrics_render(vr_metrics *m, char **text, size_t *len, vr_error *err) {
    *text = NULL;
    if (len) *len = 0;
    if (!m) return vr_error_set(err, VR_ERR_INVALID, "metrics render: no registry given");
    sbuf b = {0};
    sb_put(&b, "", 0);
    pthread_mutex_lock(&m->mu);
    for (struct vr_metric *x = m->head; x; x = x->next) render_metric(&b, x);
    pthread_mutex_unlock(&m->mu);
    unsigned long long dropped = atomic_load(&m->dropped);
    if (dropped) {
        sb_str(&b, "# HELP vrwkv_metrics_dropped_samples_total Metric updates dropped (too many label sets, "
                   "wrong metric type, NaN observation or out of memory).\n"
                   "# TYPE vrwkv_metrics_dropped_samples_total counter\n"
                   "vrwkv_metrics_dropped_samples_total ");
        sb_u64(&b, dropped);
        sb_put(&b, "\n", 1);
    }
    if (b.oom) {
        free(b.p);
        return vr_error_set(err, VR_ERR_NOMEM, "metrics render: out of memory");
    }
    *text = b.p;
    if (len) *len = b.len;
    return VR_OK;
}
