package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/lumos-mesh/lumos/state"
)

// base is a fixed proposal time in a non-UTC zone: commands are stamped in
// UTC by state.NewCommand and must survive encode/decode and snapshots.
var base = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func cmdLog(t *testing.T, idx uint64, c *state.Command) *raft.Log {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatalf("encode %s: %v", c.Type, err)
	}
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: b}
}

func serverAdd(sec int, id, name string) *state.Command {
	return state.MustCommand(at(sec), &state.ServerAdd{ID: id, Name: name, TokenHash: state.HashToken("token-" + id), TokenPrefix: "lmt_" + id})
}

// allCommands returns one or more commands of every type, in an order in
// which they all succeed. tls.example.org ends with an empty (non-nil)
// server list, which snapshots must keep as it is.
func allCommands() []*state.Command {
	return []*state.Command{
		serverAdd(1, "srv-a", "alpha"),
		serverAdd(2, "srv-b", "beta"),
		serverAdd(3, "srv-c", "gamma"),
		state.MustCommand(at(4), &state.ServerRename{ID: "srv-a", Name: "alpha-1"}),
		state.MustCommand(at(5), &state.ServerBind{ID: "srv-a", NodeName: "shield-a", Addr: "203.0.113.10", RaftAddr: "203.0.113.10:7300"}),
		state.MustCommand(at(6), &state.DomainAdd{Name: "Example.COM.", Origins: []string{"198.51.100.7:80", "198.51.100.8:8080"}, Mode: "http", Servers: []string{"srv-a", "srv-b"}}),
		state.MustCommand(at(7), &state.DomainAdd{Name: "tls.example.org", Origins: []string{"[2001:db8::1]:443"}, Mode: "tcp", DNS: state.DNS{Provider: "cloudflare", TTL: 60}, Servers: []string{"srv-c"}}),
		state.MustCommand(at(8), &state.DomainAssign{Name: "example.com", Servers: []string{"srv-b", "srv-a", "srv-c"}}),
		state.MustCommand(at(9), &state.PlanSet{Plan: state.Plan{Name: state.PlanPro, Limit: 5}}),
		state.MustCommand(at(10), &state.EventAdd{Event: state.Event{Type: state.EventServerDown, ServerID: "srv-b", Domain: "example.com", Reason: "probe timeout"}}),
		state.MustCommand(at(11), &state.EventAdd{Event: state.Event{Type: state.EventFailoverTriggered, Time: at(10).Add(500 * time.Millisecond), Domain: "example.com", FromIP: "203.0.113.11", ToIP: "203.0.113.10"}}),
		state.MustCommand(at(12), &state.DomainAdd{Name: "gone.example.net", Origins: []string{"192.0.2.1:80"}, Servers: []string{"srv-a"}}),
		state.MustCommand(at(13), &state.DomainRemove{Name: "gone.example.net"}),
		state.MustCommand(at(14), &state.ServerDecommission{ID: "srv-c"}),
		state.MustCommand(at(15), &state.ServerNodeRemoved{ID: "srv-c"}),
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func stateJSON(t *testing.T, f *FSM) []byte {
	t.Helper()
	var b []byte
	f.View(func(st *state.State) { b = mustJSON(t, st) })
	return b
}

func applyAll(t *testing.T, f *FSM) uint64 {
	t.Helper()
	var idx uint64
	for i, c := range allCommands() {
		idx = uint64(10 + 2*i) // gaps, like configuration entries in a real log
		res, ok := f.Apply(cmdLog(t, idx, c)).(ApplyResult)
		if !ok {
			t.Fatalf("%s: response is not an ApplyResult", c.Type)
		}
		if res.Err != nil {
			t.Fatalf("%s: %v", c.Type, res.Err)
		}
	}
	return idx
}

func TestFSMAppliesEveryCommandType(t *testing.T) {
	f := NewFSM()
	seen := map[string]bool{}
	for i, c := range allCommands() {
		idx := uint64(i + 1)
		res := f.Apply(cmdLog(t, idx, c)).(ApplyResult)
		if res.Err != nil {
			t.Fatalf("%s: %v", c.Type, res.Err)
		}
		seen[c.Type] = true
		if got := f.Index(); got != idx {
			t.Fatalf("%s: index %d, want %d", c.Type, got, idx)
		}
		switch c.Type {
		case state.CmdServerAdd:
			if sv, ok := res.Value.(*state.Server); !ok || sv.ID != c.ServerAdd.ID {
				t.Fatalf("server.add result %#v", res.Value)
			}
		case state.CmdServerDecommission:
			if r, ok := res.Value.(*state.DecommissionResult); !ok || r.Server.ID != "srv-c" {
				t.Fatalf("server.decommission result %#v", res.Value)
			}
		}
	}
	for _, typ := range []string{
		state.CmdServerAdd, state.CmdServerRename, state.CmdServerBind, state.CmdServerDecommission,
		state.CmdServerNodeRemoved, state.CmdDomainAdd, state.CmdDomainAssign, state.CmdDomainRemove,
		state.CmdPlanSet, state.CmdEventAdd,
	} {
		if !seen[typ] {
			t.Errorf("command type %s not exercised", typ)
		}
	}

	f.View(func(st *state.State) {
		if n := len(st.Servers); n != 3 {
			t.Errorf("servers: %d, want 3", n)
		}
		a := st.Servers["srv-a"]
		if a.Name != "alpha-1" || a.NodeName != "shield-a" || a.RaftAddr != "203.0.113.10:7300" {
			t.Errorf("srv-a: %+v", a)
		}
		if !a.CreatedAt.Equal(at(1)) || a.CreatedAt.Location() != time.UTC {
			t.Errorf("srv-a created at %v, want %v in UTC", a.CreatedAt, at(1))
		}
		if c := st.Servers["srv-c"]; !c.Decommissioned || !c.NodeRemoved {
			t.Errorf("srv-c: %+v", c)
		}
		d := st.Domains["example.com"]
		if d == nil || !reflect.DeepEqual(d.Servers, []string{"srv-b", "srv-a"}) || d.ActiveServer != "srv-b" {
			t.Errorf("example.com: %+v", d)
		}
		if d := st.Domains["tls.example.org"]; d == nil || d.Servers == nil || len(d.Servers) != 0 {
			t.Errorf("tls.example.org: %+v, want an empty server list", d)
		}
		if _, ok := st.Domains["gone.example.net"]; ok {
			t.Error("gone.example.net still present")
		}
		if st.Plan.Name != state.PlanPro {
			t.Errorf("plan %+v", st.Plan)
		}
	})
}

func TestFSMSnapshotRestoreRoundTrip(t *testing.T) {
	f := NewFSM()
	last := applyAll(t, f)

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	want := f.Clone()

	// A command applied after Snapshot must not leak into it.
	if res := f.Apply(cmdLog(t, last+1, serverAdd(30, "srv-late", "late"))).(ApplyResult); res.Err != nil {
		t.Fatal(res.Err)
	}

	persisted := persist(t, snap, last)

	g := NewFSM()
	watch, cancel := g.Watch()
	defer cancel()
	restore(t, persisted, g)

	got := g.Clone()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("restored state differs:\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
	}
	if a, b := mustJSON(t, got), mustJSON(t, want); !bytes.Equal(a, b) {
		t.Fatalf("restored state encodes differently:\n got %s\nwant %s", a, b)
	}
	if g.Restores() != 1 {
		t.Errorf("restores %d, want 1", g.Restores())
	}
	select {
	case idx := <-watch:
		if idx != last {
			t.Errorf("watch after restore: %d, want %d", idx, last)
		}
	default:
		t.Error("restore did not notify watchers")
	}

	// Snapshot of the restored FSM is byte-identical to the first one.
	snap2, err := g.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap2.Release()
	if again := persist(t, snap2, last); !bytes.Equal(persisted, again) {
		t.Fatalf("re-encoded snapshot differs:\n%s\n%s", persisted, again)
	}

	// The restored FSM keeps applying like the original did.
	late := cmdLog(t, last+1, serverAdd(30, "srv-late", "late"))
	if res := g.Apply(late).(ApplyResult); res.Err != nil {
		t.Fatal(res.Err)
	}
	if a, b := stateJSON(t, f), stateJSON(t, g); !bytes.Equal(a, b) {
		t.Fatalf("states diverged after restore:\n%s\n%s", a, b)
	}
}

func TestFSMSnapshotOfEmptyState(t *testing.T) {
	f := NewFSM()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	data := persist(t, snap, 0)
	g := NewFSM()
	applyAll(t, g) // restore must discard what was there
	restore(t, data, g)
	if a, b := stateJSON(t, f), stateJSON(t, g); !bytes.Equal(a, b) {
		t.Fatalf("empty round trip:\n%s\n%s", a, b)
	}
	if !reflect.DeepEqual(g.Clone(), state.New()) {
		t.Fatalf("restored empty state is not state.New(): %s", stateJSON(t, g))
	}
}

// persist writes snap through a raft in-memory snapshot sink and returns
// the bytes raft would hand to Restore.
func persist(t *testing.T, snap raft.FSMSnapshot, idx uint64) []byte {
	t.Helper()
	store := raft.NewInmemSnapshotStore()
	sink, err := store.Create(raft.SnapshotVersionMax, idx, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func restore(t *testing.T, data []byte, f *FSM) {
	t.Helper()
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("restore: %v", err)
	}
}

func TestFSMRejectsBadEntriesWithoutChange(t *testing.T) {
	f := NewFSM()
	last := applyAll(t, f)
	before := stateJSON(t, f)
	watch, cancel := f.Watch()
	defer cancel()

	future := serverAdd(40, "srv-new", "new")
	future.Version = state.CommandVersion + 1
	noPayload := &state.Command{Type: state.CmdDomainAdd, Version: state.CommandVersion, Time: at(40)}

	cases := []struct {
		name string
		data []byte
		code string
	}{
		{"not json", []byte("\x00\x01garbage"), state.CodeInvalid},
		{"empty", nil, state.CodeInvalid},
		{"json array", []byte(`[1,2]`), state.CodeInvalid},
		{"no version", []byte(`{"type":"server.add"}`), state.CodeInvalid},
		{"unknown type", []byte(`{"type":"server.explode","v":1}`), state.CodeInvalid},
		{"newer version", mustJSON(t, future), state.CodeInvalid},
		{"missing payload", mustJSON(t, noPayload), state.CodeInvalid},
		{"duplicate id", mustJSON(t, serverAdd(40, "srv-a", "other")), state.CodeConflict},
		{"unknown server", mustJSON(t, state.MustCommand(at(40), &state.ServerRename{ID: "nope", Name: "x"})), state.CodeNotFound},
		{"bad origin", mustJSON(t, state.MustCommand(at(40), &state.DomainAdd{Name: "x.example.com", Origins: []string{"0.0.0.0:80"}})), state.CodeInvalid},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.Apply(&raft.Log{Index: last + uint64(i) + 1, Term: 1, Type: raft.LogCommand, Data: tc.data})
			res, ok := resp.(ApplyResult)
			if !ok {
				t.Fatalf("response %T, want ApplyResult", resp)
			}
			var se *state.Error
			if !errors.As(res.Err, &se) {
				t.Fatalf("error %v (%T), want *state.Error", res.Err, res.Err)
			}
			if se.Code != tc.code {
				t.Errorf("code %q (%v), want %q", se.Code, se, tc.code)
			}
			if res.Value != nil {
				t.Errorf("value %#v with an error", res.Value)
			}
			if after := stateJSON(t, f); !bytes.Equal(after, before) {
				t.Fatalf("state changed:\n%s\n%s", before, after)
			}
		})
	}
	select {
	case idx := <-watch:
		t.Errorf("watchers notified (%d) though nothing changed", idx)
	default:
	}
}

func TestFSMRestoreRejectsBadSnapshots(t *testing.T) {
	f := NewFSM()
	applyAll(t, f)
	before := stateJSON(t, f)
	for _, data := range []string{
		``,
		`not json`,
		`{"v":1}`,
		`{"v":1,"state":null}`,
		`{"v":99,"state":{}}`,
		`{"state":{}}`,
	} {
		if err := f.Restore(io.NopCloser(strings.NewReader(data))); err == nil {
			t.Errorf("restore of %q succeeded", data)
		}
	}
	if after := stateJSON(t, f); !bytes.Equal(after, before) {
		t.Fatalf("state changed by a failed restore")
	}
	if f.Restores() != 0 {
		t.Errorf("restores %d, want 0", f.Restores())
	}
	// Missing maps are created, so later applies cannot panic.
	if err := f.Restore(io.NopCloser(strings.NewReader(`{"v":1,"state":{"index":7,"next_event_id":1,"plan":{"name":"free","limit":1}}}`))); err != nil {
		t.Fatal(err)
	}
	if res := f.Apply(cmdLog(t, 8, serverAdd(1, "srv-a", "alpha"))).(ApplyResult); res.Err != nil {
		t.Fatal(res.Err)
	}
}

func TestFSMApplyBatch(t *testing.T) {
	f := NewFSM()
	watch, cancel := f.Watch()
	defer cancel()
	logs := []*raft.Log{
		cmdLog(t, 1, serverAdd(1, "srv-a", "alpha")),
		{Index: 2, Term: 1, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(raft.Configuration{})},
		{Index: 3, Term: 1, Type: raft.LogCommand, Data: []byte("junk")},
		cmdLog(t, 4, serverAdd(2, "srv-b", "beta")),
	}
	out := f.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("%d responses for %d logs", len(out), len(logs))
	}
	if r := out[0].(ApplyResult); r.Err != nil {
		t.Errorf("entry 1: %v", r.Err)
	}
	if out[1] != nil {
		t.Errorf("configuration entry answered %#v", out[1])
	}
	if r := out[2].(ApplyResult); state.CodeOf(r.Err) != state.CodeInvalid {
		t.Errorf("junk entry: %v", r.Err)
	}
	if r := out[3].(ApplyResult); r.Err != nil {
		t.Errorf("entry 4: %v", r.Err)
	}
	if f.Index() != 4 {
		t.Errorf("index %d, want 4", f.Index())
	}
	select {
	case idx := <-watch:
		if idx != 4 {
			t.Errorf("watch %d, want 4", idx)
		}
	default:
		t.Error("batch did not notify watchers")
	}
	// Batch and single applies give the same state.
	g := NewFSM()
	for _, l := range logs {
		g.Apply(l)
	}
	if a, b := stateJSON(t, f), stateJSON(t, g); !bytes.Equal(a, b) {
		t.Fatalf("batch and single apply differ:\n%s\n%s", a, b)
	}
}

func TestFSMWatchCoalescesAndCancels(t *testing.T) {
	f := NewFSM()
	ch, cancel := f.Watch()
	other, cancelOther := f.Watch()
	for i := 1; i <= 5; i++ {
		if r := f.Apply(cmdLog(t, uint64(i), state.MustCommand(at(i), &state.EventAdd{Event: state.Event{Type: state.EventServerError}}))).(ApplyResult); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if idx := <-ch; idx != 5 {
		t.Errorf("coalesced value %d, want the latest, 5", idx)
	}
	select {
	case idx := <-ch:
		t.Errorf("second value %d: notifications must coalesce", idx)
	default:
	}
	cancel()
	cancel() // idempotent
	if _, ok := <-ch; ok {
		t.Error("channel open after cancel")
	}
	f.Apply(cmdLog(t, 6, state.MustCommand(at(6), &state.EventAdd{Event: state.Event{Type: state.EventServerError}})))
	if idx := <-other; idx != 6 {
		t.Errorf("other subscriber got %d, want 6", idx)
	}
	f.watch.close()
	if _, ok := <-other; ok {
		t.Error("channel open after close")
	}
	cancelOther()
	late, cancelLate := f.Watch()
	if _, ok := <-late; ok {
		t.Error("subscription after close is open")
	}
	cancelLate()
}
