package failover

import (
	"fmt"
	"time"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

// verdict is the controller's view of one shield.
type verdict struct {
	down   bool   // the committed-or-about-to-be-committed verdict
	reason string // why it is down

	observedBad  bool      // the last observation was unhealthy
	badReason    string    // and why
	healthySince time.Time // start of the current healthy run (zero when unhealthy)
	badSince     time.Time // when the current unhealthy run was first observed

	missingSince time.Time // when the node was first found absent from gossip

	heartbeat   uint64    // last heartbeat counter seen in gossip
	heartbeatAt time.Time // when it last changed (local clock)

	flaps    []time.Time // healthy → unhealthy observations inside the flap window
	damped   bool        // flapping: held down until healthy for FlapHold
	bound    bool        // the server has a node (it joined at least once)
	lastNode string
}

// transition is a verdict change to commit.
type transition struct {
	id     string
	down   bool
	reason string
	damped bool // the server is being held down for flapping (first time)
	flaps  int
}

// tracker turns gossip observations into per-server verdicts with a
// recovery hold and flap damping. It is owned by one goroutine.
type tracker struct {
	cfg      *Config
	verdicts map[string]*verdict
}

func newTracker(cfg *Config) *tracker {
	return &tracker{cfg: cfg, verdicts: map[string]*verdict{}}
}

// observe evaluates every live server against the gossip view at now and
// returns the verdict changes to commit. The replicated Down flag seeds a
// server's verdict the first time it is seen, so a new leader starts where
// the old one stopped (a server recorded down must serve a full recovery
// hold under the new leader too).
func (t *tracker) observe(now time.Time, st *state.State, members map[string]mesh.Member) []transition {
	var out []transition
	seen := map[string]bool{}
	for _, sv := range st.SortedServers() {
		if sv.Decommissioned {
			continue
		}
		seen[sv.ID] = true
		v, ok := t.verdicts[sv.ID]
		if !ok {
			v = &verdict{down: sv.Down, reason: sv.DownReason}
			t.verdicts[sv.ID] = v
		}
		v.bound = sv.NodeName != ""
		if !v.bound {
			continue // never joined: neither up nor reported down
		}
		if v.lastNode != sv.NodeName {
			v.lastNode, v.heartbeat, v.heartbeatAt = sv.NodeName, 0, time.Time{}
		}
		bad, why := t.assess(now, v, members[sv.NodeName])
		if bad && !v.observedBad {
			v.badSince = now
			v.flaps = append(pruneBefore(v.flaps, now.Add(-t.cfg.FlapWindow)), now)
		}
		v.observedBad, v.badReason = bad, why
		if bad {
			v.healthySince = time.Time{}
		} else if v.healthySince.IsZero() {
			v.healthySince = now
		}
		v.flaps = pruneBefore(v.flaps, now.Add(-t.cfg.FlapWindow))

		switch {
		case bad && !v.down:
			v.down, v.reason = true, why
			tr := transition{id: sv.ID, down: true, reason: why}
			if !v.damped && t.cfg.FlapLimit > 0 && len(v.flaps) > t.cfg.FlapLimit {
				v.damped = true
				tr.damped, tr.flaps = true, len(v.flaps)
			}
			out = append(out, tr)
		case bad && v.down && !v.damped && t.cfg.FlapLimit > 0 && len(v.flaps) > t.cfg.FlapLimit:
			// Flapping while already down (it came back briefly within the
			// hold): from now on it must stay healthy for the flap hold.
			v.damped = true
			out = append(out, transition{id: sv.ID, down: true, damped: true, flaps: len(v.flaps)})
		case !bad && v.down:
			hold := t.cfg.RecoveryHold
			if v.damped {
				hold = max(hold, t.cfg.FlapHold)
			}
			if now.Sub(v.healthySince) >= hold {
				v.down, v.reason, v.damped = false, "", false
				out = append(out, transition{id: sv.ID, down: false, reason: fmt.Sprintf("healthy for %s", hold)})
			}
		}
	}
	for id := range t.verdicts {
		if !seen[id] {
			delete(t.verdicts, id)
		}
	}
	return out
}

// assess says whether a server's node looks unhealthy right now, and why.
func (t *tracker) assess(now time.Time, v *verdict, m mesh.Member) (bool, string) {
	if m.Name == "" {
		// A shield just bound may not be in this node's gossip table yet.
		if v.missingSince.IsZero() {
			v.missingSince = now
		}
		if now.Sub(v.missingSince) < missingGrace {
			return v.observedBad, v.badReason
		}
		return true, "not in the gossip mesh"
	}
	v.missingSince = time.Time{}
	switch {
	case m.State == mesh.StateDead:
		return true, "gossip: node failed (no answer to probes)"
	case m.State == mesh.StateLeft:
		return true, "gossip: node left the mesh"
	case m.Meta.Health == "error":
		typ := m.Meta.ErrorType
		if typ == "" {
			typ = "haproxy_error"
		}
		return true, "HAProxy unhealthy: " + typ
	}
	if hb := m.Meta.Heartbeat; hb != 0 {
		if hb != v.heartbeat {
			v.heartbeat, v.heartbeatAt = hb, now
		} else if t.cfg.StaleAfter > 0 && now.Sub(v.heartbeatAt) > t.cfg.StaleAfter {
			return true, fmt.Sprintf("not heard from for %s", now.Sub(v.heartbeatAt).Round(time.Second))
		}
	}
	return false, ""
}

// missingGrace is how long a bound shield may be absent from the gossip
// table (it joined a moment ago, or this node just started) before it counts
// as down.
const missingGrace = 10 * time.Second

// up reports whether a server may take traffic: bound and not down.
func (t *tracker) up(id string) bool {
	v, ok := t.verdicts[id]
	return ok && v.bound && !v.down
}

// badSince is when the server's current unhealthy run began (zero if
// healthy): the start of a failover, for the duration histogram.
func (t *tracker) badSince(id string) time.Time {
	if v, ok := t.verdicts[id]; ok && v.observedBad {
		return v.badSince
	}
	return time.Time{}
}

// nextDeadline is the earliest time a held server could recover, or a
// heartbeat could go stale, so the controller wakes for it.
func (t *tracker) nextDeadline(now time.Time) time.Time {
	var next time.Time
	consider := func(at time.Time) {
		if at.After(now) && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	for _, v := range t.verdicts {
		if v.down && !v.observedBad && !v.healthySince.IsZero() {
			hold := t.cfg.RecoveryHold
			if v.damped {
				hold = max(hold, t.cfg.FlapHold)
			}
			consider(v.healthySince.Add(hold))
		}
		if !v.missingSince.IsZero() {
			consider(v.missingSince.Add(missingGrace))
		}
		if !v.heartbeatAt.IsZero() && t.cfg.StaleAfter > 0 {
			consider(v.heartbeatAt.Add(t.cfg.StaleAfter + time.Millisecond))
		}
	}
	return next
}

func pruneBefore(ts []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cutoff) {
		i++
	}
	return ts[i:]
}
