package api

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lumos-mesh/lumos/state"
)

// A shield joins over plain HTTP without ever sending its token. Both ends
// know the token's SHA-256 hash — the shield computes it, the control plane
// stores nothing else — and use it as a shared key:
//
//   - the request carries the token's prefix (to find the server), a time,
//     a random nonce and an HMAC over all of its fields keyed from the hash,
//     which proves the shield holds the token;
//   - the answer seals the gossip key and peers with AES-256-GCM under a
//     second key derived from the hash, bound to the request's nonce, so
//     only that shield can read it and an impostor control plane cannot
//     forge it.
//
// Someone watching the network learns neither the token nor the cluster key.

// JoinMaxSkew is how far a join request's time may be from the leader's.
const JoinMaxSkew = 5 * time.Minute

const (
	joinMACInfo  = "lumos join request v1"
	joinSealInfo = "lumos join answer v1"
)

// ErrJoinProof is returned when a join request or answer does not verify.
var ErrJoinProof = errors.New("join proof does not verify")

// JoinSecret is the sealed part of a join answer.
type JoinSecret struct {
	GossipKey   string   `json:"gossip_key,omitempty"` // base64; empty when gossip is not encrypted (dev)
	GossipPeers []string `json:"gossip_peers"`
	Profile     string   `json:"profile,omitempty"`
}

// NewJoinRequest builds a signed join request for token.
func NewJoinRequest(token string, now time.Time, node, addr, gossipAddr, raftAddr, version string, sites []state.Site) (*JoinRequest, error) {
	token = strings.TrimSpace(token)
	if len(token) < state.TokenPrefixLen+8 {
		return nil, fmt.Errorf("the token is too short to be a server token")
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	r := &JoinRequest{
		TokenPrefix: token[:state.TokenPrefixLen],
		NodeName:    node,
		Addr:        addr,
		GossipAddr:  gossipAddr,
		RaftAddr:    raftAddr,
		Version:     version,
		Sites:       sites,
		Time:        now.Unix(),
		Nonce:       base64.StdEncoding.EncodeToString(nonce),
	}
	mac, err := r.mac(state.HashToken(token))
	if err != nil {
		return nil, err
	}
	r.MAC = hex.EncodeToString(mac)
	return r, nil
}

func deriveKey(tokenHash, info string) ([]byte, error) {
	secret, err := hex.DecodeString(tokenHash)
	if err != nil || len(secret) != sha256.Size {
		return nil, fmt.Errorf("token hash is not 64 hex characters")
	}
	return hkdf.Key(sha256.New, secret, nil, info, 32)
}

func (r *JoinRequest) canonical() []byte {
	sites, _ := json.Marshal(r.Sites)
	sum := sha256.Sum256(sites)
	return []byte(strings.Join([]string{"v1", r.TokenPrefix, r.NodeName, r.Addr, r.GossipAddr, r.RaftAddr, r.Version, strconv.FormatInt(r.Time, 10), r.Nonce, hex.EncodeToString(sum[:])}, "\n"))
}

func (r *JoinRequest) mac(tokenHash string) ([]byte, error) {
	k, err := deriveKey(tokenHash, joinMACInfo)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, k)
	h.Write(r.canonical())
	return h.Sum(nil), nil
}

// Verify reports whether the request was signed with the token whose hash
// is tokenHash.
func (r *JoinRequest) Verify(tokenHash string) bool {
	got, err := hex.DecodeString(r.MAC)
	if err != nil {
		return false
	}
	want, err := r.mac(tokenHash)
	return err == nil && hmac.Equal(got, want)
}

// CheckTime reports whether the request's time is within JoinMaxSkew of now.
func (r *JoinRequest) CheckTime(now time.Time) error {
	d := now.Sub(time.Unix(r.Time, 0))
	if d < 0 {
		d = -d
	}
	if d > JoinMaxSkew {
		return fmt.Errorf("the join request's clock is %s away from the control plane's: fix the shield's clock", d.Round(time.Second))
	}
	return nil
}

// SealJoin seals s for the shield that sent req, keyed by the server's
// token hash.
func SealJoin(tokenHash string, req *JoinRequest, s *JoinSecret) (string, error) {
	k, err := deriveKey(tokenHash, joinSealInfo)
	if err != nil {
		return "", err
	}
	aead, err := newGCM(k)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := aead.Seal(nonce, nonce, plain, []byte(req.Nonce))
	return base64.StdEncoding.EncodeToString(out), nil
}

// OpenJoin opens a sealed join answer with the token that signed req.
func OpenJoin(token string, req *JoinRequest, sealed string) (*JoinSecret, error) {
	k, err := deriveKey(state.HashToken(token), joinSealInfo)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(k)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < aead.NonceSize() {
		return nil, ErrJoinProof
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(req.Nonce))
	if err != nil {
		return nil, ErrJoinProof
	}
	var s JoinSecret
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, ErrJoinProof
	}
	return &s, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}
