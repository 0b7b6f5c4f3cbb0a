package runner

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the runner's Prometheus metrics, on a registry of their own
// so that tests and several runners in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry
	// Registerer registers on Registry, with the runner's label when the
	// metrics are a named runner's (NewRunnerMetrics).
	Registerer  prometheus.Registerer
	rows        *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	failures    *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	slotLag     *prometheus.GaugeVec
}

// NewMetrics registers the runner's metrics.
func NewMetrics() *Metrics { return NewRunnerMetrics("") }

// NewRunnerMetrics registers the metrics of the runner named id: every
// series sluice exports carries the label runner="<id>", so that the
// runners of a fleet, scraped apart, add up (the Go and process
// collectors' series carry it too). An empty id adds no label.
func NewRunnerMetrics(id string) *Metrics {
	reg := prometheus.NewRegistry()
	var registerer prometheus.Registerer = reg
	if id != "" {
		registerer = prometheus.WrapRegistererWith(prometheus.Labels{"runner": id}, reg)
	}
	m := &Metrics{
		Registry: reg, Registerer: registerer,
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_rows_synced_total", Help: "Rows read from sources and committed to the warehouse.",
		}, []string{"table"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_bytes_synced_total", Help: "Bytes of variable-length values synced (text, json, bytea).",
		}, []string{"table"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_sync_duration_seconds", Help: "Duration of syncs, successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
		}, []string{"table"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sync_failures_total", Help: "Syncs that failed after their retries.",
		}, []string{"table"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_last_success_timestamp_seconds", Help: "Unix time of the last successful sync.",
		}, []string{"table"}),
		slotLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_slot_lag_bytes", Help: "WAL retained by the source's replication slot.",
		}, []string{"source"}),
	}
	m.Registerer.MustRegister(m.rows, m.bytes, m.duration, m.failures, m.lastSuccess, m.slotLag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /healthz and /metrics; more routes (webhooks) are added
// by the caller on the returned mux.
func (m *Metrics) Handler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	return mux
}
