package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/haproxy"
	"github.com/lumos-mesh/lumos/state"
)

// get sends a request for host through a shield's HTTP listener and
// returns the status and body ("" and 0 when it cannot connect).
func get(listen, host string) (int, string) {
	req, _ := http.NewRequest("GET", "http://"+listen+"/", nil)
	req.Host = host
	cl := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func origin(t *testing.T, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func originAddr(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

// TestShieldServesAssignedDomains: a domain assigned to a shield is served
// by its HAProxy; unassigned, the shield answers the default 404; the
// shield reports the config it serves.
func TestShieldServesAssignedDomains(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{Controls: 1})
	c.AddHAProxyShield("s1", nil)
	listen := c.Config("s1").HAProxy.ListenHTTP
	o := origin(t, "hello from origin")
	ctx := ctxT(t)
	cl := c.Client()
	if code, body := get(listen, "shop.example.com"); code != 404 || !strings.Contains(body, "no site for this host") {
		t.Fatalf("before assignment: %d %q", code, body)
	}
	if _, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: "shop.example.com", Origins: []string{originAddr(o)}, Servers: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, func() bool {
		code, body := get(listen, "Shop.Example.com")
		return code == 200 && body == "hello from origin"
	}, "the shield serving the new domain")
	c.WaitFor(5*time.Second, func() bool {
		sv, err := cl.Server(ctx, "s1")
		return err == nil && sv.Current && sv.Health == "ok" && sv.ConfigHash != "" && sv.Status == api.StatusOnline
	}, "s1 reported current and healthy")
	if _, err := cl.RemoveDomain(ctx, "shop.example.com"); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, func() bool {
		code, _ := get(listen, "shop.example.com")
		return code == 404
	}, "the removed domain no longer served")
	c.WaitFor(5*time.Second, func() bool {
		sv, err := cl.Server(ctx, "s1")
		return err == nil && sv.Current
	}, "s1 current after the removal")
}

// TestShieldRejectedConfig: a configuration HAProxy refuses is rolled back,
// the last good one keeps serving, server_error is raised and visible, and
// a later good change clears it.
func TestShieldRejectedConfig(t *testing.T) {
	var inject atomic.Bool
	c := NewTestCluster(t, TestClusterOptions{Controls: 1})
	c.AddHAProxyShield("s1", func(hc *HAProxyConfig) {
		hc.RenderHook = func(r *haproxy.Rendered) {
			if inject.Load() {
				r.Config = append(r.Config, []byte("\nbackend broken\n  this-is-not-a-keyword\n")...)
				r.Hash += "-broken"
			}
		}
	})
	listen := c.Config("s1").HAProxy.ListenHTTP
	o := origin(t, "v1")
	ctx := ctxT(t)
	cl := c.Client()
	if _, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: "a.example.com", Origins: []string{originAddr(o)}, Servers: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, func() bool { code, _ := get(listen, "a.example.com"); return code == 200 }, "a.example.com served")

	inject.Store(true)
	if _, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: "b.example.com", Origins: []string{originAddr(o)}, Servers: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, func() bool {
		sv, err := cl.Server(ctx, "s1")
		return err == nil && sv.Status == api.StatusError && sv.ErrorType != "" && !sv.Current
	}, "s1 in error")
	if code, _ := get(listen, "a.example.com"); code != 200 {
		t.Fatalf("the last good config stopped serving: %d", code)
	}
	if code, _ := get(listen, "b.example.com"); code != 404 {
		t.Fatalf("the refused change is served: %d", code)
	}
	c.WaitFor(10*time.Second, func() bool {
		evs, err := cl.Events(ctx, "", 50)
		if err != nil {
			return false
		}
		for _, e := range evs {
			if e.Type == state.EventServerError && strings.HasPrefix(e.Reason, "haproxy_") {
				return true
			}
		}
		return false
	}, "a server_error event")

	inject.Store(false)
	if _, err := cl.RenameServer(ctx, "s1", "s1"); err != nil { // any change re-renders
		t.Fatal(err)
	}
	c.WaitFor(15*time.Second, func() bool {
		sv, err := cl.Server(ctx, "s1")
		code, _ := get(listen, "b.example.com")
		return err == nil && sv.Status == api.StatusOnline && sv.ErrorType == "" && sv.Current && code == 200
	}, "the error cleared by a good change")
	c.WaitFor(10*time.Second, func() bool {
		evs, _ := cl.Events(ctx, "", 50)
		return len(evs) > 0 && hasEvent(evs, state.EventServerErrorCleared)
	}, "a server_error_cleared event")
}

func hasEvent(evs []state.Event, typ string) bool {
	for _, e := range evs {
		if e.Type == typ {
			return true
		}
	}
	return false
}

// TestShieldHAProxyKilled: HAProxy killed under the shield is restarted
// and the restart is reported.
func TestShieldHAProxyKilled(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{Controls: 1})
	c.AddHAProxyShield("s1", nil)
	listen := c.Config("s1").HAProxy.ListenHTTP
	o := origin(t, "alive")
	ctx := ctxT(t)
	cl := c.Client()
	if _, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: "k.example.com", Origins: []string{originAddr(o)}, Servers: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, func() bool { code, _ := get(listen, "k.example.com"); return code == 200 }, "served")
	pid := masterPID(t, c.DataDir("s1"))
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(15*time.Second, func() bool {
		code, _ := get(listen, "k.example.com")
		return code == 200 && masterPID(t, c.DataDir("s1")) != pid
	}, "HAProxy restarted and serving")
	c.WaitFor(10*time.Second, func() bool {
		sv, err := cl.Server(ctx, "s1")
		return err == nil && sv.Restarts >= 1 && sv.Status == api.StatusOnline
	}, "the restart reported")
}

func masterPID(t *testing.T, dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, HAProxyDir, haproxy.PIDFile))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// TestShieldKeepsServingAcrossItsRestart: with KeepRunning, HAProxy serves
// while lumos is down and the next start adopts it.
func TestShieldKeepsServingAcrossItsRestart(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{Controls: 1})
	c.AddHAProxyShield("s1", func(hc *HAProxyConfig) { hc.KeepRunning = true })
	listen := c.Config("s1").HAProxy.ListenHTTP
	t.Cleanup(func() {
		haproxy.StopServing(context.Background(), filepath.Join(c.DataDir("s1"), HAProxyDir), 5*time.Second)
	})
	o := origin(t, "kept")
	ctx := ctxT(t)
	if _, err := c.Client().AddDomain(ctx, &api.AddDomainRequest{Name: "keep.example.com", Origins: []string{originAddr(o)}, Servers: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, func() bool { code, _ := get(listen, "keep.example.com"); return code == 200 }, "served")
	pid := masterPID(t, c.DataDir("s1"))
	c.Stop("s1")
	if code, body := get(listen, "keep.example.com"); code != 200 || body != "kept" {
		t.Fatalf("HAProxy stopped serving with lumos down: %d %q", code, body)
	}
	// The control plane goes away too: the shield still starts and serves.
	c.Kill("c1")
	c.Restart("s1")
	if got := masterPID(t, c.DataDir("s1")); got != pid {
		t.Fatalf("master pid %d after restart, want the adopted %d", got, pid)
	}
	if code, _ := get(listen, "keep.example.com"); code != 200 {
		t.Fatalf("not served after the shield restarted: %d", code)
	}
}

// TestShieldDecommissionStopsServing: a decommissioned shield stops its
// HAProxy and leaves.
func TestShieldDecommissionStopsServing(t *testing.T) {
	c := NewTestCluster(t, TestClusterOptions{Controls: 1})
	s1 := c.AddHAProxyShield("s1", nil)
	listen := c.Config("s1").HAProxy.ListenHTTP
	o := origin(t, "x")
	ctx := ctxT(t)
	cl := c.Client()
	if _, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: "d.example.com", Origins: []string{originAddr(o)}, Servers: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, func() bool { code, _ := get(listen, "d.example.com"); return code == 200 }, "served")
	if _, err := cl.DecommissionServer(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s1.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("decommissioned shield did not stop")
	}
	c.mu.Lock()
	delete(c.nodes, "s1")
	c.mu.Unlock()
	if code, _ := get(listen, "d.example.com"); code != 0 {
		t.Fatalf("HAProxy still answers after decommission: %d", code)
	}
}

// TestShieldReportsDetectedSites: the HAProxy config found at the first
// join is backed up, its sites reported, and they import as domains the
// shield then serves.
func TestShieldReportsDetectedSites(t *testing.T) {
	o := origin(t, "imported")
	orig := filepath.Join(t.TempDir(), "haproxy.cfg")
	cfg := fmt.Sprintf(`global
  log stdout format raw local0
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend web
  bind 127.0.0.1:1
  acl is_blog hdr(host) -i blog.example.com
  use_backend be_blog if is_blog
backend be_blog
  server b1 %s check
`, originAddr(o))
	if err := os.WriteFile(orig, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewTestCluster(t, TestClusterOptions{Controls: 1})
	c.AddHAProxyShield("s1", func(hc *HAProxyConfig) { hc.OriginalConfig = orig })
	listen := c.Config("s1").HAProxy.ListenHTTP
	ctx := ctxT(t)
	cl := c.Client()
	sites, err := cl.ServerSites(ctx, "s1")
	if err != nil || len(sites) != 1 || sites[0].Domain != "blog.example.com" || sites[0].Managed || sites[0].Origins[0] != originAddr(o) {
		t.Fatalf("sites %+v, %v", sites, err)
	}
	if _, err := cl.ImportSites(ctx, "s1", []string{"blog.example.com"}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, func() bool { code, body := get(listen, "blog.example.com"); return code == 200 && body == "imported" }, "the imported site served")
	if b, err := os.ReadFile(filepath.Join(c.DataDir("s1"), OriginalDir, "original.cfg")); err != nil || string(b) != cfg {
		t.Fatalf("backup of the original: %v", err)
	}
}
