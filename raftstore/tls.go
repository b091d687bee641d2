package raftstore

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// The Raft transport carries the whole replicated state, origin addresses
// included, so outside dev it runs over mutually authenticated TLS 1.3.
// Every node of a cluster holds the gossip key; both ends derive the same
// Ed25519 identity from it and accept only a peer that proves it holds that
// identity. A node without the key can neither read nor inject Raft traffic.

const tlsInfo = "lumos raft transport v1"

// ErrTLSKey is returned for an unusable transport key.
var ErrTLSKey = errors.New("raft transport key must be 32 bytes")

// NewTLSStreamLayer wraps ln in a raft.StreamLayer that speaks TLS 1.3 with
// an identity derived from key (the cluster's gossip key). advertise is the
// address peers dial (nil = the listener's address).
func NewTLSStreamLayer(ln net.Listener, advertise net.Addr, key []byte) (raft.StreamLayer, error) {
	if len(key) != 32 {
		return nil, ErrTLSKey
	}
	cert, pub, err := derivedCert(key)
	if err != nil {
		return nil, err
	}
	verify := func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) != 1 {
			return errors.New("raft transport: peer sent no certificate")
		}
		c, err := x509.ParseCertificate(rawCerts[0])
		if err != nil {
			return fmt.Errorf("raft transport: peer certificate: %w", err)
		}
		pk, ok := c.PublicKey.(ed25519.PublicKey)
		if !ok || !bytes.Equal(pk, pub) {
			return errors.New("raft transport: peer is not a member of this cluster (different key)")
		}
		return nil
	}
	base := &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{cert},
		InsecureSkipVerify:    true, // chain checks replaced by the key pinning in VerifyPeerCertificate
		VerifyPeerCertificate: verify,
		ClientAuth:            tls.RequireAnyClientCert,
		ServerName:            "lumos-raft",
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	return &tlsStream{ln: ln, addr: advertise, conf: base}, nil
}

// derivedCert makes a self-signed certificate for the Ed25519 key derived
// from the cluster key.
func derivedCert(key []byte) (tls.Certificate, ed25519.PublicKey, error) {
	seed, err := hkdf.Key(sha256.New, key, nil, tlsInfo, ed25519.SeedSize)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("derive raft transport key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "lumos-raft"},
		DNSNames:     []string{"lumos-raft"},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("raft transport certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, pub, nil
}

type tlsStream struct {
	ln   net.Listener
	addr net.Addr
	conf *tls.Config
}

// Accept returns the next connection wrapped in TLS. The handshake runs on
// the first read, so a slow or hostile peer never holds up the accept loop,
// and one without the key fails it before any byte reaches Raft.
func (s *tlsStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, s.conf), nil
}

func (s *tlsStream) Close() error   { return s.ln.Close() }
func (s *tlsStream) Addr() net.Addr { return s.addr }

// Dial connects to a peer and completes the handshake within timeout.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", string(address), s.conf)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// NewPlainStreamLayer serves Raft over plain TCP on an existing listener
// (lumos dev, where there is no cluster key).
func NewPlainStreamLayer(ln net.Listener, advertise net.Addr) raft.StreamLayer {
	if advertise == nil {
		advertise = ln.Addr()
	}
	return &plainStream{ln: ln, addr: advertise}
}

type plainStream struct {
	ln   net.Listener
	addr net.Addr
}

func (s *plainStream) Accept() (net.Conn, error) { return s.ln.Accept() }
func (s *plainStream) Close() error              { return s.ln.Close() }
func (s *plainStream) Addr() net.Addr            { return s.addr }
func (s *plainStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
}
