package node

import (
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/haproxy"
	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/raftstore"
	"github.com/lumos-mesh/lumos/state"
)

// metrics is the node's own Prometheus registry (never the global one).
// Every node exports its Raft and gossip figures; control nodes add the
// cluster as the API shows it (servers, domains); shields add HAProxy's
// figures and the outcome of their config applies. Everything but the
// apply counters is computed at scrape time: no background work.
type metrics struct {
	reg *prometheus.Registry

	// Shields only (nil elsewhere): config applies and HAProxy reloads,
	// recorded by observeApply.
	applies       *prometheus.CounterVec
	applyDuration prometheus.Histogram
	reloads       *prometheus.CounterVec
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&haproxyCollector{n: n},
		&raftCollector{n: n},
		&gossipCollector{n: n},
	)
	m := &metrics{reg: reg}
	if n.cfg.Control {
		reg.MustRegister(&clusterCollector{n: n})
	}
	if n.cfg.Shield {
		m.applies = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lumos_haproxy_config_applies_total",
			Help: "HAProxy config applies by result: reload, runtime (map entries changed through the runtime API), unchanged, validate_failed, reload_failed (rolled back), error.",
		}, []string{"result"})
		m.applyDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lumos_haproxy_config_apply_duration_seconds",
			Help:    "Time a HAProxy config apply took, waiting for the lock included.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		})
		m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lumos_haproxy_reloads_total",
			Help: "HAProxy reloads of a new config by result (success, failure).",
		}, []string{"result"})
		for _, r := range []string{applyReload, applyRuntime, applyUnchanged, applyValidateFailed, applyReloadFailed, applyError} {
			m.applies.WithLabelValues(r)
		}
		m.reloads.WithLabelValues("success")
		m.reloads.WithLabelValues("failure")
		reg.MustRegister(m.applies, m.applyDuration, m.reloads)
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// registerer is where other components of the node (the failover
// controller, DNS providers, notifications) register their collectors, so
// they are served with the node's own.
func (m *metrics) registerer() prometheus.Registerer { return m.reg }

// Results of a config apply (lumos_haproxy_config_applies_total).
const (
	applyReload         = "reload"
	applyRuntime        = "runtime"
	applyUnchanged      = "unchanged"
	applyValidateFailed = "validate_failed"
	applyReloadFailed   = "reload_failed"
	applyError          = "error"
)

// observeApply records the outcome of one haproxy.Manager.Apply on a
// shield; a no-op on other nodes.
func (m *metrics) observeApply(res haproxy.ApplyResult, err error) {
	if m == nil || m.applies == nil {
		return
	}
	result := applyError
	switch {
	case err == nil && res.Reloaded:
		result = applyReload
	case err == nil && res.RuntimeOnly:
		result = applyRuntime
	case err == nil:
		result = applyUnchanged
	case errors.Is(err, haproxy.ErrValidate):
		result = applyValidateFailed
	case errors.Is(err, haproxy.ErrReload):
		result = applyReloadFailed
	}
	m.applies.WithLabelValues(result).Inc()
	if res.Took > 0 {
		m.applyDuration.Observe(res.Took.Seconds())
	}
	switch {
	case err == nil && res.Reloaded:
		m.reloads.WithLabelValues("success").Inc()
	case errors.Is(err, haproxy.ErrReload):
		m.reloads.WithLabelValues("failure").Inc()
	}
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

var (
	descRaftState       = prometheus.NewDesc("lumos_raft_state", "This node's Raft state: 1 for the state it is in, 0 for the others.", []string{"state"}, nil)
	descRaftTerm        = prometheus.NewDesc("lumos_raft_term", "Current Raft term.", nil, nil)
	descRaftCommit      = prometheus.NewDesc("lumos_raft_commit_index", "Highest Raft log index known to be committed.", nil, nil)
	descRaftApplied     = prometheus.NewDesc("lumos_raft_applied_index", "Last Raft log index applied on this node.", nil, nil)
	descRaftLast        = prometheus.NewDesc("lumos_raft_last_index", "Index of the last entry in this node's Raft log or snapshot.", nil, nil)
	descRaftContact     = prometheus.NewDesc("lumos_raft_last_contact_seconds", "Seconds since this node last heard from the Raft leader (0 on the leader; absent before the first contact).", nil, nil)
	descRaftLeader      = prometheus.NewDesc("lumos_raft_leader", "Whether this node is the Raft leader (1) or not (0).", nil, nil)
	descRaftLeaderKnown = prometheus.NewDesc("lumos_raft_leader_known", "Whether this node knows a Raft leader (1) or not (0).", nil, nil)
)

// raftCollector exposes this node's Raft figures.
type raftCollector struct{ n *Node }

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftTerm, descRaftCommit, descRaftApplied, descRaftLast, descRaftContact, descRaftLeader, descRaftLeaderKnown} {
		ch <- d
	}
}

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	rs := c.n.store.RaftStats()
	for _, s := range raftstore.RaftStates {
		ch <- prometheus.MustNewConstMetric(descRaftState, prometheus.GaugeValue, boolFloat(rs.State == s), s)
	}
	ch <- prometheus.MustNewConstMetric(descRaftTerm, prometheus.GaugeValue, float64(rs.Term))
	ch <- prometheus.MustNewConstMetric(descRaftCommit, prometheus.GaugeValue, float64(rs.CommitIndex))
	ch <- prometheus.MustNewConstMetric(descRaftApplied, prometheus.GaugeValue, float64(rs.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(descRaftLast, prometheus.GaugeValue, float64(rs.LastIndex))
	leader := rs.State == raftstore.StateLeader
	switch {
	case leader:
		ch <- prometheus.MustNewConstMetric(descRaftContact, prometheus.GaugeValue, 0)
	case !rs.LastContact.IsZero():
		ch <- prometheus.MustNewConstMetric(descRaftContact, prometheus.GaugeValue, max(0, time.Since(rs.LastContact).Seconds()))
	}
	ch <- prometheus.MustNewConstMetric(descRaftLeader, prometheus.GaugeValue, boolFloat(leader))
	ch <- prometheus.MustNewConstMetric(descRaftLeaderKnown, prometheus.GaugeValue, boolFloat(rs.LeaderID != ""))
}

var descGossipMembers = prometheus.NewDesc("lumos_gossip_members", "Gossip members as this node sees them, by state (alive, suspect, dead, left); this node included.", []string{"state"}, nil)

// gossipCollector counts the gossip members by state.
type gossipCollector struct{ n *Node }

func (c *gossipCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descGossipMembers }

func (c *gossipCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[mesh.State]int{mesh.StateAlive: 0, mesh.StateSuspect: 0, mesh.StateDead: 0, mesh.StateLeft: 0}
	for _, m := range c.n.mesh.Members() {
		counts[m.State]++
	}
	for s, v := range counts {
		ch <- prometheus.MustNewConstMetric(descGossipMembers, prometheus.GaugeValue, float64(v), string(s))
	}
}

var (
	descServers         = prometheus.NewDesc("lumos_servers", "Shield servers by status (online, offline, error, decommissioned), as the API reports them.", []string{"status"}, nil)
	descServerUp        = prometheus.NewDesc("lumos_server_up", "Whether the shield server is online (1) or offline or in error (0), as the API reports it; decommissioned servers are left out.", []string{"server", "id"}, nil)
	descServerDown      = prometheus.NewDesc("lumos_server_down", "Whether the failover controller holds the shield server down (1) or not (0).", []string{"server", "id"}, nil)
	descServerCurrent   = prometheus.NewDesc("lumos_server_config_current", "Whether the shield serves every change that concerns it (1) or lags behind (0).", []string{"server", "id"}, nil)
	descDomains         = prometheus.NewDesc("lumos_domains", "Managed domains.", nil, nil)
	descDomainFailed    = prometheus.NewDesc("lumos_domain_failed_over", "Whether the domain is failed over to a backup server (1) or served by its primary (0).", []string{"domain"}, nil)
	descDomainDNSSynced = prometheus.NewDesc("lumos_domain_dns_synced", "Whether the record last confirmed at the domain's DNS provider is the one it should have (1) or not yet (0); domains without a DNS provider or a server address are left out.", []string{"domain", "provider"}, nil)
)

// clusterCollector exposes the replicated state joined with the gossip
// view, with the API's status logic (control nodes only, so a shield's
// scrape does not repeat the whole cluster).
type clusterCollector struct{ n *Node }

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descServers, descServerUp, descServerDown, descServerCurrent, descDomains, descDomainFailed, descDomainDNSSynced} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	mi := api.IndexMembers(c.n.mesh.Members())
	now := c.n.Now()
	var out []prometheus.Metric
	c.n.store.View(func(st *state.State) {
		counts := map[string]int{api.StatusOnline: 0, api.StatusOffline: 0, api.StatusError: 0, api.StatusDecommissioned: 0}
		for _, sv := range st.SortedServers() {
			info := api.ServerView(st, mi, sv, now)
			counts[info.Status]++
			if sv.Decommissioned {
				continue
			}
			out = append(out,
				prometheus.MustNewConstMetric(descServerUp, prometheus.GaugeValue, boolFloat(info.Status == api.StatusOnline), sv.Name, sv.ID),
				prometheus.MustNewConstMetric(descServerDown, prometheus.GaugeValue, boolFloat(sv.Down), sv.Name, sv.ID),
				prometheus.MustNewConstMetric(descServerCurrent, prometheus.GaugeValue, boolFloat(info.Current), sv.Name, sv.ID),
			)
		}
		for status, v := range counts {
			out = append(out, prometheus.MustNewConstMetric(descServers, prometheus.GaugeValue, float64(v), status))
		}
		out = append(out, prometheus.MustNewConstMetric(descDomains, prometheus.GaugeValue, float64(len(st.Domains))))
		for _, d := range st.SortedDomains() {
			out = append(out, prometheus.MustNewConstMetric(descDomainFailed, prometheus.GaugeValue, boolFloat(d.FailoverStatus == state.FailoverFailedOver), d.Name))
			if d.DNS.Provider == "" || d.DNS.Provider == state.DNSNone {
				continue
			}
			want, ok := st.DesiredRecord(d)
			if !ok {
				continue // no server with an address: nothing to publish
			}
			out = append(out, prometheus.MustNewConstMetric(descDomainDNSSynced, prometheus.GaugeValue, boolFloat(d.DNSSynced.Same(&want)), d.Name, d.DNS.Provider))
		}
	})
	for _, m := range out {
		ch <- m
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
