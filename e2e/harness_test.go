package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Set by TestMain.
var (
	// lumosBin is the lumos binary built once for the whole package.
	lumosBin string
	// moduleRoot is the directory holding go.mod.
	moduleRoot string
	// clusterScript is scripts/cluster.sh in the module root.
	clusterScript string
)

// Timeouts of the harness.
const (
	cliTimeout     = 60 * time.Second  // one CLI command
	scriptTimeout  = 120 * time.Second // one cluster.sh command
	logTailLines   = 60                // lines of each node log shown on failure
	controlNodes   = 3                 // cluster.sh always starts three
	maxShieldSlots = 9                 // shield IPs 127.0.0.11-19 (cluster.sh plus extras)
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test skips under -short: do not spend time on a build.
		os.Exit(m.Run())
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := findModuleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	moduleRoot = root
	clusterScript = filepath.Join(root, "scripts", "cluster.sh")
	if _, err := os.Stat(clusterScript); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "lumos-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	lumosBin = filepath.Join(dir, "lumos")

	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the go tool is needed to build lumos: %v\n", err)
		return 1
	}
	start := time.Now()
	build := exec.Command(goTool, "build", "-o", lumosBin, "./cmd/lumos")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/lumos failed: %v\n%s", err, out)
		return 1
	}
	if testing.Verbose() {
		fmt.Printf("e2e: built %s in %s\n", lumosBin, time.Since(start).Round(time.Millisecond))
	}

	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: leaked goroutines: %v\n", err)
			return 1
		}
	}
	return code
}

// findModuleRoot asks the go tool for go.mod, falling back to walking up
// from the working directory.
func findModuleRoot() (string, error) {
	if goTool, err := exec.LookPath("go"); err == nil {
		out, err := exec.Command(goTool, "env", "GOMOD").Output()
		if p := strings.TrimSpace(string(out)); err == nil && p != "" && p != os.DevNull {
			return filepath.Dir(p), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find go.mod above the working directory")
		}
		dir = parent
	}
}

// requireE2E skips a test under -short.
func requireE2E(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped under -short")
	}
	if lumosBin == "" {
		t.Fatal("lumos binary not built (TestMain did not run the build)")
	}
}

// ---- ports ----

var (
	portMu sync.Mutex
	// nextBase starts in a block of 1000 ports picked by the process ID, so
	// two runs of this package at the same time rarely probe the same
	// ports; every block stays below the usual ephemeral range (32768).
	nextBase = 17000 + 1000*(os.Getpid()%15)
)

// allocBasePort returns a BASE_PORT no other test of this run has used and
// whose ports (gossip TCP+UDP, Raft, HTTP; on shield addresses also the
// HAProxy HTTP and TLS ports and /metrics) are free on every loopback
// address a cluster may use. Bases step by 100.
func allocBasePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for nextBase < 32700 {
		base := nextBase
		nextBase += 100
		if portsFree(base) {
			return base
		}
		t.Logf("ports %d-%d are in use; trying the next range", base, base+2)
	}
	t.Fatal("no free port range found")
	return 0
}

func portsFree(base int) bool {
	var ips []string
	for i := 1; i <= controlNodes; i++ {
		ips = append(ips, controlIP(i))
	}
	for i := 1; i <= maxShieldSlots; i++ {
		ips = append(ips, shieldIP(i))
	}
	for i, ip := range ips {
		last := base + 6 // and the built-in DNS (TCP; UDP below)
		if i >= controlNodes {
			last = base + 5 // a shield's HAProxy HTTP, TLS and /metrics
		}
		for p := base; p <= last; p++ {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
			if err != nil {
				return false
			}
			ln.Close()
		}
		for _, p := range []int{base, base + 6} {
			pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(p)))
			if err != nil {
				return false
			}
			pc.Close()
		}
	}
	return true
}

func controlIP(i int) string { return fmt.Sprintf("127.0.0.%d", i) }
func shieldIP(i int) string  { return fmt.Sprintf("127.0.0.%d", 10+i) }

// ---- the cluster ----

// Cluster is a cluster of real lumos processes started by scripts/cluster.sh.
type Cluster struct {
	t        testing.TB
	Dir      string // CLUSTER_DIR
	BasePort int
	Shields  int
	Addr     string // LUMOS_ADDR printed by cluster.sh env
	Token    string // the admin token printed by cluster.sh env
	// Env holds extra KEY=VALUE settings for every cluster.sh command
	// (e.g. HAPROXY_CONFIG).
	Env []string
}

// startCluster starts 3 control nodes and the given number of shields,
// and registers their shutdown (and, on failure, a dump of their logs).
func startCluster(t testing.TB, shields int) *Cluster {
	t.Helper()
	return startClusterEnv(t, shields)
}

// startClusterEnv is startCluster with extra KEY=VALUE settings for
// cluster.sh (kept in Cluster.Env for every later cluster.sh command).
func startClusterEnv(t testing.TB, shields int, env ...string) *Cluster {
	t.Helper()
	requireE2E(t)
	c := &Cluster{t: t, Dir: t.TempDir(), BasePort: allocBasePort(t), Shields: shields, Env: env}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(c.cleanup)
	start := time.Now()
	c.StartAll()
	t.Logf("cluster up in %s: dir %s, base port %d, %d shields", time.Since(start).Round(time.Millisecond), c.Dir, c.BasePort, shields)
	return c
}

// script runs scripts/cluster.sh with this cluster's environment.
func (c *Cluster) script(args ...string) Result {
	c.t.Helper()
	env := cleanEnv(
		"LUMOS_BIN="+lumosBin,
		"CLUSTER_DIR="+c.Dir,
		"BASE_PORT="+strconv.Itoa(c.BasePort),
		"SHIELDS="+strconv.Itoa(c.Shields),
	)
	env = append(env, c.Env...)
	return run(scriptTimeout, env, "", clusterScript, args...)
}

// StartAll runs "cluster.sh start" (first start or restart on the existing
// data dirs) and reads the CLI settings from "cluster.sh env".
func (c *Cluster) StartAll() {
	c.t.Helper()
	if r := c.script("start"); r.Code != 0 {
		c.t.Fatalf("cluster.sh start: %s", r)
	}
	r := c.script("env")
	if r.Code != 0 {
		c.t.Fatalf("cluster.sh env: %s", r)
	}
	for _, line := range strings.Split(r.Stdout, "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "LUMOS_ADDR":
			c.Addr = v
		case "LUMOS_ADMIN_TOKEN":
			c.Token = v
		}
	}
	if c.Addr == "" || c.Token == "" {
		c.t.Fatalf("cluster.sh env printed no LUMOS_ADDR or LUMOS_ADMIN_TOKEN:\n%s", r.Stdout)
	}
}

// StopAll runs "cluster.sh stop" and checks every node is gone.
func (c *Cluster) StopAll() {
	c.t.Helper()
	pids := c.pids()
	if r := c.script("stop"); r.Code != 0 {
		c.t.Fatalf("cluster.sh stop: %s", r)
	}
	for name, pid := range pids {
		if processAlive(pid) {
			c.t.Fatalf("node %s (pid %d) still runs after cluster.sh stop", name, pid)
		}
	}
}

// Restart runs "cluster.sh restart NAME...": the nodes are stopped if they
// run and started again with the command line they were first started with.
func (c *Cluster) Restart(names ...string) {
	c.t.Helper()
	if r := c.script(append([]string{"restart"}, names...)...); r.Code != 0 {
		c.t.Fatalf("cluster.sh restart %s: %s", strings.Join(names, " "), r)
	}
}

// ControlNames are the names of the control nodes.
func (c *Cluster) ControlNames() []string { return []string{"c1", "c2", "c3"} }

// ControlAddr is the API URL of control node "cN".
func (c *Cluster) ControlAddr(name string) string {
	i, err := strconv.Atoi(strings.TrimPrefix(name, "c"))
	if err != nil || !strings.HasPrefix(name, "c") || i < 1 || i > controlNodes {
		c.t.Fatalf("no control node %q", name)
	}
	return fmt.Sprintf("http://%s:%d", controlIP(i), c.BasePort+2)
}

// shieldSlot is the slot (IP 127.0.0.1N) of a shield cluster.sh started
// as "sN".
func (c *Cluster) shieldSlot(name string) int {
	c.t.Helper()
	i, err := strconv.Atoi(strings.TrimPrefix(name, "s"))
	if err != nil || !strings.HasPrefix(name, "s") || i < 1 || i > maxShieldSlots {
		c.t.Fatalf("no shield %q", name)
	}
	return i
}

// ShieldHTTP is the IP:PORT where shield "sN"'s HAProxy serves HTTP.
func (c *Cluster) ShieldHTTP(name string) string {
	c.t.Helper()
	return net.JoinHostPort(shieldIP(c.shieldSlot(name)), strconv.Itoa(c.BasePort+3))
}

// ShieldTLS is the IP:PORT where shield "sN"'s HAProxy serves TLS
// passthrough.
func (c *Cluster) ShieldTLS(name string) string {
	c.t.Helper()
	return net.JoinHostPort(shieldIP(c.shieldSlot(name)), strconv.Itoa(c.BasePort+4))
}

// ShieldMetrics is the URL of shield "sN"'s Prometheus /metrics.
func (c *Cluster) ShieldMetrics(name string) string {
	c.t.Helper()
	return "http://" + net.JoinHostPort(shieldIP(c.shieldSlot(name)), strconv.Itoa(c.BasePort+5)) + "/metrics"
}

// DataDir is a node's data dir.
func (c *Cluster) DataDir(name string) string { return filepath.Join(c.Dir, name) }

// HAProxyPID reads the pid of the HAProxy master a shield runs (or left
// running) from its data dir; 0 if there is none.
func (c *Cluster) HAProxyPID(name string) int {
	b, err := os.ReadFile(filepath.Join(c.DataDir(name), "haproxy", "haproxy.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// PID reads a node's pid file.
func (c *Cluster) PID(name string) int {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, name+".pid"))
	if err != nil {
		c.t.Fatalf("pid of %s: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		c.t.Fatalf("pid file of %s holds %q", name, b)
	}
	return pid
}

// pids reads every pid file there is.
func (c *Cluster) pids() map[string]int {
	out := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(c.Dir, "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			out[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
		}
	}
	return out
}

// Running reports whether a node's process is alive.
func (c *Cluster) Running(name string) bool {
	c.t.Helper()
	return processAlive(c.PID(name))
}

// Kill sends SIGKILL to a node and waits until its process is gone.
func (c *Cluster) Kill(name string) {
	c.t.Helper()
	c.signal(name, syscall.SIGKILL, 5*time.Second)
}

// Term sends SIGTERM to a node and waits until it has stopped.
func (c *Cluster) Term(name string) {
	c.t.Helper()
	c.signal(name, syscall.SIGTERM, 20*time.Second)
}

func (c *Cluster) signal(name string, sig syscall.Signal, wait time.Duration) {
	c.t.Helper()
	pid := c.PID(name)
	if err := syscall.Kill(pid, sig); err != nil {
		c.t.Fatalf("signal %v to %s (pid %d): %v", sig, name, pid, err)
	}
	c.WaitExit(name, wait)
}

// WaitExit waits until a node's process has exited and returns how long
// that took.
func (c *Cluster) WaitExit(name string, timeout time.Duration) time.Duration {
	c.t.Helper()
	pid := c.PID(name)
	return eventually(c.t, timeout, fmt.Sprintf("process of %s (pid %d) exits", name, pid), func() error {
		if processAlive(pid) {
			return errors.New("still running")
		}
		return nil
	})
}

// processAlive reports whether pid runs (a zombie counts as gone).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) STATE ...; comm may hold spaces and parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// ProcEnv returns the environment of a node's process.
func (c *Cluster) ProcEnv(name string) []string {
	c.t.Helper()
	pid := c.PID(name)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		c.t.Fatalf("environment of %s (pid %d): %v", name, pid, err)
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// NodeLog returns a node's whole log.
func (c *Cluster) NodeLog(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, name+".log"))
	return string(b)
}

// cleanup stops every process of the cluster; on failure (or with
// LUMOS_E2E_LOGS=1 in the environment) it first shows the tail of every
// node log.
func (c *Cluster) cleanup() {
	if c.t.Failed() || os.Getenv("LUMOS_E2E_LOGS") == "1" {
		c.dumpLogs()
	}
	pids := c.pids()
	if r := c.script("stop"); r.Code != 0 {
		c.t.Errorf("cluster.sh stop: %s", r)
	}
	for name, pid := range pids {
		if processAlive(pid) {
			c.t.Errorf("node %s (pid %d) survived cluster.sh stop; killing it", name, pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (c *Cluster) dumpLogs() {
	for _, n := range c.ControlNames() {
		if pid, ok := c.pids()[n]; !ok || !processAlive(pid) {
			continue
		}
		st, err := c.Status(n)
		if err != nil {
			c.t.Logf("==== status from %s: %v", n, err)
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "leader %q term %d commit %d applied %d; nodes:", st.Leader, st.Term, st.CommitIndex, st.AppliedIndex)
		for _, nd := range st.Nodes {
			fmt.Fprintf(&b, " %s=%s/%s/%d", nd.Name, nd.GossipState, nd.Suffrage, nd.Applied)
		}
		c.t.Logf("==== status from %s: %s", n, b.String())
	}
	files, _ := filepath.Glob(filepath.Join(c.Dir, "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		skipped := 0
		if len(lines) > logTailLines {
			skipped = len(lines) - logTailLines
			lines = lines[skipped:]
		}
		c.t.Logf("==== %s (last %d lines, %d earlier omitted) ====\n%s", filepath.Base(f), len(lines), skipped, strings.Join(lines, "\n"))
	}
}

// ---- running the CLI ----

// Result is what a finished command left behind.
type Result struct {
	Args     []string
	Stdout   string
	Stderr   string
	Code     int // exit status; -1 if it did not exit by itself
	Duration time.Duration
	TimedOut bool
}

func (r Result) String() string {
	s := fmt.Sprintf("%q exited %d after %s", r.Args, r.Code, r.Duration.Round(time.Millisecond))
	if r.TimedOut {
		s += " (killed at the time limit)"
	}
	return s + fmt.Sprintf("\nstdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
}

// StderrLines returns the non-empty lines of stderr.
func (r Result) StderrLines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(r.Stderr))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// cleanEnv is this process's environment without anything that would
// change how lumos or cluster.sh behave, plus the given settings.
func cleanEnv(set ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "LUMOS_"), k == "CLUSTER_DIR", k == "BASE_PORT", k == "SHIELDS",
			k == "PROFILE", k == "HAPROXY_CONFIG":
			continue
		}
		env = append(env, kv)
	}
	return append(env, set...)
}

// run executes a command and waits for it, killing it at the time limit.
func run(timeout time.Duration, env []string, dir, name string, args ...string) Result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := Result{Args: append([]string{filepath.Base(name)}, args...), Duration: time.Since(start)}
	r.Stdout, r.Stderr = stdout.String(), stderr.String()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.Code, r.TimedOut = -1, true
	case err == nil:
		r.Code = 0
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		r.Stderr += "\n(start failed: " + err.Error() + ")"
	}
	return r
}

// Lumos runs the CLI against LUMOS_ADDR with the admin token.
func (c *Cluster) Lumos(args ...string) Result {
	c.t.Helper()
	return c.LumosEnv(nil, args...)
}

// LumosEnv runs the CLI with environment overrides: a key mapped to ""
// is set empty.
func (c *Cluster) LumosEnv(over map[string]string, args ...string) Result {
	c.t.Helper()
	vars := map[string]string{"LUMOS_ADDR": c.Addr, "LUMOS_ADMIN_TOKEN": c.Token}
	for k, v := range over {
		vars[k] = v
	}
	var set []string
	for k, v := range vars {
		set = append(set, k+"="+v)
	}
	return run(cliTimeout, cleanEnv(set...), c.Dir, lumosBin, args...)
}

// MustLumos runs the CLI and fails the test unless it exits 0; it returns
// stdout.
func (c *Cluster) MustLumos(args ...string) string {
	c.t.Helper()
	r := c.Lumos(args...)
	if r.Code != 0 {
		c.t.Fatalf("lumos %s", r)
	}
	return r.Stdout
}

// JSON runs the CLI with --output json and decodes stdout into v; it
// returns the raw output.
func (c *Cluster) JSON(v any, args ...string) string {
	c.t.Helper()
	out := c.MustLumos(append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("lumos %q: bad JSON: %v\n%s", args, err, out)
	}
	return out
}

// tryJSON is JSON for polls: errors are returned, not fatal.
func (c *Cluster) tryJSON(v any, args ...string) (string, error) {
	c.t.Helper()
	r := c.Lumos(append(args, "--output", "json")...)
	if r.Code != 0 {
		return "", fmt.Errorf("lumos %q exited %d: %s", args, r.Code, strings.TrimSpace(r.Stderr))
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
			return "", fmt.Errorf("lumos %q: bad JSON: %v", args, err)
		}
	}
	return r.Stdout, nil
}

// Status returns "lumos status" as control node name answers it.
func (c *Cluster) Status(name string) (statusJSON, error) {
	var st statusJSON
	_, err := c.tryJSON(&st, "--addr", c.ControlAddr(name), "status")
	return st, err
}

// Leader returns the leader every control node in names agrees on.
func (c *Cluster) Leader(names ...string) string {
	c.t.Helper()
	if len(names) == 0 {
		names = c.ControlNames()
	}
	var leader string
	eventually(c.t, 15*time.Second, "control nodes agree on a leader", func() error {
		leader = ""
		for _, n := range names {
			st, err := c.Status(n)
			if err != nil {
				return err
			}
			if st.Leader == "" {
				return fmt.Errorf("%s knows no leader", n)
			}
			if leader != "" && st.Leader != leader {
				return fmt.Errorf("leader is %s for one node, %s for %s", leader, st.Leader, n)
			}
			leader = st.Leader
		}
		return nil
	})
	return leader
}

// ---- shields started by a test ----

// JoinShield runs "lumos join" for a new shield in the foreground, with
// token in LUMOS_TOKEN (none if empty), on shield slot i (IP 127.0.0.1i)
// and data dir DIR/name. It returns when the process exits, or kills it
// after timeout. Its output is kept in DIR/name.log for the failure dump.
func (c *Cluster) JoinShield(name string, slot int, token string, timeout time.Duration) Result {
	c.t.Helper()
	if slot < 1 || slot > maxShieldSlots {
		c.t.Fatalf("shield slot %d out of range", slot)
	}
	ip := shieldIP(slot)
	args := []string{"join", "--name", name, "--data-dir", filepath.Join(c.Dir, name),
		"--bind", net.JoinHostPort(ip, strconv.Itoa(c.BasePort)), "--advertise", ip,
		"--raft-bind", net.JoinHostPort(ip, strconv.Itoa(c.BasePort+1)), c.ControlAddr("c1")}
	var set []string
	if token != "" {
		set = append(set, "LUMOS_TOKEN="+token)
	}
	r := run(timeout, cleanEnv(set...), c.Dir, lumosBin, args...)
	log := fmt.Sprintf("--- %s\n%s%s", strings.Join(r.Args, " "), r.Stdout, r.Stderr)
	f, err := os.OpenFile(filepath.Join(c.Dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err == nil {
		f.WriteString(log)
		f.Close()
	}
	return r
}

// ---- waiting ----

// eventually polls f every 100 ms until it returns nil or timeout passes,
// then fails the test with f's last error. It returns how long it took.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---- JSON shapes of the CLI output (only the fields the tests use) ----

type serverJSON struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	Status         string   `json:"status"`
	TokenPrefix    string   `json:"token_prefix"`
	NodeName       string   `json:"node_name"`
	IP             string   `json:"ip"`
	GossipState    string   `json:"gossip_state"`
	Domains        []string `json:"domains"`
	AppliedIndex   uint64   `json:"applied_index"`
	Current        bool     `json:"current"`
	Decommissioned bool     `json:"decommissioned"`
}

type domainServerJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Primary bool   `json:"primary"`
	Active  bool   `json:"active"`
	Status  string `json:"status"`
}

type domainJSON struct {
	Name           string             `json:"name"`
	Origins        []string           `json:"origins"`
	Mode           string             `json:"mode"`
	Servers        []domainServerJSON `json:"servers"`
	FailoverStatus string             `json:"failover_status"`
	Version        uint64             `json:"version"`
}

type nodeJSON struct {
	Name        string `json:"name"`
	GossipState string `json:"gossip_state"`
	Suffrage    string `json:"suffrage"`
	Leader      bool   `json:"leader"`
	Control     bool   `json:"control"`
	Shield      bool   `json:"shield"`
	Applied     uint64 `json:"applied_index"`
}

type statusJSON struct {
	Node         string         `json:"node"`
	RaftState    string         `json:"raft_state"`
	Leader       string         `json:"leader"`
	Term         uint64         `json:"term"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	Nodes        []nodeJSON     `json:"nodes"`
	Servers      map[string]int `json:"servers"`
	Domains      int            `json:"domains"`
}

type eventJSON struct {
	ID       uint64 `json:"id"`
	Type     string `json:"type"`
	Domain   string `json:"domain"`
	ServerID string `json:"server_id"`
	Message  string `json:"message"`
}

// withoutFields decodes a JSON array of objects, drops the named fields
// from each object and encodes it again, so volatile fields do not count
// in a comparison.
func withoutFields(t testing.TB, raw string, fields ...string) string {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	for _, m := range list {
		for _, f := range fields {
			delete(m, f)
		}
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
