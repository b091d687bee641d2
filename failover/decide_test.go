package failover

import (
	"testing"

	"github.com/lumos-mesh/lumos/state"
)

func TestDecide(t *testing.T) {
	const P, S1, S2 = "p", "s1", "s2"
	none := Decision{}
	tests := []struct {
		name    string
		servers []string
		active  string
		status  string
		up      []string
		want    Decision
	}{
		// The seeds' failover behaviour table.
		{"seed: primary goes offline → secondary", []string{P, S1}, P, state.FailoverActive, []string{S1},
			Decision{P, S1, state.FailoverFailedOver, state.EventFailoverTriggered, ReasonPrimaryDown}},
		{"seed: primary recovers → back to primary", []string{P, S1}, S1, state.FailoverFailedOver, []string{P, S1},
			Decision{S1, P, state.FailoverActive, state.EventFailoverRecovered, ReasonPrimaryRecovered}},
		{"seed: both servers offline → no change", []string{P, S1}, P, state.FailoverActive, nil, none},
		{"seed: secondary offline, primary healthy → no change", []string{P, S1}, P, state.FailoverActive, []string{P}, none},

		// Beyond the seeds.
		{"healthy mesh → no change", []string{P, S1, S2}, P, state.FailoverActive, []string{P, S1, S2}, none},
		{"strict list order: first up secondary", []string{P, S1, S2}, P, state.FailoverActive, []string{S1, S2},
			Decision{P, S1, state.FailoverFailedOver, state.EventFailoverTriggered, ReasonPrimaryDown}},
		{"first secondary down too → the next one", []string{P, S1, S2}, P, state.FailoverActive, []string{S2},
			Decision{P, S2, state.FailoverFailedOver, state.EventFailoverTriggered, ReasonPrimaryDown}},
		{"active secondary dies while failed over → next up one", []string{P, S1, S2}, S1, state.FailoverFailedOver, []string{S2},
			Decision{S1, S2, state.FailoverFailedOver, state.EventFailoverTriggered, ReasonActiveDown}},
		{"active secondary dies, an earlier secondary is up → it", []string{P, S1, S2}, S2, state.FailoverFailedOver, []string{S1},
			Decision{S2, S1, state.FailoverFailedOver, state.EventFailoverTriggered, ReasonActiveDown}},
		{"failed over, all down → last known good", []string{P, S1, S2}, S1, state.FailoverFailedOver, nil, none},
		{"failed over, active up, primary down → stay", []string{P, S1, S2}, S2, state.FailoverFailedOver, []string{S1, S2}, none},
		{"failed over, primary and active up → back to primary", []string{P, S1, S2}, S2, state.FailoverFailedOver, []string{P, S2},
			Decision{S2, P, state.FailoverActive, state.EventFailoverRecovered, ReasonPrimaryRecovered}},
		{"active no longer assigned, primary down → first up secondary", []string{P, S1, S2}, "gone", state.FailoverFailedOver, []string{S2},
			Decision{"gone", S2, state.FailoverFailedOver, state.EventFailoverTriggered, ReasonActiveDown}},
		{"one server only → nothing to fail over to", []string{P}, P, state.FailoverActive, nil, none},
		{"no servers", nil, "", state.FailoverActive, nil, none},
		{"empty active means the primary", []string{P, S1}, "", state.FailoverActive, []string{S1},
			Decision{P, S1, state.FailoverFailedOver, state.EventFailoverTriggered, ReasonPrimaryDown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upSet := map[string]bool{}
			for _, id := range tt.up {
				upSet[id] = true
			}
			d := &state.Domain{Name: "example.test", Servers: tt.servers, ActiveServer: tt.active, FailoverStatus: tt.status}
			got, ok := Decide(d, func(id string) bool { return upSet[id] })
			if ok != (tt.want != none) || got != tt.want {
				t.Fatalf("Decide = %+v, %v; want %+v", got, ok, tt.want)
			}
		})
	}
}
