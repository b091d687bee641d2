package haproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ApplyResult tells how Apply brought HAProxy to a rendering.
type ApplyResult struct {
	// Reloaded: the configuration changed; HAProxy reloaded it (new
	// worker, old workers finish their connections).
	Reloaded bool
	// RuntimeOnly: only map entries changed; they were changed in the
	// running worker through the runtime API, without a reload.
	RuntimeOnly bool
	// Unchanged: HAProxy already served this rendering.
	Unchanged bool
	// Took is the time Apply spent, waiting for the lock included.
	Took time.Duration
}

// servingState describes what HAProxy serves; it is kept in
// last-good/state.json so that a Manager adopting a running HAProxy knows
// it.
type servingState struct {
	// Hash is the Rendered.Hash HAProxy serves.
	Hash string `json:"hash"`
	// BaseHash is the hash of the Base of the configuration file HAProxy
	// loaded ("" if unknown).
	BaseHash string `json:"base_hash,omitempty"`
	// Backends holds the hash of every backend section of that
	// configuration file, by name. After map-only applies it may hold
	// backends the maps no longer reach.
	Backends map[string]string `json:"backends,omitempty"`
	// Sites are the site backends of the rendering HAProxy serves, sorted.
	Sites []string `json:"sites,omitempty"`
}

// bundle is a configuration with its maps and its state.
type bundle struct {
	config []byte
	maps   map[string][]byte
	state  servingState
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// newBundle checks a rendering and describes it.
func newBundle(r *Rendered) (*bundle, error) {
	if r == nil || len(r.Config) == 0 {
		return nil, fmt.Errorf("%w: empty configuration", ErrValidate)
	}
	for name := range r.Maps {
		if name == "" || name != filepath.Base(name) || name == "." || name == ".." ||
			name == ConfigFile || name == goodDir || name == stagingDir || strings.HasSuffix(name, ".new") {
			return nil, fmt.Errorf("%w: bad map file name %q", ErrValidate, name)
		}
	}
	b := &bundle{config: r.Config, maps: r.Maps}
	b.state.Hash = r.Hash
	if b.state.Hash == "" {
		b.state.Hash = hashRendering(r)
	}
	if r.Base != "" && len(r.Backends) > 0 {
		b.state.BaseHash = sha256Hex([]byte(r.Base))
	}
	b.state.Backends = make(map[string]string, len(r.Backends))
	for name, text := range r.Backends {
		b.state.Backends[name] = sha256Hex([]byte(text))
		// Site backends are those outside Base.
		if !strings.Contains(r.Base, text) {
			b.state.Sites = append(b.state.Sites, name)
		}
	}
	sort.Strings(b.state.Sites)
	return b, nil
}

// hashRendering hashes a rendering that came without a Hash.
func hashRendering(r *Rendered) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %d\n", ConfigFile, len(r.Config))
	h.Write(r.Config)
	names := make([]string, 0, len(r.Maps))
	for n := range r.Maps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s %d\n", n, len(r.Maps[n]))
		h.Write(r.Maps[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Apply makes HAProxy serve r. Applies run one at a time, under an flock on
// DIR/lock so that two processes never interleave.
//
//   - Unchanged: r.Hash is what HAProxy serves.
//   - RuntimeOnly: r.Base is the Base HAProxy loaded and every backend of
//     r exists unchanged in the loaded configuration (which may hold more,
//     unreachable once their map entries are gone): the changed maps are
//     replaced in the running worker through the runtime API, each in one
//     step, and written to Dir for later reloads and restarts. No reload.
//   - Reloaded: otherwise the configuration and maps are validated
//     (`haproxy -c` on a staged copy pointing at the staged maps), renamed
//     into place and reloaded through the master CLI; the reload is
//     confirmed by a new worker in `show proc` (which answers the stats
//     socket) and no failed reload.
//
// Errors: ErrValidate (HAProxy refused r; nothing changed), ErrReload (r
// passed validation but did not load; the last good configuration and maps
// were put back and reloaded, HAProxy serves them), ErrNotRunning, ErrClosed,
// or the context's error while waiting for the lock. A failure sets
// Health.Error; the next successful (or unchanged) apply clears it. Once a
// reload has been sent, Apply waits for its outcome (up to ReloadTimeout,
// twice with a rollback) even if ctx ends.
func (m *Manager) Apply(ctx context.Context, r *Rendered) (ApplyResult, error) {
	start := time.Now()
	if err := m.usable(); err != nil {
		return ApplyResult{}, err
	}
	if err := m.acquire(ctx); err != nil {
		return ApplyResult{}, err
	}
	defer m.release()
	if err := m.usable(); err != nil {
		return ApplyResult{}, err
	}
	unlock, err := lockDir(ctx, m.p.lock)
	if err != nil {
		return ApplyResult{}, err
	}
	defer unlock()
	res, err := m.applyLocked(ctx, r)
	res.Took = time.Since(start)
	return res, err
}

// usable reports why the Manager cannot apply, if it cannot.
func (m *Manager) usable() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.state == stateClosed:
		return ErrClosed
	case m.state != stateRunning && m.state != stateStarting:
		return ErrNotRunning
	case m.down:
		return fmt.Errorf("%w: %s", ErrNotRunning, m.downReason)
	}
	return nil
}

// applyLocked applies r; the caller holds sem and the lock.
func (m *Manager) applyLocked(ctx context.Context, r *Rendered) (ApplyResult, error) {
	start := time.Now()
	b, err := newBundle(r)
	if err != nil {
		m.setApplyError(ErrorTypeValidateFailed, err)
		m.emit(EventValidateFailed, err.Error(), 0)
		return ApplyResult{}, err
	}
	m.mu.Lock()
	serving := m.serving
	servingMaps := m.servingMaps
	p := m.proc
	m.mu.Unlock()
	if p == nil {
		return ApplyResult{}, ErrNotRunning
	}

	if b.state.Hash == serving.Hash {
		m.clearApplyError()
		return ApplyResult{Unchanged: true, Took: time.Since(start)}, nil
	}

	if mapOnly(serving, b.state) {
		// A few milliseconds, not cancelled half-way.
		uctx := context.WithoutCancel(ctx)
		n, err := m.applyMaps(uctx, b, serving, servingMaps)
		if err == nil {
			took := time.Since(start)
			m.log.Info("haproxy maps updated through the runtime API", "maps", n, "config_hash", b.state.Hash, "took", took)
			return ApplyResult{RuntimeOnly: true, Took: took}, nil
		}
		m.log.Warn("runtime map update failed: reloading instead", "err", err)
		// Put the maps HAProxy served back, so that the worker matches
		// the recorded state whatever the reload below does.
		if _, rerr := m.updateMaps(uctx, servingMaps, b.maps); rerr != nil {
			m.log.Error("restore the runtime maps: what haproxy serves is unknown until the next reload", "err", rerr)
			m.mu.Lock()
			m.serving = servingState{}
			m.servingMaps = nil
			m.mu.Unlock()
		}
	}

	res, err := m.applyReload(ctx, p, b)
	res.Took = time.Since(start)
	return res, err
}

// mapOnly reports whether next differs from what HAProxy loaded in map
// entries only.
func mapOnly(serving, next servingState) bool {
	if serving.BaseHash == "" || next.BaseHash != serving.BaseHash || serving.Backends == nil {
		return false
	}
	for name, h := range next.Backends {
		if serving.Backends[name] != h {
			return false
		}
	}
	return true
}

// applyMaps replaces the changed maps in the running worker and writes them
// to Dir and last-good.
func (m *Manager) applyMaps(ctx context.Context, b *bundle, serving servingState, old map[string][]byte) (int, error) {
	n, err := m.updateMaps(ctx, b.maps, old)
	if err != nil {
		return n, err
	}
	for name, data := range b.maps {
		if err := atomicWrite(filepath.Join(m.p.dir, name), data); err != nil {
			return n, err
		}
	}
	syncDir(m.p.dir)
	next := serving
	next.Hash = b.state.Hash
	next.Sites = b.state.Sites
	if err := m.saveGoodFiles(nil, b.maps, next); err != nil {
		return n, err
	}
	m.mu.Lock()
	m.serving = next
	m.servingMaps = b.maps
	m.applyErr, m.applyErrType = "", ""
	m.touchLocked()
	w := m.workerPID
	m.mu.Unlock()
	m.emit(EventRuntimeUpdated, fmt.Sprintf("%d map(s) updated without reload", n), w)
	return n, nil
}

// applyReload validates b, puts it in place and reloads; on a failed
// reload it puts the last good configuration back.
func (m *Manager) applyReload(ctx context.Context, p *masterProc, b *bundle) (ApplyResult, error) {
	tv := time.Now()
	if err := m.validate(ctx, b); err != nil {
		if ctx.Err() != nil {
			return ApplyResult{}, ctx.Err()
		}
		m.setApplyError(ErrorTypeValidateFailed, err)
		m.emit(EventValidateFailed, err.Error(), 0)
		m.log.Error("haproxy configuration refused", "config_hash", b.state.Hash, "err", err)
		return ApplyResult{}, err
	}
	// A listener that cannot bind fails the reload, and HAProxy 2.6 then
	// pauses the listeners of the serving worker for 1 to 2 s while it
	// retries: check the new addresses first.
	if err := m.checkBinds(b.config); err != nil {
		ferr := fmt.Errorf("%w: %v (nothing changed)", ErrReload, err)
		m.setApplyError(ErrorTypeReloadFailed, ferr)
		m.emit(EventReloadFailed, err.Error(), 0)
		m.log.Error("haproxy configuration cannot bind", "config_hash", b.state.Hash, "err", err)
		return ApplyResult{}, ferr
	}
	// The master must answer before anything changes on disk.
	if _, err := m.showProc(ctx, 2*time.Second); err != nil {
		if ctx.Err() != nil {
			return ApplyResult{}, ctx.Err()
		}
		return ApplyResult{}, fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	m.rotateLog()
	// From here on the outcome must be known: no cancellation.
	rctx := context.WithoutCancel(ctx)
	if err := m.writeLive(b); err != nil {
		m.restoreGood()
		return ApplyResult{}, fmt.Errorf("%w: write configuration: %v", ErrReload, err)
	}
	validated := time.Since(tv)
	t0 := time.Now()
	wpid, err := m.reload(rctx, p, b.config)
	if err == nil {
		if serr := m.saveGood(b); serr != nil {
			m.log.Error("keep the last good haproxy configuration", "err", serr)
		}
		m.mu.Lock()
		m.serving = b.state
		m.servingMaps = b.maps
		m.workerPID = wpid
		m.applyErr, m.applyErrType = "", ""
		m.touchLocked()
		m.mu.Unlock()
		m.log.Info("haproxy reloaded", "worker_pid", wpid, "config_hash", b.state.Hash, "validate", validated, "reload", time.Since(t0))
		m.emit(EventReloaded, "config "+shortHash(b.state.Hash), wpid)
		return ApplyResult{Reloaded: true}, nil
	}

	reason := err.Error()
	m.log.Error("haproxy reload failed: rolling back", "config_hash", b.state.Hash, "err", err)
	if rerr := m.rollback(rctx, p); rerr != nil {
		reason += "; rollback: " + rerr.Error()
		m.log.Error("haproxy rollback", "err", rerr)
	}
	ferr := fmt.Errorf("%w: %s", ErrReload, reason)
	m.setApplyError(ErrorTypeReloadFailed, ferr)
	m.emit(EventReloadFailed, reason, 0)
	return ApplyResult{}, ferr
}

// rollback puts the last good configuration back and reloads it, so that
// a worker with the last good configuration serves (after a failed reload
// HAProxy 2.6's master still runs the previous workers, but waits in a
// degraded mode until the next successful reload).
func (m *Manager) rollback(ctx context.Context, p *masterProc) error {
	good := m.restoreGood()
	if good == nil {
		return errors.New("no last good configuration to restore")
	}
	wpid, err := m.reload(ctx, p, good.config)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.workerPID = wpid
	m.mu.Unlock()
	return nil
}

// restoreGood writes the last good configuration and maps into Dir and
// returns them (nil if there are none).
func (m *Manager) restoreGood() *bundle {
	good, err := m.loadGood()
	if err != nil || good == nil {
		m.log.Error("no last good haproxy configuration to restore", "err", err)
		return nil
	}
	if err := m.writeLive(good); err != nil {
		m.log.Error("restore the last good haproxy configuration", "err", err)
	}
	return good
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// validate runs `haproxy -c` on b. The configuration names the maps by
// their final paths in Dir; the maps being validated are written to a
// staging directory and a copy of the configuration pointing at them is
// checked, so the maps HAProxy serves are not touched.
func (m *Manager) validate(ctx context.Context, b *bundle) error {
	if err := os.RemoveAll(m.p.staging); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	if err := os.Mkdir(m.p.staging, 0o700); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	defer os.RemoveAll(m.p.staging)
	cfg := b.config
	for name, data := range b.maps {
		staged := filepath.Join(m.p.staging, name)
		if err := os.WriteFile(staged, data, 0o600); err != nil {
			return fmt.Errorf("staging: %w", err)
		}
		cfg = bytes.ReplaceAll(cfg, []byte(filepath.Join(m.p.dir, name)), []byte(staged))
	}
	stagedCfg := filepath.Join(m.p.staging, ConfigFile)
	if err := os.WriteFile(stagedCfg, cfg, 0o600); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, m.cfg.Binary, "-c", "-f", stagedCfg)
	cmd.Dir = m.p.dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	out = bytes.ReplaceAll(out, []byte(m.p.staging+"/"), []byte(m.p.dir+"/"))
	msg := haproxyAlerts(out, 3)
	if msg == "" {
		msg = firstLine(string(out))
	}
	if msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("%w: %s", ErrValidate, msg)
}

// writeLive puts b's maps, then its configuration, into Dir, each by
// rename.
func (m *Manager) writeLive(b *bundle) error {
	names := make([]string, 0, len(b.maps))
	for n := range b.maps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := atomicWrite(filepath.Join(m.p.dir, n), b.maps[n]); err != nil {
			return err
		}
	}
	if err := atomicWrite(m.p.config, b.config); err != nil {
		return err
	}
	syncDir(m.p.dir)
	return nil
}

// saveGood records b as the last good configuration.
func (m *Manager) saveGood(b *bundle) error {
	return m.saveGoodFiles(b.config, b.maps, b.state)
}

// saveGoodFiles writes last-good: the configuration (unless nil: kept),
// the maps, then state.json, which names what the files hold.
func (m *Manager) saveGoodFiles(config []byte, maps map[string][]byte, state servingState) error {
	if err := os.MkdirAll(m.p.good, 0o700); err != nil {
		return err
	}
	for n, data := range maps {
		if err := atomicWrite(filepath.Join(m.p.good, n), data); err != nil {
			return err
		}
	}
	if config != nil {
		if err := atomicWrite(filepath.Join(m.p.good, ConfigFile), config); err != nil {
			return err
		}
	}
	js, err := json.Marshal(state)
	if err != nil {
		return err
	}
	if err := atomicWrite(filepath.Join(m.p.good, stateFile), js); err != nil {
		return err
	}
	syncDir(m.p.good)
	return nil
}

// loadGood reads the last good configuration, nil if there is none.
func (m *Manager) loadGood() (*bundle, error) {
	config, err := os.ReadFile(filepath.Join(m.p.good, ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	state, maps, err := m.loadGoodState()
	if err != nil {
		// The files are good even if their description is lost.
		state = servingState{}
	}
	return &bundle{config: config, maps: maps, state: state}, nil
}

// loadGoodState reads last-good/state.json and the last good maps.
func (m *Manager) loadGoodState() (servingState, map[string][]byte, error) {
	maps := make(map[string][]byte)
	entries, err := os.ReadDir(m.p.good)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return servingState{}, maps, err
	}
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && n != ConfigFile && n != stateFile && !strings.HasSuffix(n, ".new") {
			data, err := os.ReadFile(filepath.Join(m.p.good, n))
			if err != nil {
				return servingState{}, maps, err
			}
			maps[n] = data
		}
	}
	var state servingState
	js, err := os.ReadFile(filepath.Join(m.p.good, stateFile))
	if err != nil {
		return servingState{}, maps, err
	}
	if err := json.Unmarshal(js, &state); err != nil {
		return servingState{}, maps, fmt.Errorf("%s: %w", stateFile, err)
	}
	return state, maps, nil
}

// atomicWrite writes data to path through a temporary file in the same
// directory, synced, then renamed over path.
func atomicWrite(path string, data []byte) error {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// checkBinds tries to bind, as HAProxy does (SO_REUSEADDR, SO_REUSEPORT,
// no listen), every TCP address config binds that the configuration in
// place does not. An address another process holds, or that is not
// assignable here, is an error. A refusal for want of privilege is not:
// HAProxy may have the privilege lumos lacks.
func (m *Manager) checkBinds(config []byte) error {
	old := make(map[netip.AddrPort]bool)
	if cur, err := os.ReadFile(m.p.config); err == nil {
		for _, ap := range bindAddrs(cur) {
			old[ap] = true
		}
	}
	for _, ap := range bindAddrs(config) {
		if old[ap] {
			continue
		}
		if err := probeBind(ap); err != nil && !errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("listener %s: bind: %w", ap, err)
		}
	}
	return nil
}

// bindAddrs returns the TCP addresses of a configuration's bind lines
// (IP:PORT, ":PORT" and "*:PORT" as 0.0.0.0, ipv4@/ipv6@ forms, lists);
// UNIX sockets, port ranges and names are left out.
func bindAddrs(config []byte) []netip.AddrPort {
	var out []netip.AddrPort
	for _, line := range strings.Split(string(config), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "bind" {
			continue
		}
		for _, a := range strings.Split(f[1], ",") {
			for _, p := range []string{"ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"} {
				a = strings.TrimPrefix(a, p)
			}
			if strings.Contains(a, "@") || strings.HasPrefix(a, "/") {
				continue
			}
			i := strings.LastIndexByte(a, ':')
			if i < 0 {
				continue
			}
			host, port := strings.Trim(a[:i], "[]"), a[i+1:]
			if host == "" || host == "*" {
				host = "0.0.0.0"
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				continue
			}
			n, err := strconv.ParseUint(port, 10, 16)
			if err != nil || n == 0 {
				continue
			}
			out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(n)))
		}
	}
	return out
}

// probeBind binds a TCP socket to ap the way HAProxy does, without
// listening (so it never takes a connection), and closes it.
func probeBind(ap netip.AddrPort) error {
	family := syscall.AF_INET
	var sa syscall.Sockaddr = &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	if ap.Addr().Is6() {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return err
	}
	return syscall.Bind(fd, sa)
}
