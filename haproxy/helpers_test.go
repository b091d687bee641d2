package haproxy

// Helpers shared by the tests of this package: the HAProxy binary, free
// ports, running HAProxy in a test's directory, bounded waits, golden files.
// Tests need the real HAProxy: when it is missing they fail (make test-deps
// installs it), they never skip.

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// update rewrites golden files instead of comparing with them:
// go test ./haproxy/ -run NAME -update
var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// checkGolden compares got with a golden file, or rewrites it with -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the test got (run with -update to accept it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// haproxyBinary returns the path of the HAProxy binary, from $PATH or
// /usr/sbin (not always in a user's $PATH), and fails the test when there
// is none.
func haproxyBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	const debian = "/usr/sbin/haproxy"
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	t.Fatalf("haproxy not found in $PATH or at %s: these tests run the real HAProxy; install it (make test-deps, or apt-get install haproxy)", debian)
	return ""
}

// freeAddr returns "127.0.0.1:PORT" for a TCP port that was free a moment
// ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	return addr
}

// writeRendered writes a rendering into dir as HAProxy reads it: ConfigFile
// and every map file. It returns the configuration's path.
func writeRendered(t testing.TB, dir string, r *Rendered) string {
	t.Helper()
	for name, data := range r.Maps {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, ConfigFile)
	if err := os.WriteFile(cfg, r.Config, 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// haproxyCheck runs `haproxy -c -f cfg` and fails the test, with HAProxy's
// output, if the configuration is refused.
func haproxyCheck(t testing.TB, cfg string) {
	t.Helper()
	out, err := exec.Command(haproxyBinary(t), "-c", "-f", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", cfg, err, out)
	}
}

// testHAProxy is an HAProxy master (and its workers) a test started.
type testHAProxy struct {
	Cmd    *exec.Cmd
	Dir    string
	output *syncBuffer
	done   chan struct{}
	err    error // from Wait, once done is closed
}

// Output returns what HAProxy wrote on stdout and stderr so far.
func (h *testHAProxy) Output() string { return h.output.String() }

// Exited reports whether the master has exited.
func (h *testHAProxy) Exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// startHAProxy starts `haproxy -W -db -S DIR/master.sock -f cfg` in its own
// process group, in the foreground, with dir as working directory. The
// test's cleanup stops the whole group (master and workers) and waits for
// it; HAProxy's output is logged if the test failed. It does not wait for
// HAProxy to listen: use waitListening.
func startHAProxy(t testing.TB, dir, cfg string) *testHAProxy {
	t.Helper()
	h := &testHAProxy{Dir: dir, output: &syncBuffer{}, done: make(chan struct{})}
	cmd := exec.Command(haproxyBinary(t), "-W", "-db", "-S", filepath.Join(dir, MasterSocket), "-f", cfg)
	cmd.Dir = dir
	cmd.Stdout = h.output
	cmd.Stderr = h.output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Workers inherit the output pipe: do not wait forever for them to
	// close it.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	h.Cmd = cmd
	go func() {
		h.err = cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		h.stop(t)
		if t.Failed() {
			t.Logf("haproxy output:\n%s", h.Output())
		}
	})
	return h
}

// stop ends the process group: SIGTERM (HAProxy's hard stop), then SIGKILL
// if it is still there after 5 s. Safe to call twice.
func (h *testHAProxy) stop(t testing.TB) {
	pgid := h.Cmd.Process.Pid // Setpgid: the group is the master's PID
	if !h.Exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Errorf("haproxy (pid %d) still running 5s after SIGTERM: killing its process group", pgid)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-h.done
		}
	}
	// Workers left behind by a master that died first.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// waitListening waits until every address accepts TCP connections, failing
// the test (with HAProxy's output) after timeout or if HAProxy exits.
func (h *testHAProxy) waitListening(t testing.TB, timeout time.Duration, addrs ...string) {
	t.Helper()
	eventually(t, timeout, func() error {
		if h.Exited() {
			return fmt.Errorf("haproxy exited: %v\n%s", h.err, h.Output())
		}
		for _, a := range addrs {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})
}

// eventually calls f until it returns nil, every 20 ms up to timeout, and
// fails the test with f's last error otherwise.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
