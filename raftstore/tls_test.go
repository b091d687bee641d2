package raftstore

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func tlsPair(t *testing.T, serverKey, clientKey []byte) (server, client raft.StreamLayer) {
	t.Helper()
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewTLSStreamLayer(ln1, nil, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewTLSStreamLayer(ln2, nil, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); c.Close() })
	return s, c
}

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// echoOnce accepts one connection and echoes what it reads until EOF.
func echoOnce(s raft.StreamLayer) <-chan error {
	done := make(chan error, 1)
	go func() {
		conn, err := s.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(conn, conn)
		done <- err
	}()
	return done
}

func TestTLSStreamSameKey(t *testing.T) {
	s, c := tlsPair(t, key(1), key(1))
	done := echoOnce(s)
	conn, err := c.Dial(raft.ServerAddress(s.Addr().String()), 2*time.Second)
	if err != nil {
		t.Fatalf("dial with the cluster key: %v", err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("append entries")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("append entries"))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "append entries" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Fatalf("server side: %v", err)
	}
}

func TestTLSStreamOtherKeyRefused(t *testing.T) {
	s, c := tlsPair(t, key(1), key(2))
	done := echoOnce(s)
	conn, err := c.Dial(raft.ServerAddress(s.Addr().String()), 2*time.Second)
	if err == nil {
		// TLS 1.3 may finish the client side before the server rejects the
		// client certificate; the first read then fails.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte("x"))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a peer with another key exchanged data")
	}
	if err := <-done; err == nil {
		t.Fatal("the server accepted a peer with another key")
	}
}

func TestTLSStreamPlainClientGetsNothing(t *testing.T) {
	s, _ := tlsPair(t, key(1), key(1))
	done := echoOnce(s)
	conn, err := net.DialTimeout("tcp", s.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("plain raft rpc, no tls"))
	b, _ := io.ReadAll(conn)
	conn.Close()
	if bytes.Contains(b, []byte("plain raft rpc")) {
		t.Fatal("plain bytes were echoed: they reached the application")
	}
	if err := <-done; err == nil {
		t.Fatal("plain connection completed a handshake")
	}
}

func TestTLSStreamBadKey(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := NewTLSStreamLayer(ln, nil, []byte("short")); err != ErrTLSKey {
		t.Fatalf("short key: %v", err)
	}
}
