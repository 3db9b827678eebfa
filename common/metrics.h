/* common/metrics.h — Prometheus metrics: a registry of counters, gauges and histograms with
 * optional fixed label names, rendered in the text exposition format (version 0.0.4), and a
 * tiny HTTP endpoint (GET /metrics, GET /healthz) that serves it from one thread.
 * Updates are thread-safe and cheap (one uncontended mutex, no allocation once a label set has
 * been seen), so they may be called per token. Must not know what the service measures: the
 * callers own metric names and meanings. */
#ifndef VR_METRICS_H
#define VR_METRICS_H

#include <stddef.h>

#include "common/error.h"

typedef struct vr_metrics vr_metrics;
typedef struct vr_metric vr_counter;
typedef struct vr_metric vr_gauge;
typedef struct vr_metric vr_histogram;

#define VR_METRICS_MAX_LABELS 8
/* Distinct label-value sets kept per metric; samples for further sets are dropped and counted
 * in vrwkv_metrics_dropped_samples_total, which the render shows once it is non-zero. */
#define VR_METRICS_MAX_SERIES 4096

/* Default latency buckets in seconds: 0.001 ... 60. */
extern const double vr_metrics_latency_buckets[];
extern const int vr_metrics_latency_buckets_count;

vr_status vr_metrics_create(vr_metrics **out, vr_error *err);
/* Frees the registry and every metric in it. No update or HTTP server may still use it. */
void vr_metrics_free(vr_metrics *m);

/* Registers a metric. name: [a-zA-Z_:][a-zA-Z0-9_:]*, unique in the registry; help: free text;
 * label_names: n_labels names ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"), or NULL/0.
 * The returned handle lives as long as the registry. */
vr_status vr_metrics_counter(vr_metrics *m, const char *name, const char *help, const char *const *label_names,
                             int n_labels, vr_counter **out, vr_error *err);
vr_status vr_metrics_gauge(vr_metrics *m, const char *name, const char *help, const char *const *label_names,
                           int n_labels, vr_gauge **out, vr_error *err);
/* bounds: strictly increasing finite upper bounds (the +Inf bucket is implicit), or NULL/0 for
 * vr_metrics_latency_buckets. "le" may not be a label name. */
vr_status vr_metrics_histogram(vr_metrics *m, const char *name, const char *help, const char *const *label_names,
                               int n_labels, const double *bounds, int n_bounds, vr_histogram **out, vr_error *err);

/* Updates. label_values has one entry per label name of the metric (NULL for none); a NULL
 * value reads as "". A NULL metric is ignored, so optional metrics need no checks at call sites.
 * A counter ignores negative or NaN increments (counters only go up). */
void vr_counter_add(vr_counter *c, const char *const *label_values, double v);
void vr_counter_inc(vr_counter *c, const char *const *label_values);
void vr_gauge_set(vr_gauge *g, const char *const *label_values, double v);
void vr_gauge_add(vr_gauge *g, const char *const *label_values, double v);
void vr_histogram_observe(vr_histogram *h, const char *const *label_values, double v);

/* Reads one series back (tests, and the service's own decisions): the counter/gauge value, or a
 * histogram's sum and count. Returns 0 when the label set was never updated. */
double vr_metric_value(vr_counter *c, const char *const *label_values);
int vr_histogram_read(vr_histogram *h, const char *const *label_values, double *sum, unsigned long long *count);

/* Renders every metric in registration order (series in first-update order) as Prometheus
 * text: # HELP, # TYPE, samples; histograms as cumulative _bucket{le=...} incl. +Inf, _sum and
 * _count. *text is malloc'd and NUL-terminated; *len excludes the NUL. */
vr_status vr_metrics_render(vr_metrics *m, char **text, size_t *len, vr_error *err);

/* The HTTP endpoint. One thread multiplexes up to VR_METRICS_HTTP_MAX_CONNS connections with
 * poll; a request must arrive whole (header at most VR_METRICS_HTTP_MAX_REQUEST bytes) within
 * VR_METRICS_HTTP_READ_TIMEOUT_MS, and a response must drain within
 * VR_METRICS_HTTP_WRITE_TIMEOUT_MS, else the connection is dropped. So idle or garbage clients
 * cannot block the others. */
#define VR_METRICS_HTTP_MAX_CONNS 16
#define VR_METRICS_HTTP_MAX_REQUEST 8192
#define VR_METRICS_HTTP_READ_TIMEOUT_MS 2000
#define VR_METRICS_HTTP_WRITE_TIMEOUT_MS 5000

typedef struct vr_metrics_http vr_metrics_http;

/* Listens on bind_addr (NULL = all interfaces) : port (0 = ephemeral; *bound_port receives the
 * port, bound_port may be NULL) and serves m until vr_metrics_http_stop. */
vr_status vr_metrics_http_start(vr_metrics *m, const char *bind_addr, int port, int *bound_port, vr_metrics_http **out,
                                vr_error *err);
/* Stops the thread, joins it and closes every socket. NULL is ignored. */
void vr_metrics_http_stop(vr_metrics_http *h);

#endif
