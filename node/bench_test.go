package node

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/api"
)

// BenchmarkWriteThroughFollower measures a CLI-style write sent to a
// follower (forwarded to the leader, committed by a majority of three
// control nodes) until it is visible on a shield's own copy.
func BenchmarkWriteThroughFollower(b *testing.B) {
	c := NewTestCluster(b, TestClusterOptions{})
	shield := c.AddShield("s1")
	var follower *Node
	for _, n := range c.Controls() {
		if !n.IsLeader() {
			follower = n
		}
	}
	cl := c.ClientFor(follower)
	ctx := context.Background()
	const writes = 200
	commit := make([]time.Duration, 0, writes)
	visible := make([]time.Duration, 0, writes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		commit, visible = commit[:0], visible[:0]
		for j := 0; j < writes; j++ {
			name := fmt.Sprintf("d%d-%d.example.com", i, j)
			start := time.Now()
			d, err := cl.AddDomain(ctx, &api.AddDomainRequest{Name: name, Origins: []string{"10.0.0.1:80"}})
			if err != nil {
				b.Fatal(err)
			}
			commit = append(commit, time.Since(start))
			for shield.Store().AppliedIndex() < d.Version {
				time.Sleep(100 * time.Microsecond)
			}
			visible = append(visible, time.Since(start))
		}
	}
	b.StopTimer()
	report(b, "commit", commit)
	report(b, "on-shield", visible)
}

// BenchmarkLeaderFailover kills the leader (no gossip leave, as a crash)
// and measures until a new leader has committed a write.
func BenchmarkLeaderFailover(b *testing.B) {
	const trials = 5
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		for j := 0; j < trials; j++ {
			c := NewTestCluster(b, TestClusterOptions{})
			old := c.Leader()
			start := time.Now()
			c.Kill(old.Name())
			ok := Eventually(20*time.Second, func() bool {
				for _, n := range c.Controls() {
					if n.IsLeader() {
						ctx, cancel := context.WithTimeout(context.Background(), time.Second)
						_, err := c.ClientFor(n).SetPlan(ctx, "pro")
						cancel()
						return err == nil
					}
				}
				return false
			})
			if !ok {
				b.Fatal("no new leader committed a write")
			}
			took = append(took, time.Since(start))
			c.Close()
		}
	}
	report(b, "failover", took)
}

func report(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	pct := func(p float64) time.Duration { return ds[int(float64(len(ds)-1)*p)] }
	b.ReportMetric(float64(pct(0.5).Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, name+"-p99-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Microseconds())/1000, name+"-max-ms")
}
