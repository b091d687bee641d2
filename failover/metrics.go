package failover

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's Prometheus figures. They live for the whole
// node (a node may be leader several times), registered once.
type Metrics struct {
	Failovers     prometheus.Counter
	Recoveries    prometheus.Counter
	Duration      prometheus.Histogram
	DNSUpdates    *prometheus.CounterVec // provider, result
	ServerChanges *prometheus.CounterVec // change: down, recovered, held
	Notifications *prometheus.CounterVec // kind, result
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lumos_failovers_total", Help: "Domains moved away from a down active server by this node as leader."}),
		Recoveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lumos_recoveries_total", Help: "Domains moved back to their recovered primary by this node as leader."}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lumos_failover_duration_seconds",
			Help:    "From the first unhealthy observation of the active server to DNS switched (built-in: decision committed; external: provider confirmed).",
			Buckets: []float64{0.25, 0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 20, 30, 60},
		}),
		DNSUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lumos_dns_updates_total", Help: "DNS record updates by provider and result (updated, unchanged, error kinds)."}, []string{"provider", "result"}),
		ServerChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lumos_server_liveness_changes_total", Help: "Shield verdict changes recorded by this node as leader."}, []string{"change"}),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lumos_notifications_total", Help: "Notification delivery attempts by target kind and result."}, []string{"kind", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Failovers, m.Recoveries, m.Duration, m.DNSUpdates, m.ServerChanges, m.Notifications)
	}
	return m
}
