package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// tokenRE matches a server connection token as "server add" prints it.
var tokenRE = regexp.MustCompile(`lmt_[a-z0-9]{16,}`)

// TestReadmeFlow walks the README's local cluster section: servers, a
// domain on two shields, and the same state on every node.
func TestReadmeFlow(t *testing.T) {
	c := startCluster(t, 2)

	var servers []serverJSON
	c.JSON(&servers, "server", "list")
	if got := serverNames(servers); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Fatalf("server list: got servers %q, want s1 s2", got)
	}
	for _, s := range servers {
		if s.Status != "online" {
			t.Errorf("server list: %s is %q, want online", s.Name, s.Status)
		}
	}
	if out := c.MustLumos("server", "list"); !regexp.MustCompile(`(?m)^\S+\s+s1\s+online\s`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^\S+\s+s2\s+online\s`).MatchString(out) {
		t.Errorf("server list table does not show s1 and s2 online:\n%s", out)
	}

	// A new server's token is printed once, and only its prefix is kept.
	out := c.MustLumos("server", "add", "EU Frankfurt")
	token := tokenRE.FindString(out)
	if token == "" {
		t.Fatalf("server add printed no token:\n%s", out)
	}
	// Read back at once, as a user would (TestFollowerReadYourWrites has
	// more on reading one's own writes).
	var fra serverJSON
	raw := c.JSON(&fra, "server", "show", "EU Frankfurt")
	if strings.Contains(raw, token) || strings.Contains(raw, `"token"`) {
		t.Errorf("server show --output json reveals the token:\n%s", raw)
	}
	if fra.TokenPrefix == "" || len(fra.TokenPrefix) >= len(token) || !strings.HasPrefix(token, fra.TokenPrefix) {
		t.Errorf("token_prefix %q is not a short prefix of the printed token %s", fra.TokenPrefix, token)
	}
	if fra.Name != "EU Frankfurt" || fra.Status != "offline" || fra.NodeName != "" {
		t.Errorf("new server: got name %q status %q node %q, want \"EU Frankfurt\" offline, no node", fra.Name, fra.Status, fra.NodeName)
	}
	for _, args := range [][]string{
		{"server", "show", "EU Frankfurt"},
		{"server", "list"},
		{"server", "list", "--output", "json"},
		{"events", "--output", "json"},
		{"status", "--output", "json"},
	} {
		if out := c.MustLumos(args...); strings.Contains(out, token) {
			t.Errorf("lumos %q shows the token again:\n%s", args, out)
		}
	}

	// Only the hash is stored: the token is in no node's data dir or log.
	if f := filesContaining(t, c.Dir, token); len(f) > 0 {
		t.Errorf("the token of \"EU Frankfurt\" is stored in %q", f)
	}

	c.MustLumos("domain", "add", "shop.example.com", "--origin", "10.0.0.5:8080", "--origin", "10.0.0.6:8080")
	c.MustLumos("domain", "assign", "shop.example.com", "s1", "s2")
	var d domainJSON
	c.JSON(&d, "domain", "show", "shop.example.com")
	if len(d.Servers) != 2 {
		t.Fatalf("domain show right after the assign: servers %+v, want s1 and s2", d.Servers)
	}
	if d.Servers[0].Name != "s1" || !d.Servers[0].Primary || d.Servers[1].Name != "s2" || d.Servers[1].Primary {
		t.Errorf("domain show: servers %+v, want s1 (primary) then s2 (secondary)", d.Servers)
	}
	if !slices.Equal(d.Origins, []string{"10.0.0.5:8080", "10.0.0.6:8080"}) || d.Mode != "http" {
		t.Errorf("domain show: origins %q mode %q", d.Origins, d.Mode)
	}

	// Every control node holds the same domain in its own copy.
	took := eventually(t, 10*time.Second, "every control node shows the same domain", func() error {
		return sameOnControls(c, "domain", "show", "shop.example.com")
	})
	t.Logf("all control nodes agree %s after the assign returned", took.Round(time.Millisecond))
	for _, args := range [][]string{{"domain", "list"}, {"events"}} {
		eventually(t, 10*time.Second, fmt.Sprintf("every control node answers %q alike", args), func() error {
			return sameOnControls(c, args...)
		})
	}

	// Every shield has applied the change. Each publishes its applied index
	// by gossip; one control node reporting it current is enough here
	// (TestShieldCurrentReported checks what the leader reports).
	took = eventually(t, 10*time.Second, "s1 and s2 are current", func() error {
		for _, name := range []string{"s1", "s2"} {
			var views []string
			ok := false
			for _, n := range c.ControlNames() {
				var s serverJSON
				if _, err := c.tryJSON(&s, "--stale", "--addr", c.ControlAddr(n), "server", "show", name); err != nil {
					return err
				}
				if !slices.Contains(s.Domains, "shop.example.com") {
					return fmt.Errorf("%s: %s serves %q", n, name, s.Domains)
				}
				if s.Current && s.AppliedIndex >= d.Version {
					ok = true
					break
				}
				views = append(views, fmt.Sprintf("%s says applied_index %d current %v", n, s.AppliedIndex, s.Current))
			}
			if !ok {
				return fmt.Errorf("%s (domain version %d): %s", name, d.Version, strings.Join(views, "; "))
			}
		}
		return nil
	})
	t.Logf("both shields current %s after the control nodes agreed", took.Round(time.Millisecond))
}

// TestFollowerReadYourWrites checks that a change made through a control
// node that is not the leader can be read back from that node as soon as
// the command returns, as the README's "domain assign; domain show" does.
func TestFollowerReadYourWrites(t *testing.T) {
	c := startCluster(t, 0)
	leader := c.Leader()
	var follower string
	for _, n := range c.ControlNames() {
		if n != leader {
			follower = n
			break
		}
	}
	addr := c.ControlAddr(follower)
	var stale []string
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("ryw%d.example.com", i)
		c.MustLumos("--addr", addr, "domain", "add", name, "--origin", "10.0.0.5:80")
		if r := c.Lumos("--addr", addr, "domain", "show", name); r.Code != 0 {
			stale = append(stale, fmt.Sprintf("domain show %s: %s", name, strings.TrimSpace(r.Stderr)))
		}
		srv := fmt.Sprintf("ryw-%d", i)
		c.MustLumos("--addr", addr, "server", "add", srv)
		if r := c.Lumos("--addr", addr, "server", "show", srv); r.Code != 0 {
			stale = append(stale, fmt.Sprintf("server show %s: %s", srv, strings.TrimSpace(r.Stderr)))
		}
	}
	if len(stale) > 0 {
		t.Errorf("writes through follower %s (leader %s) were not visible on it right after they returned, %d of 10 times:\n%s",
			follower, leader, len(stale), strings.Join(stale, "\n"))
	}
}

// TestShieldCurrentReported checks that "server show" (answered by the
// leader) reports a shield current soon after a change reached it. A shield
// applies a change within a second; its applied index reaches the control
// nodes by gossip.
func TestShieldCurrentReported(t *testing.T) {
	c := startCluster(t, 2)
	c.MustLumos("domain", "add", "current.example.com", "--origin", "10.0.0.5:80")
	const rounds, limit = 10, 5 * time.Second
	var slow []string
	for i := 1; i <= rounds; i++ {
		order := []string{"s1", "s2"}
		if i%2 == 0 {
			order = []string{"s2", "s1"}
		}
		var d domainJSON
		c.JSON(&d, append([]string{"domain", "assign", "current.example.com"}, order...)...)
		// The change has reached the shields once any control node hears so.
		applied := waitCurrent(t, c, 20*time.Second, "s1", "s2")
		start := time.Now()
		var lag error
		for {
			lag = nil
			for _, name := range order {
				var s serverJSON
				if _, err := c.tryJSON(&s, "server", "show", name); err != nil {
					t.Fatal(err)
				}
				if !s.Current || s.AppliedIndex < d.Version {
					lag = fmt.Errorf("%s: applied_index %d current %v, domain version %d", name, s.AppliedIndex, s.Current, d.Version)
				}
			}
			if lag == nil || time.Since(start) > limit {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if lag != nil {
			views := ""
			for _, n := range c.ControlNames() {
				st, err := c.Status(n)
				if err != nil {
					t.Fatal(err)
				}
				views += fmt.Sprintf("\n  %s (leader %s) hears:", n, st.Leader)
				for _, nd := range st.Nodes {
					views += fmt.Sprintf(" %s=%d", nd.Name, nd.Applied)
				}
			}
			slow = append(slow, fmt.Sprintf("round %d: shields current after %s by some control node's view, but server show still says %v %s later; views:%s",
				i, applied.Round(time.Millisecond), lag, limit, views))
		}
	}
	if len(slow) > 0 {
		t.Errorf("server show lagged more than %s behind the shields in %d of %d rounds:\n%s", limit, len(slow), rounds, strings.Join(slow, "\n"))
	}
}

// TestLeaderKill kills the leader with SIGKILL: a new one is elected,
// writes keep working, and the killed node catches up when it returns.
func TestLeaderKill(t *testing.T) {
	c := startCluster(t, 1)
	c.MustLumos("domain", "add", "before.example.com", "--origin", "10.0.0.5:80")

	old := c.Leader()
	var survivors []string
	for _, n := range c.ControlNames() {
		if n != old {
			survivors = append(survivors, n)
		}
	}
	c.Kill(old)
	killed := time.Now()
	var leader string
	took := eventually(t, 10*time.Second, "a new leader is elected", func() error {
		leader = ""
		for _, n := range survivors {
			st, err := c.Status(n)
			if err != nil {
				return err
			}
			if st.Leader == "" || st.Leader == old {
				return fmt.Errorf("%s says the leader is %q", n, st.Leader)
			}
			if leader != "" && leader != st.Leader {
				return fmt.Errorf("survivors disagree: %s and %s", leader, st.Leader)
			}
			leader = st.Leader
		}
		return nil
	})
	t.Logf("kill -9 of leader %s: %s leads %s later", old, leader, took.Round(time.Millisecond))

	// Writes through either survivor (one forwards to the other).
	for i, n := range survivors {
		addr := c.ControlAddr(n)
		c.MustLumos("--addr", addr, "domain", "add", fmt.Sprintf("after%d.example.com", i+1), "--origin", "10.0.0.6:80")
		c.MustLumos("--addr", addr, "server", "add", fmt.Sprintf("after-%d", i+1))
	}
	c.MustLumos("--addr", c.ControlAddr(survivors[0]), "domain", "assign", "after1.example.com", "s1")
	t.Logf("writes through %q done %s after the kill", survivors, time.Since(killed).Round(time.Millisecond))

	lst, err := c.Status(leader)
	if err != nil {
		t.Fatal(err)
	}
	c.Restart(old)
	took = eventually(t, 30*time.Second, fmt.Sprintf("restarted %s catches up to index %d", old, lst.AppliedIndex), func() error {
		st, err := c.Status(old)
		if err != nil {
			return err
		}
		if st.AppliedIndex < lst.AppliedIndex {
			return fmt.Errorf("%s applied %d, leader had %d", old, st.AppliedIndex, lst.AppliedIndex)
		}
		if st.Leader != leader {
			return fmt.Errorf("%s says the leader is %q, want %s", old, st.Leader, leader)
		}
		return nil
	})
	t.Logf("%s caught up %s after its restart", old, took.Round(time.Millisecond))
	eventually(t, 10*time.Second, "every control node holds the same domains and servers", func() error {
		if err := sameOnControls(c, "domain", "list"); err != nil {
			return err
		}
		return sameOnControls(c, "events")
	})
	var domains []domainJSON
	if _, err := c.tryJSON(&domains, "--stale", "--addr", c.ControlAddr(old), "domain", "list"); err != nil {
		t.Fatal(err)
	}
	if got := domainNames(domains); !slices.Equal(got, []string{"after1.example.com", "after2.example.com", "before.example.com"}) {
		t.Errorf("restarted %s holds domains %q", old, got)
	}
	eventually(t, 10*time.Second, old+" is a voter again", func() error {
		st, err := c.Status(leader)
		if err != nil {
			return err
		}
		for _, nd := range st.Nodes {
			if nd.Name == old {
				if nd.Suffrage != "voter" || nd.GossipState != "alive" {
					return fmt.Errorf("%s: suffrage %q gossip %q", old, nd.Suffrage, nd.GossipState)
				}
				return nil
			}
		}
		return fmt.Errorf("%s is not in the status of %s", old, leader)
	})
	var s1 serverJSON
	c.JSON(&s1, "--stale", "--addr", c.ControlAddr(old), "server", "show", "s1")
	if !slices.Contains(s1.Domains, "after1.example.com") {
		t.Errorf("restarted %s: s1 serves %q", old, s1.Domains)
	}
	waitCurrent(t, c, 20*time.Second, "s1")
}

// TestFullRestart stops every node and starts the cluster again on the
// same data dirs: the state is intact and the shields come back without
// their tokens.
func TestFullRestart(t *testing.T) {
	c := startCluster(t, 2)
	c.MustLumos("server", "add", "spare")
	c.MustLumos("domain", "add", "a.example.com", "--origin", "10.0.0.5:80", "--origin", "[2001:db8::1]:443")
	c.MustLumos("domain", "add", "b.example.com", "--origin", "192.168.1.10:443", "--mode", "tcp")
	c.MustLumos("domain", "assign", "a.example.com", "s1", "s2")
	c.MustLumos("domain", "assign", "b.example.com", "s2")
	c.MustLumos("server", "rename", "spare", "spare-1")
	eventually(t, 10*time.Second, "control nodes agree", func() error {
		for _, args := range [][]string{{"domain", "list"}, {"events"}} {
			if err := sameOnControls(c, args...); err != nil {
				return err
			}
		}
		return nil
	})
	waitConverged(t, c, 10*time.Second)

	volatile := []string{"last_seen", "uptime_seconds", "applied_index", "current", "traffic", "config_hash", "config_index", "health", "health_error", "error_type", "haproxy_restarts", "status"}
	serversBefore := withoutFields(t, c.JSON(&[]serverJSON{}, "server", "list"), volatile...)
	domainsBefore := c.JSON(&[]domainJSON{}, "domain", "list")
	var eventsBefore []eventJSON
	c.JSON(&eventsBefore, "events")
	stBefore, err := c.Status("c1")
	if err != nil {
		t.Fatal(err)
	}

	stop := time.Now()
	c.StopAll()
	t.Logf("cluster.sh stop took %s", time.Since(stop).Round(time.Millisecond))
	start := time.Now()
	c.StartAll()
	t.Logf("cluster.sh start on the existing data dirs took %s", time.Since(start).Round(time.Millisecond))

	for _, s := range []string{"s1", "s2"} {
		for _, kv := range c.ProcEnv(s) {
			if strings.HasPrefix(kv, "LUMOS_TOKEN=") {
				t.Errorf("shield %s was restarted with LUMOS_TOKEN in its environment", s)
			}
		}
		if strings.Contains(c.NodeLog(s), "join refused") {
			t.Errorf("shield %s log mentions a refused join", s)
		}
	}

	for _, n := range c.ControlNames() {
		addr := c.ControlAddr(n)
		var events []eventJSON
		eventually(t, 20*time.Second, n+" shows the state from before the restart", func() error {
			raw, err := c.tryJSON(nil, "--stale", "--addr", addr, "server", "list")
			if err != nil {
				return err
			}
			if got := withoutFields(t, raw, volatile...); got != serversBefore {
				return fmt.Errorf("servers differ:\nbefore %s\nafter %s", serversBefore, got)
			}
			got, err := c.tryJSON(nil, "--stale", "--addr", addr, "domain", "list")
			if err != nil {
				return err
			}
			if got != domainsBefore {
				return fmt.Errorf("domains differ:\nbefore %s\nafter %s", domainsBefore, got)
			}
			if _, err := c.tryJSON(&events, "--stale", "--addr", addr, "events"); err != nil {
				return err
			}
			byID := map[uint64]eventJSON{}
			for _, e := range events {
				byID[e.ID] = e
			}
			for _, e := range eventsBefore {
				if byID[e.ID] != e {
					return fmt.Errorf("event %d was %+v before the restart, now %+v", e.ID, e, byID[e.ID])
				}
			}
			return nil
		})
		if len(events) != len(eventsBefore) {
			t.Logf("%s: %d events after the restart, %d before", n, len(events), len(eventsBefore))
		}
	}
	var servers []serverJSON
	c.JSON(&servers, "server", "list")
	for _, s := range servers {
		want := "online"
		if s.Name == "spare-1" {
			want = "offline"
		}
		if s.Status != want {
			t.Errorf("after the restart %s is %s, want %s", s.Name, s.Status, want)
		}
	}
	st, err := c.Status("c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.AppliedIndex < stBefore.AppliedIndex || st.Term <= stBefore.Term {
		t.Errorf("after the restart: applied index %d term %d; before: %d, %d", st.AppliedIndex, st.Term, stBefore.AppliedIndex, stBefore.Term)
	}
	// The restarted cluster takes changes, and the shields receive them.
	c.MustLumos("domain", "assign", "b.example.com", "s2", "s1")
	waitCurrent(t, c, 20*time.Second, "s1", "s2")
}

// TestBadInputsLeaveStateUnchanged sends bad commands through every
// control node: each fails with a one-line reason and nothing changes.
func TestBadInputsLeaveStateUnchanged(t *testing.T) {
	c := startCluster(t, 2)
	c.MustLumos("domain", "add", "good.example.com", "--origin", "10.0.0.5:80")
	c.MustLumos("domain", "assign", "good.example.com", "s1")
	c.MustLumos("server", "add", "spare")
	c.MustLumos("server", "decommission", "spare", "--yes")
	eventually(t, 10*time.Second, "control nodes agree", func() error {
		for _, args := range [][]string{{"domain", "list"}, {"events"}, {"plan", "show"}} {
			if err := sameOnControls(c, args...); err != nil {
				return err
			}
		}
		return nil
	})
	waitConverged(t, c, 10*time.Second)

	// last_seen and uptime move on their own; applied_index and current are
	// what gossip last said about each node, which one control node may hear
	// later than another. Whether anything was committed is checked on the
	// Raft indexes of the control nodes instead.
	volatile := []string{"last_seen", "uptime_seconds", "applied_index", "current", "traffic", "config_hash", "config_index", "health", "health_error", "error_type", "haproxy_restarts", "status"}
	indexBefore := map[string]statusJSON{}
	for _, n := range c.ControlNames() {
		st, err := c.Status(n)
		if err != nil {
			t.Fatal(err)
		}
		indexBefore[n] = st
	}
	domainsBefore := c.JSON(&[]domainJSON{}, "domain", "list")
	serversBefore := withoutFields(t, c.JSON(&[]serverJSON{}, "server", "list"), volatile...)
	eventsBefore := c.JSON(&[]eventJSON{}, "events")
	planBefore := c.MustLumos("plan", "show", "--output", "json")

	const newDomain = "new.example.com"
	add := func(name string, origins ...string) []string {
		args := []string{"domain", "add", name}
		for _, o := range origins {
			args = append(args, "--origin", o)
		}
		return args
	}
	noToken := map[string]string{"LUMOS_ADMIN_TOKEN": ""}
	wrongToken := map[string]string{"LUMOS_ADMIN_TOKEN": "lma_0123456789abcdef0123456789abcdef0123456789abcdef"}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error line, case-insensitive
	}{
		{"domain with empty label", add("bad..example.com", "10.0.0.5:80"), nil, "empty label"},
		{"domain with leading hyphen", []string{"domain", "add", "--origin", "10.0.0.5:80", "--", "-bad.example.com"}, nil, "'-'"},
		{"domain with trailing hyphen", add("bad-.example.com", "10.0.0.5:80"), nil, "'-'"},
		{"single-label domain", add("localhost", "10.0.0.5:80"), nil, "two labels"},
		{"domain with underscore", add("exa_mple.com", "10.0.0.5:80"), nil, `"_"`},
		{"domain with space", add("exa mple.com", "10.0.0.5:80"), nil, "domain name"},
		{"domain as URL", add("http://example.com", "10.0.0.5:80"), nil, "domain name"},
		{"numeric top-level label", add("10.0.0.5", "10.0.0.5:80"), nil, "numeric"},
		{"label over 63 characters", add(strings.Repeat("a", 64)+".com", "10.0.0.5:80"), nil, "63"},
		{"non-ASCII domain", add("bücher.example.com", "10.0.0.5:80"), nil, `"ü"`},
		{"empty domain", add("", "10.0.0.5:80"), nil, "empty"},
		{"origin 0.0.0.0", add(newDomain, "0.0.0.0:80"), nil, "not routable"},
		{"origin in 0.0.0.0/8", add(newDomain, "0.1.2.3:80"), nil, "not routable"},
		{"origin link-local", add(newDomain, "169.254.1.1:80"), nil, "not routable"},
		{"origin IPv6 link-local", add(newDomain, "[fe80::1]:80"), nil, "not routable"},
		{"origin multicast", add(newDomain, "224.0.0.1:80"), nil, "not routable"},
		{"origin IPv6 multicast", add(newDomain, "[ff02::1]:80"), nil, "not routable"},
		{"origin broadcast", add(newDomain, "255.255.255.255:80"), nil, "not routable"},
		{"origin IPv6 unspecified", add(newDomain, "[::]:80"), nil, "not routable"},
		{"forbidden second origin", add(newDomain, "10.0.0.5:80", "169.254.169.254:80"), nil, "not routable"},
		{"origin host name", add(newDomain, "origin.example.com:80"), nil, "not an IP address"},
		{"origin localhost", add(newDomain, "localhost:8080"), nil, "not an IP address"},
		{"origin without port", add(newDomain, "10.0.0.5"), nil, "IP:PORT"},
		{"origin port 0", add(newDomain, "10.0.0.5:0"), nil, "port"},
		{"origin port too high", add(newDomain, "10.0.0.5:65536"), nil, "port"},
		{"origin listed twice", add(newDomain, "10.0.0.5:80", "10.0.0.5:80"), nil, "twice"},
		{"no origin", []string{"domain", "add", newDomain}, nil, "--origin"},
		{"bad mode", append(add(newDomain, "10.0.0.5:80"), "--mode", "udp"), nil, "--mode"},
		{"add with unknown server", append(add(newDomain, "10.0.0.5:80"), "--server", "nosuch"), nil, "not found"},
		{"add with decommissioned server", append(add(newDomain, "10.0.0.5:80"), "--server", "spare"), nil, "decommissioned"},
		{"duplicate domain", add("good.example.com", "10.0.0.6:80"), nil, "already exists"},
		{"duplicate domain other case", add("GOOD.Example.com.", "10.0.0.6:80"), nil, "already exists"},
		{"assign unknown server", []string{"domain", "assign", "good.example.com", "nosuch"}, nil, "not found"},
		{"assign unknown and known server", []string{"domain", "assign", "good.example.com", "s2", "nosuch"}, nil, "not found"},
		{"assign decommissioned server", []string{"domain", "assign", "good.example.com", "s1", "spare"}, nil, "decommissioned"},
		{"assign server twice", []string{"domain", "assign", "good.example.com", "s1", "s1"}, nil, "twice"},
		{"assign unknown domain", []string{"domain", "assign", "nosuch.example.com", "s1"}, nil, "not found"},
		{"assign no server", []string{"domain", "assign", "good.example.com"}, nil, "SERVER"},
		{"remove unknown domain", []string{"domain", "remove", "nosuch.example.com", "--yes"}, nil, "not found"},
		{"duplicate server name", []string{"server", "add", "s1"}, nil, "already exists"},
		{"duplicate server name other case", []string{"server", "add", "S1"}, nil, "already exists"},
		{"empty server name", []string{"server", "add", "  "}, nil, "empty"},
		{"server name too long", []string{"server", "add", strings.Repeat("x", 65)}, nil, "64"},
		{"rename to a taken name", []string{"server", "rename", "s2", "s1"}, nil, "already exists"},
		{"rename unknown server", []string{"server", "rename", "nosuch", "x"}, nil, "not found"},
		{"decommission twice", []string{"server", "decommission", "spare", "--yes"}, nil, "already decommissioned"},
		{"decommission unknown server", []string{"server", "decommission", "nosuch", "--yes"}, nil, "not found"},
		{"decommission without --yes", []string{"server", "decommission", "s2"}, nil, "--yes"},
		{"plan below servers in use", []string{"plan", "set", "1"}, nil, "in use"},
		{"free plan below servers in use", []string{"plan", "set", "free"}, nil, "in use"},
		{"plan zero", []string{"plan", "set", "0"}, nil, "plan"},
		{"unknown plan", []string{"plan", "set", "gold"}, nil, "plan"},
		{"no admin token: server add", []string{"server", "add", "intruder"}, noToken, "LUMOS_ADMIN_TOKEN"},
		{"no admin token: domain add", add(newDomain, "10.0.0.5:80"), noToken, "LUMOS_ADMIN_TOKEN"},
		{"no admin token: plan set", []string{"plan", "set", "pro"}, noToken, "LUMOS_ADMIN_TOKEN"},
		{"no admin token: read", []string{"domain", "list"}, noToken, "LUMOS_ADMIN_TOKEN"},
		{"wrong admin token: server add", []string{"server", "add", "intruder"}, wrongToken, "not valid"},
		{"wrong admin token: decommission", []string{"server", "decommission", "s1", "--yes"}, wrongToken, "not valid"},
		{"wrong admin token: domain assign", []string{"domain", "assign", "good.example.com", "s2"}, wrongToken, "not valid"},
		{"wrong admin token: read", []string{"server", "list"}, wrongToken, "not valid"},
	}
	for _, n := range c.ControlNames() {
		addr := c.ControlAddr(n)
		for _, tc := range cases {
			args := append([]string{"--addr", addr}, tc.args...)
			r := c.LumosEnv(tc.env, args...)
			if r.Code == 0 {
				t.Errorf("%s via %s: succeeded, want an error: %s", tc.name, n, r)
				continue
			}
			if err := checkErrorLine(r, tc.want); err != nil {
				t.Errorf("%s via %s: %v\n%s", tc.name, n, err, r)
			}
		}
	}
	if t.Failed() {
		// Show one run of each case, to see what the CLI says.
		for _, tc := range cases {
			r := c.LumosEnv(tc.env, tc.args...)
			t.Logf("%-36s exit %d: %s", tc.name, r.Code, strings.Join(r.StderrLines(), " | "))
		}
	}

	// Nothing changed, on any control node. Server statuses come from
	// gossip, not from the replicated state: a node wrongly suspected while
	// the machine is loaded may show offline for a while, so allow time.
	for _, n := range c.ControlNames() {
		addr := c.ControlAddr(n)
		st, err := c.Status(n)
		if err != nil {
			t.Fatal(err)
		}
		if b := indexBefore[n]; st.CommitIndex != b.CommitIndex || st.AppliedIndex != b.AppliedIndex || st.Term != b.Term {
			t.Errorf("%s: Raft moved from term %d commit %d applied %d to term %d commit %d applied %d",
				n, b.Term, b.CommitIndex, b.AppliedIndex, st.Term, st.CommitIndex, st.AppliedIndex)
		}
		took := eventually(t, 30*time.Second, n+" holds the state from before", func() error {
			if got, err := c.tryJSON(nil, "--stale", "--addr", addr, "domain", "list"); err != nil || got != domainsBefore {
				return fmt.Errorf("domain list changed (err %v):\nbefore %s\nafter %s", err, domainsBefore, got)
			}
			got, err := c.tryJSON(nil, "--stale", "--addr", addr, "server", "list")
			if err != nil {
				return err
			}
			if got = withoutFields(t, got, volatile...); got != serversBefore {
				return fmt.Errorf("server list changed:\nbefore %s\nafter %s", serversBefore, got)
			}
			if got, err := c.tryJSON(nil, "--stale", "--addr", addr, "events"); err != nil || got != eventsBefore {
				return fmt.Errorf("events changed (err %v):\nbefore %s\nafter %s", err, eventsBefore, got)
			}
			if got, err := c.tryJSON(nil, "--stale", "--addr", addr, "plan", "show"); err != nil || got != planBefore {
				return fmt.Errorf("plan changed (err %v):\nbefore %s\nafter %s", err, planBefore, got)
			}
			return nil
		})
		if took > time.Second {
			t.Logf("%s showed the state from before only after %s (gossip status flapped)", n, took.Round(time.Millisecond))
		}
	}
}

// checkErrorLine checks a failed command's stderr: one line "lumos: ..."
// holding want (case-insensitive), plus the pointer to --help after a usage
// error (exit status 2).
func checkErrorLine(r Result, want string) error {
	lines := r.StderrLines()
	if len(lines) == 0 {
		return fmt.Errorf("exit %d with nothing on stderr", r.Code)
	}
	if !strings.HasPrefix(lines[0], "lumos: ") {
		return fmt.Errorf("stderr does not start with \"lumos: \"")
	}
	if !strings.Contains(strings.ToLower(lines[0]), strings.ToLower(want)) {
		return fmt.Errorf("error line does not mention %q", want)
	}
	extra := lines[1:]
	if r.Code == 2 && len(extra) == 1 && strings.HasPrefix(extra[0], "run 'lumos ") && strings.HasSuffix(extra[0], "--help' for usage") {
		extra = nil
	}
	if len(extra) > 0 {
		return fmt.Errorf("stderr has %d lines, want one", len(lines))
	}
	if r.Code != 1 && r.Code != 2 {
		return fmt.Errorf("exit status %d, want 1 (error) or 2 (usage)", r.Code)
	}
	return nil
}

// TestShieldJoinRefusals presents bad tokens to the control plane, and
// restarts a shield on its data dir without a token.
func TestShieldJoinRefusals(t *testing.T) {
	c := startCluster(t, 2)

	// The refusals below must come fast: a refused join is not retried.
	const joinLimit = 20 * time.Second
	const fast = 10 * time.Second
	refused := func(what, name string, slot int, token, want string) {
		t.Helper()
		r := c.JoinShield(name, slot, token, joinLimit)
		if r.Code == 0 || r.TimedOut {
			t.Errorf("%s: join was not refused: %s", what, r)
			return
		}
		if r.Duration > fast {
			t.Errorf("%s: refusal took %s, want under %s", what, r.Duration.Round(time.Millisecond), fast)
		}
		lines := r.StderrLines()
		if len(lines) == 0 {
			t.Errorf("%s: refused with nothing on stderr: %s", what, r)
			return
		}
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "lumos: ") || !strings.Contains(strings.ToLower(last), strings.ToLower(want)) {
			t.Errorf("%s: last stderr line %q, want \"lumos: ...%s...\"", what, last, want)
		}
		if _, err := os.Stat(filepath.Join(c.Dir, name, "node.json")); err == nil {
			t.Errorf("%s: a refused join left an identity in the data dir", what)
		}
		t.Logf("%s: refused in %s: %s", what, r.Duration.Round(time.Millisecond), last)
	}

	refused("wrong token", "s9", 9, "lmt_"+strings.Repeat("a", 52), "token is not valid")
	refused("token that is not a token", "s9", 9, "hello", "token")

	out := c.MustLumos("server", "add", "retired", "--output", "json")
	var added struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.Token == "" {
		t.Fatalf("server add --output json: no token (%v):\n%s", err, out)
	}
	c.MustLumos("server", "decommission", "retired", "--yes")
	eventually(t, 10*time.Second, "every control node sees retired decommissioned", func() error {
		for _, n := range c.ControlNames() {
			var s serverJSON
			if _, err := c.tryJSON(&s, "--stale", "--addr", c.ControlAddr(n), "server", "show", "retired"); err != nil {
				return err
			}
			if s.Status != "decommissioned" {
				return fmt.Errorf("%s: retired is %s", n, s.Status)
			}
		}
		return nil
	})
	refused("decommissioned server's token", "s8", 8, added.Token, "decommissioned")

	s1Token, err := os.ReadFile(filepath.Join(c.Dir, "s1.token"))
	if err != nil {
		t.Fatal(err)
	}
	refused("token bound to live s1, other node name", "s1b", 7, strings.TrimSpace(string(s1Token)), "already in use")

	// Bad joins changed nothing about s1, and no server took a new node.
	var servers []serverJSON
	c.JSON(&servers, "server", "list")
	for _, s := range servers {
		switch s.Name {
		case "s1", "s2":
			if s.NodeName != s.Name || s.Status != "online" {
				t.Errorf("%s: node %q status %s after the refused joins", s.Name, s.NodeName, s.Status)
			}
		case "retired":
			if s.NodeName != "" {
				t.Errorf("retired was bound to node %q", s.NodeName)
			}
		}
	}

	// A shield restarted on its data dir rejoins without a token.
	var before serverJSON
	c.JSON(&before, "server", "show", "s1")
	c.Term("s1")
	eventually(t, 10*time.Second, "s1 is offline after SIGTERM", func() error {
		var s serverJSON
		if _, err := c.tryJSON(&s, "server", "show", "s1"); err != nil {
			return err
		}
		if s.Status != "offline" {
			return fmt.Errorf("s1 is %s", s.Status)
		}
		return nil
	})
	c.Restart("s1")
	for _, kv := range c.ProcEnv("s1") {
		if strings.HasPrefix(kv, "LUMOS_TOKEN=") {
			t.Fatalf("s1 was restarted with LUMOS_TOKEN in its environment")
		}
	}
	took := eventually(t, 30*time.Second, "s1 is online again", func() error {
		var s serverJSON
		if _, err := c.tryJSON(&s, "server", "show", "s1"); err != nil {
			return err
		}
		if s.Status != "online" {
			return fmt.Errorf("s1 is %s", s.Status)
		}
		if s.ID != before.ID || s.NodeName != "s1" {
			return fmt.Errorf("s1 is now id %s node %s, was %s %s", s.ID, s.NodeName, before.ID, before.NodeName)
		}
		return nil
	})
	t.Logf("s1 online %s after its restart without a token", took.Round(time.Millisecond))
	c.MustLumos("domain", "add", "rejoined.example.com", "--origin", "10.0.0.5:80", "--server", "s1")
	waitCurrent(t, c, 20*time.Second, "s1")
	if !c.Running("s1") {
		t.Error("s1 stopped")
	}
}

// TestDecommission decommissions a shield that is the only server of a
// domain: the CLI warns, and the shield leaves and stops by itself.
func TestDecommission(t *testing.T) {
	c := startCluster(t, 2)
	c.MustLumos("domain", "add", "solo.example.com", "--origin", "10.0.0.5:80", "--server", "s2")
	c.MustLumos("domain", "add", "both.example.com", "--origin", "10.0.0.6:80", "--server", "s1", "--server", "s2")

	r := c.Lumos("server", "decommission", "s2", "--yes")
	if r.Code != 0 {
		t.Fatalf("decommission: %s", r)
	}
	decommissioned := time.Now()
	warnings := r.StderrLines()
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "lumos: ") || !strings.Contains(warnings[0], "WARNING") ||
		!strings.Contains(warnings[0], "solo.example.com") {
		t.Errorf("decommission: want one warning naming solo.example.com on stderr: %s", r)
	}
	if strings.Contains(r.Stderr, "both.example.com") {
		t.Errorf("decommission warns about both.example.com, which keeps s1: %s", r)
	}
	if !strings.Contains(r.Stdout, "decommissioned") || !strings.Contains(r.Stdout, "both.example.com") || !strings.Contains(r.Stdout, "solo.example.com") {
		t.Errorf("decommission: stdout does not report the domains s2 left: %s", r)
	}

	took := c.WaitExit("s2", 15*time.Second)
	t.Logf("s2 exited %s after the decommission", took.Round(time.Millisecond))
	if log := c.NodeLog("s2"); !strings.Contains(log, "decommissioned") {
		t.Errorf("s2's log does not say it was decommissioned")
	}

	eventually(t, 10*time.Second, "every control node shows s2 decommissioned", func() error {
		for _, n := range c.ControlNames() {
			addr := c.ControlAddr(n)
			var s serverJSON
			if _, err := c.tryJSON(&s, "--stale", "--addr", addr, "server", "show", "s2"); err != nil {
				return err
			}
			if s.Status != "decommissioned" || !s.Decommissioned || len(s.Domains) != 0 {
				return fmt.Errorf("%s: s2 status %s decommissioned %v domains %q", n, s.Status, s.Decommissioned, s.Domains)
			}
			st, err := c.Status(n)
			if err != nil {
				return err
			}
			if st.Servers["decommissioned"] != 1 || st.Servers["online"] != 1 {
				return fmt.Errorf("%s: status counts %v", n, st.Servers)
			}
		}
		return nil
	})
	var solo, both domainJSON
	c.JSON(&solo, "domain", "show", "solo.example.com")
	c.JSON(&both, "domain", "show", "both.example.com")
	if len(solo.Servers) != 0 {
		t.Errorf("solo.example.com still has servers %+v", solo.Servers)
	}
	if len(both.Servers) != 1 || both.Servers[0].Name != "s1" || !both.Servers[0].Primary {
		t.Errorf("both.example.com: servers %+v, want s1 alone as primary", both.Servers)
	}
	var events []eventJSON
	c.JSON(&events, "events")
	if len(events) == 0 || events[0].Type != "server_decommissioned" {
		t.Errorf("newest event is not server_decommissioned: %+v", events)
	}

	// Its token never reconnects: not under a new name, nor from its own
	// data dir.
	s2Token, err := os.ReadFile(filepath.Join(c.Dir, "s2.token"))
	if err != nil {
		t.Fatal(err)
	}
	r = c.JoinShield("s2b", 5, strings.TrimSpace(string(s2Token)), 20*time.Second)
	if r.Code == 0 || r.TimedOut || !strings.Contains(r.Stderr, "decommissioned") {
		t.Errorf("join with the decommissioned s2's token: want a refusal naming the decommission: %s", r)
	}
	c.Restart("s2")
	took = c.WaitExit("s2", 15*time.Second)
	t.Logf("s2 restarted on its data dir stopped again after %s", took.Round(time.Millisecond))
	log := c.NodeLog("s2")
	if i := strings.LastIndex(log, "starting s2"); i < 0 || !strings.Contains(log[i:], "decommissioned") {
		t.Errorf("s2 restarted on its data dir did not say it was decommissioned")
	}
	var s2 serverJSON
	c.JSON(&s2, "server", "show", "s2")
	if s2.Status != "decommissioned" {
		t.Errorf("s2 is %s after its restart", s2.Status)
	}
	t.Logf("s2 decommissioned and gone %s after the command", time.Since(decommissioned).Round(time.Millisecond))
}

// ---- helpers ----

// filesContaining lists the files under dir whose content holds s.
func filesContaining(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking (temporary files)
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if strings.Contains(string(b), s) {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("search %s: %v", dir, err)
	}
	return out
}

// sameOnControls runs a read command with --output json against every
// control node, answered from that node's own copy of the state (--stale),
// and reports whether all answered byte-identical output.
func sameOnControls(c *Cluster, args ...string) error {
	var first, firstNode string
	for _, n := range c.ControlNames() {
		out, err := c.tryJSON(nil, append([]string{"--stale", "--addr", c.ControlAddr(n)}, args...)...)
		if err != nil {
			return err
		}
		if firstNode == "" {
			first, firstNode = out, n
			continue
		}
		if out != first {
			return fmt.Errorf("lumos %q: %s and %s differ:\n%s: %s\n%s: %s", args, firstNode, n, firstNode, first, n, out)
		}
	}
	return nil
}

// waitCurrent waits until the named shields are online and current: they
// have applied every change that concerns them. A shield publishes its
// applied index by gossip, and one control node may hear of it later than
// another, so it is enough that one control node reports it from its own
// view (--stale). It returns how long that took.
func waitCurrent(t *testing.T, c *Cluster, timeout time.Duration, shields ...string) time.Duration {
	t.Helper()
	return eventually(t, timeout, fmt.Sprintf("shields %q are current", shields), func() error {
		for _, name := range shields {
			var views []string
			ok := false
			for _, n := range c.ControlNames() {
				var s serverJSON
				if _, err := c.tryJSON(&s, "--stale", "--addr", c.ControlAddr(n), "server", "show", name); err != nil {
					return err
				}
				if s.Status == "online" && s.Current {
					ok = true
					break
				}
				views = append(views, fmt.Sprintf("%s says status %s current %v applied %d", n, s.Status, s.Current, s.AppliedIndex))
			}
			if !ok {
				return fmt.Errorf("%s: %s", name, strings.Join(views, "; "))
			}
		}
		return nil
	})
}

// waitConverged waits until every control node has committed and applied
// the same last index, as each reports of itself.
func waitConverged(t *testing.T, c *Cluster, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "control nodes applied the same last index", func() error {
		var first statusJSON
		for i, n := range c.ControlNames() {
			st, err := c.Status(n)
			if err != nil {
				return err
			}
			if st.Leader == "" || st.CommitIndex != st.AppliedIndex {
				return fmt.Errorf("%s: leader %q commit %d applied %d", n, st.Leader, st.CommitIndex, st.AppliedIndex)
			}
			if i == 0 {
				first = st
				continue
			}
			if st.Leader != first.Leader || st.AppliedIndex != first.AppliedIndex {
				return fmt.Errorf("%s: leader %s applied %d; %s: leader %s applied %d",
					first.Node, first.Leader, first.AppliedIndex, n, st.Leader, st.AppliedIndex)
			}
		}
		return nil
	})
}

func serverNames(list []serverJSON) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.Name)
	}
	slices.Sort(out)
	return out
}

func domainNames(list []domainJSON) []string {
	var out []string
	for _, d := range list {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out
}
