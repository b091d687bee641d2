package state

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"
)

// samplePayloads has one filled-in payload of every command type.
func samplePayloads() []struct {
	typ     string
	payload any
} {
	return []struct {
		typ     string
		payload any
	}{
		{CmdServerAdd, &ServerAdd{ID: "srv_1", Name: "web1", TokenHash: HashToken("t1"), TokenPrefix: "lmt_abcdefgh"}},
		{CmdServerRename, &ServerRename{ID: "srv_1", Name: "web-one"}},
		{CmdServerBind, &ServerBind{ID: "srv_1", NodeName: "node-a", Addr: "10.0.0.1", RaftAddr: "10.0.0.1:7000", Rebind: true}},
		{CmdServerDecommission, &ServerDecommission{ID: "srv_1"}},
		{CmdServerNodeRemoved, &ServerNodeRemoved{ID: "srv_1"}},
		{CmdDomainAdd, &DomainAdd{Name: "example.com", Origins: []string{"10.0.0.1:80", "[2001:db8::1]:443"}, Mode: ModeTCP,
			DNS: DNS{Provider: DNSCloudflare, TTL: 60, FailoverTTL: 10}, Servers: []string{"srv_1", "srv_2"}}},
		{CmdDomainAssign, &DomainAssign{Name: "example.com", Servers: []string{"srv_2", "srv_1"}}},
		{CmdDomainRemove, &DomainRemove{Name: "example.com"}},
		{CmdPlanSet, &PlanSet{Plan: Plan{Name: PlanCustom, Limit: 7}}},
		{CmdEventAdd, &EventAdd{Event: Event{Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Type: EventFailoverTriggered,
			Domain: "example.com", ServerID: "srv_2", FromIP: "10.0.0.1", ToIP: "10.0.0.2", Reason: "primary down", Message: "m"}}},
	}
}

// payloadOf returns the one non-nil payload of c, checking that it is the
// only one.
func payloadOf(t *testing.T, c *Command) any {
	t.Helper()
	v := reflect.ValueOf(c).Elem()
	var found any
	n := 0
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			found = f.Interface()
			n++
		}
	}
	if n != 1 {
		t.Fatalf("command %q has %d payloads, want 1", c.Type, n)
	}
	return found
}

func TestNewCommandAndRoundTrip(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 890, time.FixedZone("CET", 3600))
	for _, tc := range samplePayloads() {
		t.Run(tc.typ, func(t *testing.T) {
			c, err := NewCommand(now, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if c.Type != tc.typ {
				t.Errorf("Type = %q, want %q", c.Type, tc.typ)
			}
			if c.Version != CommandVersion {
				t.Errorf("Version = %d, want %d", c.Version, CommandVersion)
			}
			if !c.Time.Equal(now) || c.Time.Location() != time.UTC {
				t.Errorf("Time = %v, want %v in UTC", c.Time, now)
			}
			if got := payloadOf(t, c); got != tc.payload {
				t.Errorf("payload = %#v, want the pointer passed in", got)
			}

			b, err := c.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(`"type":"`+tc.typ+`"`)) || !bytes.Contains(b, []byte(`"v":1`)) {
				t.Errorf("encoding %s lacks type or version", b)
			}
			d, err := DecodeCommand(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d, c) {
				t.Errorf("round trip:\n got %#v\nwant %#v", d, c)
			}
			if !reflect.DeepEqual(payloadOf(t, d), tc.payload) {
				t.Errorf("payload after round trip = %#v, want %#v", payloadOf(t, d), tc.payload)
			}
			b2, err := d.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Errorf("re-encoding differs:\n%s\n%s", b, b2)
			}
		})
	}
}

func TestNewCommandValuePayload(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range samplePayloads() {
		t.Run(tc.typ, func(t *testing.T) {
			val := reflect.ValueOf(tc.payload).Elem().Interface()
			c, err := NewCommand(now, val)
			if err != nil {
				t.Fatalf("NewCommand(%T): %v", val, err)
			}
			if c.Type != tc.typ {
				t.Errorf("Type = %q, want %q", c.Type, tc.typ)
			}
			if got := payloadOf(t, c); !reflect.DeepEqual(got, tc.payload) {
				t.Errorf("payload = %#v, want %#v", got, tc.payload)
			}
		})
	}
}

func TestNewCommandUnknownPayload(t *testing.T) {
	now := time.Now()
	for _, p := range []any{nil, "server.add", 42, &Server{}, Domain{}, (*int)(nil)} {
		c, err := NewCommand(now, p)
		if err == nil || c != nil {
			t.Errorf("NewCommand(%T) = %v, %v; want an error", p, c, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("MustCommand with an unknown payload did not panic")
		}
	}()
	MustCommand(now, 42)
}

func TestMustCommand(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := MustCommand(now, &DomainRemove{Name: "example.com"})
	if c.Type != CmdDomainRemove || c.DomainRemove.Name != "example.com" || !c.Time.Equal(now) {
		t.Errorf("MustCommand = %+v", c)
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	for _, in := range []string{"", "{", "null x", `{"type":1}`, `{"v":"one"}`, `[]`, `{"time":"yesterday"}`} {
		c, err := DecodeCommand([]byte(in))
		if err == nil {
			t.Errorf("DecodeCommand(%q) = %+v, want an error", in, c)
			continue
		}
		if !strings.HasPrefix(err.Error(), "decode command") {
			t.Errorf("DecodeCommand(%q) error %q lacks context", in, err)
		}
	}
	// A command from a newer leader decodes (unknown fields are ignored);
	// Apply is what refuses it.
	c, err := DecodeCommand([]byte(`{"type":"server.teleport","v":9,"teleport":{"x":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != "server.teleport" || c.Version != 9 {
		t.Errorf("decoded %+v", c)
	}
}

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		tok, hash, prefix, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, "lmt_") {
			t.Errorf("token %q lacks the lmt_ prefix", tok)
		}
		if len(tok) != 4+52 {
			t.Errorf("token %q has length %d, want 56", tok, len(tok))
		}
		if strings.ContainsAny(tok, "=ABCDEFGHIJKLMNOPQRSTUVWXYZ \n") {
			t.Errorf("token %q has padding or upper case", tok)
		}
		if len(prefix) != TokenPrefixLen || !strings.HasPrefix(tok, prefix) {
			t.Errorf("prefix %q is not the first %d characters of %q", prefix, TokenPrefixLen, tok)
		}
		if hash != HashToken(tok) {
			t.Errorf("hash %q != HashToken(token) %q", hash, HashToken(tok))
		}
		if !validTokenHash(hash) {
			t.Errorf("hash %q is not 64 lower-case hex characters", hash)
		}
		if strings.Contains(hash, tok) || strings.Contains(tok, hash) {
			t.Errorf("hash and token overlap")
		}
		if seen[tok] {
			t.Fatalf("duplicate token %q", tok)
		}
		seen[tok] = true
	}
}

func TestHashToken(t *testing.T) {
	// SHA-256("abc"), a published test vector.
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := HashToken("abc"); got != abc {
		t.Errorf("HashToken(abc) = %q, want %q", got, abc)
	}
	if HashToken("abc") != HashToken("abc") {
		t.Error("HashToken is not stable")
	}
	// Surrounding white space (a pasted token) does not change the hash.
	if got := HashToken("  abc\n"); got != abc {
		t.Errorf("HashToken with spaces = %q, want %q", got, abc)
	}
	if HashToken("abc") == HashToken("abd") || HashToken("abc") == HashToken("ABC") {
		t.Error("different tokens hash the same")
	}
	if _, err := hex.DecodeString(HashToken("")); err != nil || len(HashToken("")) != 64 {
		t.Errorf("HashToken(\"\") = %q", HashToken(""))
	}
}

func TestHashesEqual(t *testing.T) {
	a := HashToken("lmt_one")
	tests := []struct {
		x, y string
		want bool
	}{
		{a, a, true},
		{a, HashToken("lmt_one"), true},
		{a, HashToken("lmt_two"), false},
		{a, a[:63], false},
		{a, a + "0", false},
		{a, strings.ToUpper(a), false},
		{"", "", true},
		{a, "", false},
	}
	for _, tc := range tests {
		if got := HashesEqual(tc.x, tc.y); got != tc.want {
			t.Errorf("HashesEqual(%q, %q) = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		id, err := NewID("srv_")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(id, "srv_") || len(id) != 4+10 {
			t.Errorf("NewID = %q, want srv_ and 10 hex characters", id)
		}
		if _, err := hex.DecodeString(id[4:]); err != nil {
			t.Errorf("NewID = %q: suffix is not hex", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
	if id, err := NewID(""); err != nil || len(id) != 10 {
		t.Errorf("NewID(\"\") = %q, %v", id, err)
	}
}

func TestValidTokenHash(t *testing.T) {
	good := HashToken("x")
	tests := []struct {
		in   string
		want bool
	}{
		{good, true},
		{"", false},
		{good[:62], false},
		{good + "00", false},
		{strings.ToUpper(good), strings.ToUpper(good) == good},
		{strings.Repeat("g", 64), false},
		{strings.Repeat("A", 64), false},
		{strings.Repeat("0", 64), true},
	}
	for _, tc := range tests {
		if got := validTokenHash(tc.in); got != tc.want {
			t.Errorf("validTokenHash(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
