package failover

import (
	"github.com/lumos-mesh/lumos/state"
)

// Decision is a change of a domain's active server.
type Decision struct {
	From   string // active server now
	To     string // active server after the decision
	Status string // state.FailoverActive (To is the primary) or state.FailoverFailedOver
	Event  string // state.EventFailoverTriggered or state.EventFailoverRecovered
	Reason string
}

// Decision reasons, as recorded in events.
const (
	ReasonPrimaryDown      = "primary server down"
	ReasonActiveDown       = "active secondary server down"
	ReasonPrimaryRecovered = "primary server recovered"
)

// Decide returns the change a domain needs given which servers are up, or
// false when it needs none. Rules (the seeds' failover table, plus the
// active secondary dying):
//   - primary down, domain active → the first up secondary in list order;
//   - failed over and the primary up again → back to the primary;
//   - failed over and the active secondary down → the next up secondary in
//     list order;
//   - nothing up to switch to (both down) → no change: last known good;
//   - a secondary down while the primary is up → no change.
//
// A domain with fewer than two servers has nothing to fail over to.
func Decide(d *state.Domain, up func(id string) bool) (Decision, bool) {
	if len(d.Servers) < 2 {
		return Decision{}, false
	}
	primary := d.Servers[0]
	active := d.ActiveServer
	if active == "" {
		active = primary
	}
	firstUp := func(skip string) string {
		for _, id := range d.Servers[1:] {
			if id != skip && up(id) {
				return id
			}
		}
		return ""
	}
	if active == primary {
		if up(primary) {
			return Decision{}, false
		}
		if to := firstUp(""); to != "" {
			return Decision{From: active, To: to, Status: state.FailoverFailedOver, Event: state.EventFailoverTriggered, Reason: ReasonPrimaryDown}, true
		}
		return Decision{}, false
	}
	if up(primary) {
		return Decision{From: active, To: primary, Status: state.FailoverActive, Event: state.EventFailoverRecovered, Reason: ReasonPrimaryRecovered}, true
	}
	if inList(d.Servers, active) && up(active) {
		return Decision{}, false
	}
	if to := firstUp(active); to != "" {
		return Decision{From: active, To: to, Status: state.FailoverFailedOver, Event: state.EventFailoverTriggered, Reason: ReasonActiveDown}, true
	}
	return Decision{}, false
}

func inList(list []string, x string) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}
