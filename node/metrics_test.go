package node

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/haproxy"
	"github.com/lumos-mesh/lumos/state"
)

type families map[string]*dto.MetricFamily

// scrapeURL reads and parses a /metrics endpoint.
func scrapeURL(t *testing.T, url string) families {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, res.Status)
	}
	return parseMetrics(t, res.Body)
}

// scrapeNode reads a node's registry through its handler.
func scrapeNode(t *testing.T, n *Node) families {
	t.Helper()
	w := httptest.NewRecorder()
	n.metrics.handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("scrape %s: %d", n.Name(), w.Code)
	}
	return parseMetrics(t, w.Body)
}

func parseMetrics(t *testing.T, r io.Reader) families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// value returns the value of the series of name whose labels include
// labels ("k=v" pairs).
func (f families) value(name string, labels ...string) (float64, bool) {
	fam, ok := f[name]
	if !ok {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if have[k] != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func (f families) want(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := f.value(name, labels...)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// eventuallyMetric polls url until the series has the value.
func eventuallyMetric(t *testing.T, url string, want float64, name string, labels ...string) {
	t.Helper()
	var got float64
	var ok bool
	if !Eventually(15*time.Second, func() bool {
		got, ok = scrapeURL(t, url).value(name, labels...)
		return ok && got == want
	}) {
		t.Fatalf("%s%v: got %v (present %t), want %v", name, labels, got, ok, want)
	}
}

// TestMetrics scrapes a control node's /metrics as the cluster changes:
// Raft and gossip figures, servers by status, a shield held down, a domain
// failed over and its DNS record confirmed, a shield killed.
func TestMetrics(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{Controls: 3})
	s1 := c.AddShield("s1")
	c.AddShield("s2")
	leader := c.WaitLeader(10 * time.Second)
	ctx := ctxT(t)
	cl := c.Client()
	defer cl.CloseIdleConnections()
	url := leader.APIURL() + "/metrics"
	http.DefaultClient.CloseIdleConnections()
	defer http.DefaultClient.CloseIdleConnections()

	m := scrapeURL(t, url)
	m.want(t, 1, "lumos_raft_leader")
	m.want(t, 1, "lumos_raft_leader_known")
	m.want(t, 1, "lumos_raft_state", "state=leader")
	m.want(t, 0, "lumos_raft_state", "state=follower")
	m.want(t, 0, "lumos_raft_state", "state=candidate")
	m.want(t, 0, "lumos_raft_state", "state=shutdown")
	m.want(t, 0, "lumos_raft_last_contact_seconds")
	m.want(t, 5, "lumos_gossip_members", "state=alive")
	m.want(t, 0, "lumos_gossip_members", "state=dead")
	m.want(t, 2, "lumos_servers", "status=online")
	m.want(t, 0, "lumos_servers", "status=offline")
	m.want(t, 1, "lumos_server_up", "server=s1")
	m.want(t, 1, "lumos_server_up", "server=s2")
	m.want(t, 0, "lumos_server_down", "server=s1")
	m.want(t, 0, "lumos_domains")
	commit0, _ := m.value("lumos_raft_commit_index")
	if term, _ := m.value("lumos_raft_term"); term < 1 {
		t.Errorf("term %v", term)
	}
	if applied, _ := m.value("lumos_raft_applied_index"); commit0 < 1 || applied < 1 {
		t.Errorf("commit index %v, applied index %v", commit0, applied)
	}
	if _, ok := m["lumos_haproxy_config_applies_total"]; ok {
		t.Error("a control node exports shield apply metrics")
	}
	if _, ok := m["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	// A follower: Raft state and contact with the leader.
	for _, n := range c.Controls() {
		if n == leader {
			continue
		}
		f := scrapeURL(t, n.APIURL()+"/metrics")
		f.want(t, 0, "lumos_raft_leader")
		f.want(t, 1, "lumos_raft_state", "state=follower")
		f.want(t, 1, "lumos_raft_leader_known")
		if lc, ok := f.value("lumos_raft_last_contact_seconds"); !ok || lc < 0 || lc > 10 {
			t.Errorf("follower %s: last contact %v s (present %t)", n.Name(), lc, ok)
		}
		break
	}

	// A domain.
	if _, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: "shop.example.com", Origins: []string{"10.0.0.5:8080"}, Servers: []string{"s1", "s2"}}); err != nil {
		t.Fatal(err)
	}
	m = scrapeURL(t, url)
	m.want(t, 1, "lumos_domains")
	m.want(t, 0, "lumos_domain_failed_over", "domain=shop.example.com")
	m.want(t, 0, "lumos_domain_dns_synced", "domain=shop.example.com", "provider=builtin")
	if commit, _ := m.value("lumos_raft_commit_index"); commit <= commit0 {
		t.Errorf("commit index did not move: %v then %v", commit0, commit)
	}

	// The failover controller's decisions: s1 down, the domain failed over
	// to s2, the new record confirmed.
	ids := map[string]string{}
	var ip2 string
	servers, err := cl.Servers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		ids[s.Name] = s.ID
		if s.Name == "s2" {
			ip2 = s.IP
		}
	}
	for _, p := range []any{
		&state.ServerLiveness{ID: ids["s1"], Down: true, Reason: "gossip dead"},
		&state.DomainFailover{Name: "shop.example.com", From: ids["s1"], To: ids["s2"], Status: state.FailoverFailedOver, Event: state.Event{Type: state.EventFailoverTriggered}},
		&state.DomainDNSSynced{Name: "shop.example.com", Record: state.DNSRecord{Provider: state.DNSBuiltin, IP: ip2, TTL: state.DefaultFailoverTTL}},
	} {
		if _, err := leader.Apply(ctx, state.MustCommand(time.Now(), p)); err != nil {
			t.Fatalf("commit %T: %v", p, err)
		}
	}
	m = scrapeURL(t, url)
	m.want(t, 1, "lumos_server_down", "server=s1", "id="+ids["s1"])
	m.want(t, 0, "lumos_server_down", "server=s2")
	m.want(t, 1, "lumos_domain_failed_over", "domain=shop.example.com")
	m.want(t, 1, "lumos_domain_dns_synced", "domain=shop.example.com")

	// A shield dies: gossip, then the API's status logic, say so.
	c.Kill("s2")
	eventuallyMetric(t, url, 0, "lumos_server_up", "server=s2")
	m = scrapeURL(t, url)
	m.want(t, 1, "lumos_servers", "status=offline")
	m.want(t, 1, "lumos_servers", "status=online")
	m.want(t, 1, "lumos_server_up", "server=s1")
	if dead, _ := m.value("lumos_gossip_members", "state=dead"); dead != 1 {
		t.Errorf("gossip dead members: %v", dead)
	}

	// A shield exports its own Raft figures, not the cluster's.
	sm := scrapeNode(t, s1)
	sm.want(t, 1, "lumos_raft_state", "state=follower")
	sm.want(t, 0, "lumos_raft_leader")
	if _, ok := sm["lumos_servers"]; ok {
		t.Error("a shield exports the cluster view")
	}
}

// TestMetricsApplyAndRegisterer checks the shield's apply counters and that
// other components can register on the node's registry.
func TestMetricsApplyAndRegisterer(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{Controls: 1})
	s := c.AddShield("s1")
	leader := c.Leader()

	m := scrapeNode(t, s)
	for _, r := range []string{"reload", "runtime", "unchanged", "validate_failed", "reload_failed", "error"} {
		m.want(t, 0, "lumos_haproxy_config_applies_total", "result="+r)
	}
	m.want(t, 0, "lumos_haproxy_reloads_total", "result=success")
	m.want(t, 0, "lumos_haproxy_reloads_total", "result=failure")

	s.metrics.observeApply(haproxy.ApplyResult{Reloaded: true, Took: 80 * time.Millisecond}, nil)
	s.metrics.observeApply(haproxy.ApplyResult{Reloaded: true, Took: 70 * time.Millisecond}, nil)
	s.metrics.observeApply(haproxy.ApplyResult{RuntimeOnly: true, Took: 3 * time.Millisecond}, nil)
	s.metrics.observeApply(haproxy.ApplyResult{Unchanged: true, Took: time.Millisecond}, nil)
	s.metrics.observeApply(haproxy.ApplyResult{Took: 20 * time.Millisecond}, fmt.Errorf("apply: %w", haproxy.ErrValidate))
	s.metrics.observeApply(haproxy.ApplyResult{Took: 2 * time.Second}, fmt.Errorf("apply: %w", haproxy.ErrReload))
	s.metrics.observeApply(haproxy.ApplyResult{}, haproxy.ErrNotRunning)
	m = scrapeNode(t, s)
	m.want(t, 2, "lumos_haproxy_config_applies_total", "result=reload")
	m.want(t, 1, "lumos_haproxy_config_applies_total", "result=runtime")
	m.want(t, 1, "lumos_haproxy_config_applies_total", "result=unchanged")
	m.want(t, 1, "lumos_haproxy_config_applies_total", "result=validate_failed")
	m.want(t, 1, "lumos_haproxy_config_applies_total", "result=reload_failed")
	m.want(t, 1, "lumos_haproxy_config_applies_total", "result=error")
	m.want(t, 2, "lumos_haproxy_reloads_total", "result=success")
	m.want(t, 1, "lumos_haproxy_reloads_total", "result=failure")
	m.want(t, 6, "lumos_haproxy_config_apply_duration_seconds") // sample count
	if h := m["lumos_haproxy_config_apply_duration_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleSum() < 2.1 || h.GetSampleSum() > 2.2 {
		t.Errorf("apply duration sum %v s", h.GetSampleSum())
	}

	// observeApply is a no-op on a node without the apply metrics.
	leader.metrics.observeApply(haproxy.ApplyResult{Reloaded: true}, nil)

	// The failover controller registers its own collectors.
	failovers := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lumos_failovers_total", Help: "test"}, []string{"domain"})
	if err := leader.metrics.registerer().Register(failovers); err != nil {
		t.Fatal(err)
	}
	failovers.WithLabelValues("shop.example.com").Add(2)
	lm := scrapeURL(t, leader.APIURL()+"/metrics")
	lm.want(t, 2, "lumos_failovers_total", "domain=shop.example.com")
	http.DefaultClient.CloseIdleConnections()

	// The example Prometheus files use metrics that exist.
	known := map[string]bool{}
	for _, f := range []families{lm, m} {
		for name := range f {
			known[name] = true
		}
	}
	// Series that appear only with HAProxy running or domains present.
	ch := make(chan *prometheus.Desc, 100)
	for _, c := range []prometheus.Collector{&haproxyCollector{}, &raftCollector{}, &gossipCollector{}, &clusterCollector{}} {
		c.Describe(ch)
	}
	close(ch)
	for d := range ch {
		if m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String()); m != nil {
			known[m[1]] = true
		}
	}
	checkPrometheusDocs(t, known)
}

// The example scrape config and alert rules in docs/.
type promConfig struct {
	Global        map[string]string `yaml:"global"`
	RuleFiles     []string          `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

type promRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var (
	metricRe = regexp.MustCompile(`\blumos_[a-z0-9_]+`)
	jobRe    = regexp.MustCompile(`job="([^"]+)"`)
)

// checkPrometheusDocs parses docs/prometheus.yml and docs/alerts.yml and
// checks that the rules only use metrics in known and jobs the scrape
// config defines.
func checkPrometheusDocs(t *testing.T, known map[string]bool) {
	t.Helper()
	var cfg promConfig
	decodeYAML(t, filepath.Join("..", "docs", "prometheus.yml"), &cfg)
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName == "" || sc.MetricsPath != "/metrics" || len(sc.StaticConfigs) == 0 || len(sc.StaticConfigs[0].Targets) == 0 {
			t.Errorf("prometheus.yml: bad scrape config %+v", sc)
		}
		jobs[sc.JobName] = true
	}
	if !jobs["lumos-control"] || !jobs["lumos-shield"] {
		t.Errorf("prometheus.yml: jobs %v", jobs)
	}
	if len(cfg.RuleFiles) != 1 || cfg.RuleFiles[0] != "alerts.yml" {
		t.Errorf("prometheus.yml: rule files %v", cfg.RuleFiles)
	}

	var rules promRules
	decodeYAML(t, filepath.Join("..", "docs", "alerts.yml"), &rules)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("alerts.yml: incomplete rule %+v", r)
			}
			if alerts[r.Alert] {
				t.Errorf("alerts.yml: %s twice", r.Alert)
			}
			alerts[r.Alert] = true
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("alerts.yml: %s: severity %q", r.Alert, sev)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("alerts.yml: %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("alerts.yml: %s: unbalanced expression %q", r.Alert, r.Expr)
			}
			for _, name := range metricRe.FindAllString(r.Expr, -1) {
				if !known[name] {
					t.Errorf("alerts.yml: %s uses %s, which no node exports", r.Alert, name)
				}
			}
			for _, m := range jobRe.FindAllStringSubmatch(r.Expr, -1) {
				if !jobs[m[1]] {
					t.Errorf("alerts.yml: %s: unknown job %q", r.Alert, m[1])
				}
			}
		}
	}
	for _, a := range []string{"LumosShieldDown", "LumosDomainFailedOver", "LumosHAProxyReloadFailing", "LumosNoRaftLeader"} {
		if !alerts[a] {
			t.Errorf("alerts.yml: no %s rule", a)
		}
	}
}
