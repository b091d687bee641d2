package mesh

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// This file holds helpers for tests of this and other packages that need a
// real in-process mesh (memberlist on loopback sockets).

// TestingT is the part of testing.TB the helpers use; *testing.T and
// *testing.B satisfy it.
type TestingT interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// LocalTestConfig returns a Config for an in-process test node: bound to
// 127.0.0.1 on a free port, "local" timing profile, plaintext gossip.
func LocalTestConfig(name string) *Config {
	c := DefaultConfig()
	c.Name = name
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	c.Profile = ProfileLocal
	c.AllowPlaintext = true
	return c
}

// MakeCluster starts n nodes named "node-0" … "node-<n-1>" from
// LocalTestConfig (configure, if not nil, may adjust each config first),
// joins every node through node-0 and waits until each node sees n alive
// members. The nodes are closed when the test ends.
func MakeCluster(t TestingT, n int, configure func(i int, c *Config)) []*Mesh {
	t.Helper()
	nodes := make([]*Mesh, 0, n)
	for i := range n {
		c := LocalTestConfig(fmt.Sprintf("node-%d", i))
		if configure != nil {
			configure(i, c)
		}
		m, err := New(c)
		if err != nil {
			t.Fatalf("start %s: %v", c.Name, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = m.Close(ctx)
		})
		nodes = append(nodes, m)
	}
	for _, m := range nodes[1:] {
		if _, err := m.Join([]string{nodes[0].LocalAddr()}); err != nil {
			t.Fatalf("%s join %s: %v", m.LocalName(), nodes[0].LocalName(), err)
		}
	}
	converged := func() bool {
		for _, m := range nodes {
			if len(m.AliveMembers()) != n {
				return false
			}
		}
		return true
	}
	if !pollUntil(10*time.Second, converged) {
		var seen []string
		for _, m := range nodes {
			seen = append(seen, fmt.Sprintf("%s sees %d", m.LocalName(), len(m.AliveMembers())))
		}
		t.Fatalf("cluster of %d did not converge: %s alive", n, strings.Join(seen, ", "))
	}
	return nodes
}

// pollUntil calls cond every few milliseconds until it returns true or
// timeout passes; it reports whether cond returned true.
func pollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
