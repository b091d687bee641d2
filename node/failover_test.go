package node

import (
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/failover"
	"github.com/lumos-mesh/lumos/state"
)

// TestFailoverInCluster: a killed primary shield is failed over by the
// leader, the new leader after a leader crash keeps the decision, and the
// restarted primary gets its domain back after the recovery hold.
func TestFailoverInCluster(t *testing.T) {
	fc := failover.DefaultConfig()
	fc.RecoveryHold = 500 * time.Millisecond
	fc.SweepInterval = 200 * time.Millisecond
	c := NewTestCluster(t, TestClusterOptions{Tune: func(cfg *Config) { cfg.Failover = fc }})
	p := c.AddShield("p")
	c.AddShield("s")
	ctx := ctxT(t)
	if _, err := c.Client().AddDomain(ctx, &api.AddDomainRequest{Name: "shop.example", Origins: []string{"10.1.0.1:80"}, Servers: []string{"p", "s"}}); err != nil {
		t.Fatal(err)
	}
	domain := func() *state.Domain {
		var d *state.Domain
		c.Leader().View(func(st *state.State) {
			if x, ok := st.Domains["shop.example"]; ok {
				d = x.Clone()
			}
		})
		return d
	}
	pid := p.ServerID()
	c.Kill("p")
	c.WaitFor(10*time.Second, func() bool { d := domain(); return d != nil && d.FailoverStatus == state.FailoverFailedOver }, "failover after the primary was killed")
	if d := domain(); d.ActiveServer == pid {
		t.Fatalf("active server is still the dead primary: %+v", d)
	}

	// The leader crashes: the new one keeps the decision and repeats nothing.
	old := c.Leader()
	c.Kill(old.Name())
	c.WaitLeader(10 * time.Second)
	c.Restart("p")
	c.WaitFor(15*time.Second, func() bool { d := domain(); return d != nil && d.FailoverStatus == state.FailoverActive && d.ActiveServer == pid }, "recovery after the primary came back")
	var triggered, recovered, down int
	c.Leader().View(func(st *state.State) {
		for _, e := range st.Events {
			switch e.Type {
			case state.EventFailoverTriggered:
				triggered++
			case state.EventFailoverRecovered:
				recovered++
			case state.EventServerDown:
				down++
			}
		}
	})
	if triggered != 1 || recovered != 1 || down != 1 {
		c.Leader().View(func(st *state.State) {
			for _, e := range st.Events {
				t.Logf("%+v", e)
			}
		})
		t.Fatalf("events: %d failover_triggered, %d failover_recovered, %d server_down; want 1 each", triggered, recovered, down)
	}
	c.Restart(old.Name())
	c.WaitConverged(15 * time.Second)
}
