package node

import (
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the node's own Prometheus registry (never the global one).
type metrics struct {
	reg *prometheus.Registry
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&haproxyCollector{n: n})
	return &metrics{reg: reg}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// serveMetrics serves /metrics on addr (a shield's metrics listener).
func (n *Node) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", n.metrics.handler())
	n.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slogStd(n.log.With("subsystem", "metrics"))}
	n.metricsLn = ln
	n.goFn(func() {
		if err := n.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics server stopped", "err", err)
		}
	})
	return nil
}

var (
	descUp          = prometheus.NewDesc("lumos_haproxy_up", "Whether HAProxy runs and its last config apply succeeded (1) or not (0).", nil, nil)
	descRestarts    = prometheus.NewDesc("lumos_haproxy_restarts_total", "HAProxy restarts by the supervisor.", nil, nil)
	descRequests    = prometheus.NewDesc("lumos_domain_http_requests_total", "HTTP requests HAProxy passed to the domain's backend.", []string{"domain"}, nil)
	descRate        = prometheus.NewDesc("lumos_domain_http_requests_per_second", "HTTP requests per second to the domain's backend, as last measured.", []string{"domain"}, nil)
	descBytesIn     = prometheus.NewDesc("lumos_domain_bytes_in_total", "Bytes received from clients for the domain.", []string{"domain"}, nil)
	descBytesOut    = prometheus.NewDesc("lumos_domain_bytes_out_total", "Bytes sent to clients for the domain.", []string{"domain"}, nil)
	descConns       = prometheus.NewDesc("lumos_domain_connections", "Current connections to the domain's backend.", []string{"domain"}, nil)
	desc5xx         = prometheus.NewDesc("lumos_domain_http_responses_5xx_total", "HTTP 5xx responses for the domain.", []string{"domain"}, nil)
	descServersUp   = prometheus.NewDesc("lumos_domain_origins_up", "Origins of the domain that pass their health check.", []string{"domain"}, nil)
	descServersConf = prometheus.NewDesc("lumos_domain_origins", "Origins configured for the domain.", []string{"domain"}, nil)
)

// haproxyCollector exposes the shield's HAProxy figures as last read from
// the stats socket (a scrape never touches HAProxy itself).
type haproxyCollector struct{ n *Node }

func (c *haproxyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRestarts, descRequests, descRate, descBytesIn, descBytesOut, descConns, desc5xx, descServersUp, descServersConf} {
		ch <- d
	}
}

func (c *haproxyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.shield
	if s == nil {
		return
	}
	s.mu.Lock()
	h := s.health
	stats := s.stats
	s.mu.Unlock()
	up := 0.0
	if h.OK {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(h.Restarts))
	for domain, st := range stats {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(st.Requests), domain)
		ch <- prometheus.MustNewConstMetric(descRate, prometheus.GaugeValue, st.RequestsPerSec, domain)
		ch <- prometheus.MustNewConstMetric(descBytesIn, prometheus.CounterValue, float64(st.BytesIn), domain)
		ch <- prometheus.MustNewConstMetric(descBytesOut, prometheus.CounterValue, float64(st.BytesOut), domain)
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(st.CurrentConns), domain)
		ch <- prometheus.MustNewConstMetric(desc5xx, prometheus.CounterValue, float64(st.Responses5xx), domain)
		ch <- prometheus.MustNewConstMetric(descServersUp, prometheus.GaugeValue, float64(st.ServersUp), domain)
		ch <- prometheus.MustNewConstMetric(descServersConf, prometheus.GaugeValue, float64(st.ServersTotal), domain)
	}
}
