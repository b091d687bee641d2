package haproxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestTraffic runs the real HAProxy on a rendered configuration and sends
// real traffic through it: HTTP routed by Host header to local origins, TLS
// passed through by SNI to a local TLS origin, and the answers for hosts and
// SNIs no site has.
func TestTraffic(t *testing.T) {
	// Origins. Each HTTP origin says who it is and what HAProxy told it.
	httpOrigin := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s xff=%s xfp=%s", name, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
		}))
		t.Cleanup(s.Close)
		return s
	}
	app1, app2, other := httpOrigin("app-1"), httpOrigin("app-2"), httpOrigin("other")
	tlsOrigin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "secure origin")
	}))
	// HAProxy's health checks connect and close without a handshake.
	tlsOrigin.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsOrigin.StartTLS()
	t.Cleanup(tlsOrigin.Close)
	hostPort := func(s *httptest.Server) string { return s.Listener.Addr().String() }

	deadOrigin := freeAddr(t) // nothing listens there

	dir := t.TempDir()
	spec := &Spec{
		Dir:        dir,
		ListenHTTP: freeAddr(t),
		ListenTLS:  freeAddr(t),
		Sites: []Site{
			{Domain: "app.example.com", Mode: ModeHTTP, Origins: []string{hostPort(app1), hostPort(app2)}},
			{Domain: "flaky.example.com", Mode: ModeHTTP, Origins: []string{deadOrigin, hostPort(app1)}},
			{Domain: "other.example.com", Mode: ModeHTTP, Origins: []string{hostPort(other)}},
			{Domain: "secure.example.com", Mode: ModeTCP, Origins: []string{hostPort(tlsOrigin)}},
		},
	}
	r, err := Render(spec)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	cfg := writeRendered(t, dir, r)
	haproxyCheck(t, cfg)
	h := startHAProxy(t, dir, cfg)
	h.waitListening(t, 10*time.Second, spec.ListenHTTP, spec.ListenTLS)

	client := &http.Client{
		Timeout: 5 * time.Second,
		// A new connection per request: every request is balanced anew.
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	t.Cleanup(client.CloseIdleConnections)
	get := func(t *testing.T, host string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+spec.ListenHTTP+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET with Host %q: %v", host, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET with Host %q: %v", host, err)
		}
		return resp.StatusCode, string(body)
	}

	t.Run("http by host", func(t *testing.T) {
		for _, host := range []string{
			"other.example.com",
			"OTHER.Example.COM", // case does not matter
			"other.example.com:" + trafficPort(spec.ListenHTTP), // nor does a port
			"other.example.com:8080",
		} {
			status, body := get(t, host)
			if status != http.StatusOK || !strings.HasPrefix(body, "other ") {
				t.Errorf("Host %q: %d %q, want 200 from the origin of other.example.com", host, status, body)
			}
			if want := "xff=127.0.0.1 xfp=http"; !strings.HasSuffix(body, want) {
				t.Errorf("Host %q: origin saw %q, want %q", host, body, want)
			}
		}
	})

	t.Run("round robin over origins", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 6; i++ {
			status, body := get(t, "App.Example.com")
			if status != http.StatusOK {
				t.Fatalf("request %d: %d %q", i, status, body)
			}
			seen[strings.Fields(body)[0]]++
		}
		if seen["app-1"] != 3 || seen["app-2"] != 3 {
			t.Errorf("6 requests reached %v, want 3 on each of app-1 and app-2", seen)
		}
	})

	t.Run("dead origin", func(t *testing.T) {
		flaky := func() {
			t.Helper()
			for i := 0; i < 4; i++ {
				if status, body := get(t, "flaky.example.com"); status != http.StatusOK || !strings.HasPrefix(body, "app-1 ") {
					t.Fatalf("request %d: %d %q, want 200 from the live origin", i, status, body)
				}
			}
		}
		// Before the checks take it out, a request balanced to the
		// dead origin is retried and redispatched to the live one.
		flaky()
		// The TCP check takes it out: at its first failed check right
		// after start, after fall (3) failed checks once it has been up.
		eventually(t, 15*time.Second, func() error {
			if !strings.Contains(h.Output(), "site_flaky.example.com/o1 is DOWN") {
				return fmt.Errorf("HAProxy has not reported the dead origin down")
			}
			return nil
		})
		if strings.Contains(h.Output(), "site_flaky.example.com/o2 is DOWN") {
			t.Errorf("the live origin was reported down:\n%s", h.Output())
		}
		flaky()
	})

	t.Run("unknown host", func(t *testing.T) {
		for _, host := range []string{"nope.example.com", "example.com", "secure.example.com", "127.0.0.1"} {
			status, body := get(t, host)
			if status != UnknownHostStatus || body != UnknownHostBody {
				t.Errorf("Host %q: %d %q, want %d %q", host, status, body, UnknownHostStatus, UnknownHostBody)
			}
		}
		// HTTP/1.0 without a Host header.
		c, err := net.DialTimeout("tcp", spec.ListenHTTP, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no Host header: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != UnknownHostStatus || string(body) != UnknownHostBody {
			t.Errorf("no Host header: %d %q, want %d %q", resp.StatusCode, body, UnknownHostStatus, UnknownHostBody)
		}
	})

	dialTLS := func(serverName string) (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 5 * time.Second, Deadline: time.Now().Add(5 * time.Second)}
		// The origin's test certificate does not name the site: check
		// below that it is the very certificate the origin holds.
		return tls.DialWithDialer(d, "tcp", spec.ListenTLS, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	}

	t.Run("tls passthrough by sni", func(t *testing.T) {
		for _, sni := range []string{"secure.example.com", "SECURE.Example.com"} {
			c, err := dialTLS(sni)
			if err != nil {
				t.Fatalf("SNI %q: %v", sni, err)
			}
			certs := c.ConnectionState().PeerCertificates
			if len(certs) == 0 || !certs[0].Equal(tlsOrigin.Certificate()) {
				t.Errorf("SNI %q: the certificate presented is not the origin's: not passed through", sni)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: secure.example.com\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("SNI %q: %v", sni, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "secure origin" {
				t.Errorf("SNI %q: %d %q, want 200 %q", sni, resp.StatusCode, body, "secure origin")
			}
		}
	})

	t.Run("unknown sni", func(t *testing.T) {
		// An SNI no site has, an HTTP site's name (HTTP sites are not
		// reachable through the TLS frontend), and no SNI at all.
		for _, sni := range []string{"nope.example.com", "app.example.com", ""} {
			start := time.Now()
			c, err := dialTLS(sni)
			if err == nil {
				c.Close()
				t.Errorf("SNI %q: handshake succeeded, want the connection closed", sni)
				continue
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("SNI %q: closed after %v, want at once", sni, time.Since(start))
			}
		}
		// Not TLS at all.
		c, err := net.DialTimeout("tcp", spec.ListenTLS, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(8 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(make([]byte, 64)); err == nil || n > 0 {
			t.Errorf("plain HTTP on the TLS port: read %d bytes, err %v; want the connection closed", n, err)
		}
	})
}

// trafficPort returns the port of "host:port".
func trafficPort(hostport string) string {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		panic(err)
	}
	return p
}
