package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

// Cluster is what the controller needs from the node it runs on.
type Cluster interface {
	// View gives fn read-only access to the local replicated state.
	View(fn func(st *state.State))
	// Members is the gossip view, including dead and left members.
	Members() []mesh.Member
	// Subscribe delivers gossip membership events.
	Subscribe() (<-chan mesh.Event, func())
	// Watch signals (coalesced) when the state changes.
	Watch() (<-chan uint64, func())
	// Apply commits a command through Raft (leader only).
	Apply(ctx context.Context, cmd *state.Command) (any, error)
}

// Controller is one leadership term of failover work.
type Controller struct {
	cfg *Config
	c   Cluster
	log *slog.Logger
	m   *Metrics
	tr  *tracker

	mu sync.Mutex
	// started maps a domain to the start of the outage its last failover
	// answered, until the switch is confirmed at the provider.
	started map[string]time.Time
}

// Run runs the controller until ctx is done: the node's leader hook. It
// returns after every goroutine it started has stopped.
func Run(ctx context.Context, cfg *Config, c Cluster) error {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	m := cfg.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	ctl := &Controller{cfg: cfg, c: c, log: cfg.Logger, m: m, tr: newTracker(cfg), started: map[string]time.Time{}}
	var wg sync.WaitGroup
	if len(cfg.Providers) > 0 {
		r := newReconciler(ctl)
		wg.Add(1)
		go func() { defer wg.Done(); r.run(ctx) }()
	}
	if cfg.Notify != nil {
		wg.Add(1)
		go func() { defer wg.Done(); cfg.Notify(ctx) }()
	}
	ctl.loop(ctx)
	wg.Wait()
	return nil
}

func (ctl *Controller) loop(ctx context.Context) {
	events, cancelEvents := ctl.c.Subscribe()
	defer cancelEvents()
	watch, cancelWatch := ctl.c.Watch()
	defer cancelWatch()
	sweep := time.NewTicker(ctl.cfg.SweepInterval)
	defer sweep.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	ctl.log.Info("failover controller started")
	defer ctl.log.Info("failover controller stopped")
	for {
		ctl.step(ctx)
		if next := ctl.tr.nextDeadline(time.Now()); !next.IsZero() {
			wake.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-watch:
		case <-sweep.C:
		case <-wake.C:
		}
	}
}

// step observes the mesh, commits verdict changes, then decisions.
func (ctl *Controller) step(ctx context.Context) {
	now := time.Now()
	members := map[string]mesh.Member{}
	for _, m := range ctl.c.Members() {
		members[m.Name] = m
	}
	var changes []transition
	ctl.c.View(func(st *state.State) { changes = ctl.tr.observe(now, st, members) })
	for _, tr := range changes {
		if ctx.Err() != nil {
			return
		}
		ctl.commitVerdict(ctx, tr)
	}

	type pending struct {
		d     Decision
		name  string
		cmd   *state.Command
		extra bool // DNS by an external provider: switched when confirmed
		since time.Time
	}
	var decisions []pending
	ctl.c.View(func(st *state.State) {
		for _, d := range st.SortedDomains() {
			if d.DNS.Provider == state.DNSNone || d.DNS.Provider == "" {
				continue
			}
			dec, ok := Decide(d, ctl.tr.up)
			if !ok {
				continue
			}
			ev := state.Event{Type: dec.Event, Reason: dec.Reason, FromIP: addrOf(st, dec.From), ToIP: addrOf(st, dec.To)}
			ev.Message = fmt.Sprintf("%s: DNS %s → %s (%s → %s)", dec.Reason, orDash(ev.FromIP), orDash(ev.ToIP), nameOf(st, dec.From), nameOf(st, dec.To))
			cmd := state.MustCommand(time.Now(), &state.DomainFailover{Name: d.Name, From: dec.From, To: dec.To, Status: dec.Status, Event: ev})
			decisions = append(decisions, pending{d: dec, name: d.Name, cmd: cmd, extra: d.DNS.Provider != state.DNSBuiltin, since: ctl.tr.badSince(dec.From)})
		}
	})
	for _, p := range decisions {
		if ctx.Err() != nil {
			return
		}
		if _, err := ctl.c.Apply(ctx, p.cmd); err != nil {
			if !errors.Is(err, state.ErrConflict) {
				ctl.log.Warn("commit failover decision", "domain", p.name, "to", p.d.To, "err", err)
			}
			continue
		}
		ctl.log.Info("failover decision committed", "domain", p.name, "event", p.d.Event, "from", p.d.From, "to", p.d.To, "reason", p.d.Reason)
		if p.d.Event == state.EventFailoverRecovered {
			ctl.m.Recoveries.Inc()
			continue
		}
		ctl.m.Failovers.Inc()
		switch {
		case p.since.IsZero():
		case p.extra:
			ctl.mu.Lock()
			ctl.started[p.name] = p.since
			ctl.mu.Unlock()
		default:
			// The built-in DNS answers from the state: committed is switched.
			ctl.m.Duration.Observe(time.Since(p.since).Seconds())
			ctl.m.DNSUpdates.WithLabelValues(state.DNSBuiltin, "updated").Inc()
		}
	}
}

// commitVerdict records a shield going down or recovering (and flap
// damping). A refused change (the state already has it) is fine; any other
// failure puts the verdict back so the next step tries again.
func (ctl *Controller) commitVerdict(ctx context.Context, tr transition) {
	if tr.damped {
		msg := fmt.Sprintf("server flapped %d times in %s: held down (domains stay failed over) until healthy for %s", tr.flaps, ctl.cfg.FlapWindow, max(ctl.cfg.FlapHold, ctl.cfg.RecoveryHold))
		if _, err := ctl.c.Apply(ctx, state.MustCommand(time.Now(), &state.EventAdd{Event: state.Event{Type: state.EventFailoverHeld, ServerID: tr.id, Reason: "flapping", Message: msg}})); err != nil {
			ctl.log.Warn("record flap damping", "server", tr.id, "err", err)
		}
		ctl.m.ServerChanges.WithLabelValues("held").Inc()
		ctl.log.Warn("shield flapping: held down", "server", tr.id, "flaps", tr.flaps)
		if tr.reason == "" {
			return // already down: damping only
		}
	}
	_, err := ctl.c.Apply(ctx, state.MustCommand(time.Now(), &state.ServerLiveness{ID: tr.id, Down: tr.down, Reason: tr.reason}))
	switch {
	case err == nil:
		change := "recovered"
		if tr.down {
			change = "down"
		}
		ctl.m.ServerChanges.WithLabelValues(change).Inc()
		ctl.log.Info("shield "+change, "server", tr.id, "reason", tr.reason)
	case errors.Is(err, state.ErrConflict), errors.Is(err, state.ErrNotFound):
	default:
		ctl.log.Warn("record shield verdict", "server", tr.id, "down", tr.down, "err", err)
		if v, ok := ctl.tr.verdicts[tr.id]; ok {
			v.down = !tr.down
		}
	}
}

// switched records the end of an outage whose failover an external
// provider has now confirmed.
func (ctl *Controller) switched(domain string) {
	ctl.mu.Lock()
	since, ok := ctl.started[domain]
	delete(ctl.started, domain)
	ctl.mu.Unlock()
	if ok {
		ctl.m.Duration.Observe(time.Since(since).Seconds())
	}
}

func addrOf(st *state.State, id string) string {
	if sv, ok := st.Servers[id]; ok {
		return sv.Addr
	}
	return ""
}

func nameOf(st *state.State, id string) string {
	if sv, ok := st.Servers[id]; ok {
		return sv.Name
	}
	return orDash(id)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
