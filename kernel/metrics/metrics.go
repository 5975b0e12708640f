// Package metrics defines the kernel's Prometheus metrics. It only counts;
// label values are mount paths, operations and plugin names, never request
// data, tokens or secret paths below a mount.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is the set of kernel metrics registered on one registry.
type Metrics struct {
	Registry *prometheus.Registry

	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	pluginStarts  *prometheus.CounterVec
	pluginCrashes *prometheus.CounterVec
	sealed        prometheus.Gauge
}

// New registers the kernel metrics (and Go runtime collectors) on a fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_requests_total", Help: "Requests handled, by mount, operation and HTTP status class.",
		}, []string{"mount", "operation", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ward_request_duration_seconds", Help: "Request latency inside the kernel, by mount and operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"mount", "operation"}),
		pluginStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_plugin_starts_total", Help: "Plugin process starts (including restarts).",
		}, []string{"plugin"}),
		pluginCrashes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ward_plugin_crashes_total", Help: "Plugin processes found dead and restarted.",
		}, []string{"plugin"}),
		sealed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ward_core_sealed", Help: "1 when the server is sealed, 0 when unsealed.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.pluginStarts, m.pluginCrashes, m.sealed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.sealed.Set(1)
	return m
}

// ObserveRequest records one request.
func (m *Metrics) ObserveRequest(mount, op string, status int, d time.Duration) {
	class := "5xx"
	switch {
	case status < 300:
		class = "2xx"
	case status < 400:
		class = "3xx"
	case status < 500:
		class = "4xx"
	}
	m.requests.WithLabelValues(mount, op, class).Inc()
	m.latency.WithLabelValues(mount, op).Observe(d.Seconds())
}

// SetSealed records the seal state.
func (m *Metrics) SetSealed(sealed bool) {
	if sealed {
		m.sealed.Set(1)
	} else {
		m.sealed.Set(0)
	}
}

// PluginStarted implements plugin.Observer.
func (m *Metrics) PluginStarted(name string) { m.pluginStarts.WithLabelValues(name).Inc() }

// PluginCrashed implements plugin.Observer.
func (m *Metrics) PluginCrashed(name string) { m.pluginCrashes.WithLabelValues(name).Inc() }
