package api

import (
	"errors"
	"testing"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

const testToken = "lmt_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"

func TestJoinRequestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	req, err := NewJoinRequest(testToken, now, "node-a", "10.0.0.7", "10.0.0.7:7946", "10.0.0.7:7947", "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	hash := state.HashToken(testToken)
	if req.TokenPrefix != testToken[:state.TokenPrefixLen] {
		t.Fatalf("prefix %q", req.TokenPrefix)
	}
	if !req.Verify(hash) {
		t.Fatal("a correctly signed request does not verify")
	}
	if req.Verify(state.HashToken(testToken + "x")) {
		t.Fatal("verified against another token")
	}
	tamper := map[string]func(r *JoinRequest){
		"node name":   func(r *JoinRequest) { r.NodeName = "node-b" },
		"addr":        func(r *JoinRequest) { r.Addr = "10.0.0.8" },
		"gossip addr": func(r *JoinRequest) { r.GossipAddr = "10.0.0.8:7946" },
		"raft addr":   func(r *JoinRequest) { r.RaftAddr = "10.0.0.8:7947" },
		"version":     func(r *JoinRequest) { r.Version = "v2" },
		"time":        func(r *JoinRequest) { r.Time++ },
		"nonce":       func(r *JoinRequest) { r.Nonce = "AAAAAAAAAAAAAAAAAAAAAA==" },
		"prefix":      func(r *JoinRequest) { r.TokenPrefix = "lmt_zzzzzzzz" },
		"mac":         func(r *JoinRequest) { r.MAC = r.MAC[:len(r.MAC)-2] + "00" },
		"mac not hex": func(r *JoinRequest) { r.MAC = "zz" },
		"sites":       func(r *JoinRequest) { r.Sites = []state.Site{{Domain: "evil.example.com"}} },
	}
	for name, f := range tamper {
		r := *req
		f(&r)
		if r.Verify(hash) {
			t.Errorf("request with a changed %s still verifies", name)
		}
	}
	if err := req.CheckTime(now.Add(JoinMaxSkew - time.Second)); err != nil {
		t.Errorf("within skew: %v", err)
	}
	if err := req.CheckTime(now.Add(-JoinMaxSkew - time.Second)); err == nil {
		t.Error("a request from the future beyond the skew was accepted")
	}
	if err := req.CheckTime(now.Add(JoinMaxSkew + time.Second)); err == nil {
		t.Error("a stale request was accepted")
	}
	if _, err := NewJoinRequest("lmt_short", now, "n", "", "", "", "", nil); err == nil {
		t.Error("a short token was accepted")
	}
}

func TestJoinSealBoundToRequest(t *testing.T) {
	hash := state.HashToken(testToken)
	req, _ := NewJoinRequest(testToken, time.Now(), "node-a", "10.0.0.7", "", "10.0.0.7:7947", "", nil)
	other, _ := NewJoinRequest(testToken, time.Now(), "node-a", "10.0.0.7", "", "10.0.0.7:7947", "", nil)
	secret := &JoinSecret{GossipKey: "c2VjcmV0LWNsdXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmc=", GossipPeers: []string{"10.0.0.1:7946"}, Profile: "lan"}
	sealed, err := SealJoin(hash, req, secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenJoin(testToken, req, sealed)
	if err != nil || got.GossipKey != secret.GossipKey || got.Profile != "lan" || len(got.GossipPeers) != 1 {
		t.Fatalf("open: %+v %v", got, err)
	}
	if _, err := OpenJoin(testToken, other, sealed); !errors.Is(err, ErrJoinProof) {
		t.Fatalf("answer replayed to another request opened: %v", err)
	}
	if _, err := OpenJoin(testToken+"x", req, sealed); !errors.Is(err, ErrJoinProof) {
		t.Fatalf("answer opened with another token: %v", err)
	}
	if _, err := OpenJoin(testToken, req, "not base64!"); !errors.Is(err, ErrJoinProof) {
		t.Fatalf("garbage opened: %v", err)
	}
	if _, err := SealJoin("nothex", req, secret); err == nil {
		t.Fatal("sealed with a bad hash")
	}
}
