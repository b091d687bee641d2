package haproxy

// The Manager runs one HAProxy master for a shield and keeps it running.
//
// Layout of Config.Dir (mode 0700):
//
//	haproxy.cfg, hosts.map, sni.map  what HAProxy serves (or is loading);
//	                                 sites served from spare backends
//	                                 have their own sections here
//	last-good/                       the configuration and maps last
//	                                 confirmed serving, and state.json
//	                                 (their hash, base, backends and the
//	                                 spare backends in use); NAME.next
//	                                 while a reload or a runtime change
//	                                 is being confirmed
//	staging/                         a rendering being validated
//	master.sock                      the master CLI (-S)
//	stats.sock, haproxy.pid          as the configuration declares them
//	haproxy.log                      HAProxy's stdout and stderr
//	lock                             flock: one applier at a time
//
// HAProxy runs in master-worker mode in the foreground
// (`haproxy -W -S DIR/master.sock -f DIR/haproxy.cfg`), in a process group
// of its own so that it survives the Manager's process when KeepRunning is
// set; a later Manager on the same Dir adopts it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors of the Manager. Every error it returns wraps one of these (or the
// context's error).
var (
	// ErrValidate: HAProxy refused the configuration (`haproxy -c`). The
	// message carries HAProxy's alerts. Nothing was changed.
	ErrValidate = errors.New("haproxy rejected the configuration")
	// ErrReload: the configuration passed `haproxy -c` but HAProxy did not
	// load it (a listener could not bind, the new worker did not come up
	// in time, ...). The last good configuration was put back and serves.
	ErrReload = errors.New("haproxy reload failed")
	// ErrStart: HAProxy could not be started with the initial
	// configuration nor with the last good one.
	ErrStart = errors.New("haproxy did not start")
	// ErrNotRunning: HAProxy is not running under this Manager: not
	// started yet, stopped, or down and not restarted yet.
	ErrNotRunning = errors.New("haproxy is not running")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("haproxy manager closed")
)

// Event types, in Event.Type.
const (
	EventStarted        = "started"         // HAProxy started by Start (PID: master)
	EventAdopted        = "adopted"         // Start found HAProxy running for Dir and took it over (PID: master)
	EventExited         = "exited"          // HAProxy's master exited, unexpectedly or by Stop (PID: master)
	EventRestarted      = "restarted"       // the supervisor started HAProxy again (PID: master)
	EventReloaded       = "reloaded"        // a configuration was reloaded and confirmed (PID: new worker)
	EventReloadFailed   = "reload_failed"   // a reload failed and was rolled back
	EventValidateFailed = "validate_failed" // haproxy -c refused a configuration
	EventRuntimeUpdated = "runtime_updated" // map entries changed through the runtime API (PID: worker)
)

// Health.ErrorType values. They are the server_error types the control
// plane reports.
const (
	ErrorTypeReloadFailed   = "haproxy_reload_failed"
	ErrorTypeValidateFailed = "haproxy_validate_failed"
	ErrorTypeDown           = "haproxy_down"
)

// Files the Manager keeps in Dir besides those of types.go.
const (
	lockFile    = "lock"
	logFile     = "haproxy.log"
	goodDir     = "last-good"
	stagingDir  = "staging"
	stateFile   = "state.json"
	logRotateAt = 8 << 20 // HAProxy's log is moved to haproxy.log.1 past this size
)

// Config configures a Manager. Zero values take the defaults.
type Config struct {
	// Dir is Spec.Dir: configuration, maps, sockets, pid file, lock and
	// the last good copy live here. Created with mode 0700. Required,
	// absolute.
	Dir string
	// Binary is the HAProxy executable. Default: "haproxy" from $PATH,
	// else /usr/sbin/haproxy.
	Binary string
	// KeepRunning makes Close leave HAProxy serving (production: a lumos
	// restart must not drop traffic; the next Manager adopts it). When
	// false, Close stops HAProxy (development, tests).
	KeepRunning bool
	// ReloadTimeout bounds the wait for a start or a reload to be
	// confirmed. Default 10 s.
	ReloadTimeout time.Duration
	// CheckInterval is the supervisor's poll interval. Default 1 s.
	CheckInterval time.Duration
	// StopTimeout bounds the graceful soft stop of Stop before HAProxy is
	// terminated. Default 30 s (the rendered hard-stop-after).
	StopTimeout time.Duration
	// Logger receives the Manager's logs. Default: discarded.
	Logger *slog.Logger
	// OnEvent, if set, receives every Event in order, from one goroutine
	// of its own: a slow OnEvent delays later events, never the Manager.
	OnEvent func(Event)
}

// Event is something that happened to HAProxy.
type Event struct {
	Type   string // one of the Event* constants
	Time   time.Time
	Detail string
	PID    int
}

// Health is the state of HAProxy under a Manager.
type Health struct {
	// Running: the master process is alive (as of the last check).
	Running bool
	// OK: running and the last apply succeeded.
	OK bool
	// Error is "ERRORTYPE: reason" when the last apply failed (cleared by
	// a later success) or HAProxy is down; "" otherwise.
	Error string
	// ErrorType is one of the ErrorType* constants, or "".
	ErrorType string
	// ConfigHash is the Rendered.Hash of the configuration HAProxy serves
	// ("" if unknown).
	ConfigHash string
	MasterPID  int
	WorkerPID  int
	// Restarts counts the supervisor's restarts of a dead HAProxy.
	Restarts int
	// Since is when Running, OK or ErrorType last changed.
	Since time.Time
}

type mgrPaths struct {
	dir, config, masterSock, statsSock, pidFile, lock, log, good, staging string
}

// Manager states.
const (
	stateNew = iota
	stateStarting
	stateRunning
	stateStopped
	stateClosed
)

// Manager owns one HAProxy master process for a shield: it starts or adopts
// it, applies configurations, supervises it and reads its statistics. Its
// methods are safe for concurrent use; applies, restarts and stops run one
// at a time.
type Manager struct {
	cfg Config
	log *slog.Logger
	p   mgrPaths

	// sem serializes Start, Apply, Stop and the supervisor's restarts;
	// a channel so that waiting for it honours a context.
	sem chan struct{}

	mu           sync.Mutex
	state        int
	proc         *masterProc
	running      bool
	down         bool
	downReason   string
	serving      servingState
	servingMaps  map[string][]byte // as the worker holds them (physicalMaps)
	mapsExact    bool              // the worker holds exactly servingMaps
	workerPID    int
	restarts     int
	applyErr     string
	applyErrType string
	since        time.Time
	healthKey    string

	cancel context.CancelFunc
	wg     sync.WaitGroup
	events *eventQueue

	statsMu sync.Mutex
	samples map[string]statSample
}

// NewManager checks cfg and returns a Manager. It starts nothing.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("haproxy manager: Config.Dir is empty")
	}
	if !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("haproxy manager: Config.Dir %q is not absolute", cfg.Dir)
	}
	cfg.Dir = filepath.Clean(cfg.Dir)
	if len(cfg.Dir) > MaxDirLen {
		return nil, fmt.Errorf("haproxy manager: Config.Dir %q is longer than %d bytes: its sockets would not fit a Unix socket path", cfg.Dir, MaxDirLen)
	}
	bin, err := findHAProxy(cfg.Binary)
	if err != nil {
		return nil, err
	}
	cfg.Binary = bin
	if cfg.ReloadTimeout <= 0 {
		cfg.ReloadTimeout = 10 * time.Second
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := cfg.Dir
	m := &Manager{
		cfg: cfg,
		log: cfg.Logger,
		p: mgrPaths{
			dir:        d,
			config:     filepath.Join(d, ConfigFile),
			masterSock: filepath.Join(d, MasterSocket),
			statsSock:  filepath.Join(d, StatsSocket),
			pidFile:    filepath.Join(d, PIDFile),
			lock:       filepath.Join(d, lockFile),
			log:        filepath.Join(d, logFile),
			good:       filepath.Join(d, goodDir),
			staging:    filepath.Join(d, stagingDir),
		},
		sem:     make(chan struct{}, 1),
		samples: make(map[string]statSample),
	}
	return m, nil
}

// findHAProxy resolves the HAProxy binary.
func findHAProxy(bin string) (string, error) {
	if bin == "" {
		if p, err := exec.LookPath("haproxy"); err == nil {
			return p, nil
		}
		const debian = "/usr/sbin/haproxy"
		if _, err := os.Stat(debian); err == nil {
			return debian, nil
		}
		return "", errors.New("haproxy manager: haproxy not found in $PATH nor at /usr/sbin/haproxy")
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("haproxy manager: binary %q: %w", bin, err)
	}
	return p, nil
}

// Start brings HAProxy up for Dir and starts supervising it.
//
// If a master started for Dir is already running (its master socket
// answers), Start adopts it — lumos restarted, traffic never stopped — and
// then applies initial if its Hash differs from what that master serves.
// Otherwise Start validates initial, writes it into Dir and starts HAProxy,
// waiting until the master answers and a worker serves. If initial fails
// validation or does not start, HAProxy is started with the last good
// configuration kept in Dir, if any.
//
// Start returns nil whenever HAProxy serves at its end, even if it serves
// the last good configuration instead of initial or applying initial failed
// after an adoption: the failure is then in Health (ErrorType) and in a
// validate_failed or reload_failed event. Start returns an error (wrapping
// ErrStart, and ErrValidate if initial was refused) when nothing serves; the
// Manager is then as before Start, which may be called again. initial may be
// nil: adopt, else start the last good configuration.
func (m *Manager) Start(ctx context.Context, initial *Rendered) error {
	m.mu.Lock()
	switch m.state {
	case stateClosed:
		m.mu.Unlock()
		return ErrClosed
	case stateNew:
	default:
		m.mu.Unlock()
		return errors.New("haproxy manager: already started")
	}
	m.state = stateStarting
	m.events = newEventQueue(m.cfg.OnEvent)
	m.mu.Unlock()

	err := m.start(ctx, initial)

	m.mu.Lock()
	if err == nil && m.state == stateClosed {
		// Closed while starting.
		err = ErrClosed
		m.mu.Unlock()
		if !m.cfg.KeepRunning {
			if aerr := m.acquire(ctx); aerr == nil {
				m.halt(ctx)
				m.release()
			}
		}
		m.events.close(ctx)
		return err
	}
	if err != nil {
		if m.state == stateStarting {
			m.state = stateNew
		}
		ev := m.events
		m.mu.Unlock()
		ev.close(ctx)
		return err
	}
	m.state = stateRunning
	sctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Add(1)
	m.mu.Unlock()
	go m.supervise(sctx)
	return nil
}

func (m *Manager) start(ctx context.Context, initial *Rendered) error {
	if err := m.acquire(ctx); err != nil {
		return err
	}
	defer m.release()
	for _, d := range []string{m.p.dir, m.p.good} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("haproxy manager: %w", err)
		}
	}
	unlock, err := lockDir(ctx, m.p.lock)
	if err != nil {
		return err
	}
	defer unlock()
	m.rotateLog()

	adopted, stale, err := m.adopt(ctx)
	if err != nil {
		return err
	}
	if adopted {
		if initial != nil {
			if _, err := m.applyLocked(ctx, initial); err != nil {
				// Recorded in Health; HAProxy serves what it served.
				m.log.Error("apply the initial configuration to the adopted haproxy", "err", err)
			}
		}
		return nil
	}
	if err := m.startFresh(ctx, initial); err != nil {
		return err
	}
	if stale != nil && m.isOurMaster(stale.pid) {
		// Its workers finish their connections; the new master serves.
		_ = syscall.Kill(stale.pid, syscall.SIGUSR1)
	}
	return nil
}

// adopt takes over a master already running for Dir. It reports false if
// there is none, with the master of Dir that does not answer, if any, for
// the caller to stop once another one serves.
func (m *Manager) adopt(ctx context.Context) (bool, *masterProc, error) {
	st, err := m.showProc(ctx, 2*time.Second)
	if err != nil {
		pid := readPIDFile(m.p.pidFile)
		if pid <= 0 || !m.isOurMaster(pid) {
			return false, nil, nil
		}
		// A master of Dir is alive but does not answer yet: it may be
		// re-executing. Give it the time of a reload.
		p := &masterProc{pid: pid, pgid: masterGroup(pid)}
		deadline := time.Now().Add(m.cfg.ReloadTimeout)
		for {
			st, err = m.showProc(ctx, time.Second)
			if err == nil {
				break
			}
			if dead, _ := p.exited(); dead {
				return false, nil, nil
			}
			if time.Now().After(deadline) {
				// Replace it: the new master binds beside it
				// (SO_REUSEPORT), then it is soft-stopped.
				m.log.Warn("haproxy master of this directory does not answer on its master socket: starting another one and stopping it", "pid", pid, "err", err)
				return false, p, nil
			}
			if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
				return false, nil, err
			}
		}
	}
	p := &masterProc{pid: st.MasterPID, pgid: masterGroup(st.MasterPID)}
	state, maps, err := m.loadGoodState()
	if err == nil {
		err = m.liveMatchesGood(maps)
	}
	if err != nil {
		// Unknown: the next apply reloads whatever it brings.
		m.log.Warn("no reliable record of the configuration the running haproxy serves: the next apply reloads it", "err", err)
		state = servingState{}
	}
	m.mu.Lock()
	m.proc = p
	m.running = true
	m.down = false
	m.serving = state
	// The worker may serve sites from spare backends: its maps name them.
	// What it holds is known from the files only: the first map change
	// replaces whole maps.
	m.servingMaps = physicalMaps(maps, state.Spares)
	m.mapsExact = false
	m.workerPID = st.current()
	m.touchLocked()
	m.mu.Unlock()
	m.log.Info("adopted running haproxy", "master_pid", p.pid, "worker_pid", st.current(), "config_hash", state.Hash)
	m.emit(EventAdopted, "master already running for "+m.p.dir, p.pid)
	return true, nil, nil
}

// liveMatchesGood checks that the files in Dir are the last good ones: they
// are not after an apply a previous Manager did not finish, and HAProxy may
// then serve either.
func (m *Manager) liveMatchesGood(goodMaps map[string][]byte) error {
	live, err := os.ReadFile(m.p.config)
	if err != nil {
		return err
	}
	good, err := os.ReadFile(filepath.Join(m.p.good, ConfigFile))
	if err != nil {
		return err
	}
	if !bytes.Equal(live, good) {
		return errors.New("the configuration in place is not the last good one (an apply was interrupted)")
	}
	for name, data := range goodMaps {
		live, err := os.ReadFile(filepath.Join(m.p.dir, name))
		if err != nil || !bytes.Equal(live, data) {
			return fmt.Errorf("map %s in place is not the last good one (an apply was interrupted)", name)
		}
	}
	return nil
}

// startFresh starts HAProxy with initial (validated first), else with the
// last good configuration.
func (m *Manager) startFresh(ctx context.Context, initial *Rendered) error {
	type candidate struct {
		b       *bundle
		initial bool
	}
	var cands []candidate
	var errs []error
	var ib *bundle
	if initial != nil {
		b, err := newBundle(initial)
		if err == nil {
			err = m.validate(ctx, b, servingState{})
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			m.setApplyError(ErrorTypeValidateFailed, err)
			m.emit(EventValidateFailed, err.Error(), 0)
			m.log.Error("initial haproxy configuration refused", "err", err)
			errs = append(errs, err)
		} else {
			ib = b
			cands = append(cands, candidate{b, true})
		}
	}
	good, err := m.loadGood()
	if err != nil {
		m.log.Warn("last good haproxy configuration unreadable", "err", err)
	}
	if good != nil && (ib == nil || good.state.Hash != ib.state.Hash) {
		cands = append(cands, candidate{good, false})
	}
	if len(cands) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("no configuration: no initial rendering and no last good configuration in %s", m.p.good))
	}
	for _, c := range cands {
		if err := m.writeLive(c.b); err != nil {
			return err
		}
		p, wpid, err := m.launch(ctx, c.b.config)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			m.log.Error("haproxy did not start", "initial", c.initial, "err", err)
			errs = append(errs, err)
			if c.initial {
				m.setApplyError(ErrorTypeReloadFailed, err)
				m.emit(EventReloadFailed, err.Error(), 0)
			}
			continue
		}
		if c.initial {
			if err := m.saveGood(c.b); err != nil {
				m.log.Error("keep the last good haproxy configuration", "err", err)
			}
		}
		m.mu.Lock()
		m.proc = p
		m.running = true
		m.down = false
		m.serving = c.b.state.loaded()
		m.servingMaps = c.b.maps
		m.mapsExact = true
		m.workerPID = wpid
		if c.initial {
			m.applyErr, m.applyErrType = "", ""
		}
		m.touchLocked()
		m.mu.Unlock()
		detail := "initial configuration"
		if !c.initial {
			detail = "last good configuration"
		}
		m.log.Info("haproxy started", "master_pid", p.pid, "worker_pid", wpid, "config", detail, "config_hash", c.b.state.Hash)
		m.emit(EventStarted, detail, p.pid)
		return nil
	}
	return fmt.Errorf("%w: %w", ErrStart, errors.Join(errs...))
}

// launch starts a master on the files in Dir and waits for its worker.
func (m *Manager) launch(ctx context.Context, config []byte) (*masterProc, int, error) {
	logf, err := os.OpenFile(m.p.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("haproxy log: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, 0, err
	}
	defer devnull.Close()
	off := m.logSize()
	args := []string{m.cfg.Binary, "-W", "-S", m.p.masterSock + ",mode,600", "-f", m.p.config}
	if !m.declaresPIDFile(config) {
		args = append(args, "-p", m.p.pidFile)
	}
	pid, err := syscall.ForkExec(m.cfg.Binary, args, &syscall.ProcAttr{
		Dir:   m.p.dir,
		Env:   os.Environ(),
		Files: []uintptr{devnull.Fd(), logf.Fd(), logf.Fd()},
		// A group of its own: signals to lumos's group (a terminal's
		// ^C, a service manager stopping lumos's group) do not reach it.
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return nil, 0, fmt.Errorf("exec %s: %w", m.cfg.Binary, err)
	}
	p := &masterProc{pid: pid, pgid: pid}
	wpid, err := m.waitReady(ctx, p, procStatus{}, 0, off, m.hasStatsSocket(config))
	if err != nil {
		p.signal(syscall.SIGKILL)
		p.waitExit(context.Background(), 5*time.Second)
		return nil, 0, err
	}
	return p, wpid, nil
}

// declaresPIDFile reports whether the configuration sets the pid file
// Dir/haproxy.pid itself (then -p would only make HAProxy complain).
func (m *Manager) declaresPIDFile(config []byte) bool {
	for _, line := range strings.Split(string(config), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "pidfile" {
			p := f[1]
			if !filepath.IsAbs(p) {
				p = filepath.Join(m.p.dir, p)
			}
			return filepath.Clean(p) == m.p.pidFile
		}
	}
	return false
}

// isOurMaster reports whether pid is an HAProxy master serving Dir's master
// socket.
func (m *Manager) isOurMaster(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "haproxy") {
		return false
	}
	for _, a := range args {
		if a == m.p.masterSock || strings.HasPrefix(a, m.p.masterSock+",") {
			return true
		}
	}
	return false
}

// Health returns the state of HAProxy.
func (m *Manager) Health() Health {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := Health{
		Running:    m.running,
		ConfigHash: m.serving.Hash,
		WorkerPID:  m.workerPID,
		Restarts:   m.restarts,
		Since:      m.since,
	}
	if m.proc != nil {
		h.MasterPID = m.proc.pid
	}
	h.ErrorType, h.Error = m.errorLocked()
	h.OK = h.Running && h.ErrorType == ""
	return h
}

func (m *Manager) errorLocked() (typ, msg string) {
	switch {
	case m.down:
		return ErrorTypeDown, ErrorTypeDown + ": " + m.downReason
	case m.applyErrType != "":
		return m.applyErrType, m.applyErrType + ": " + m.applyErr
	}
	return "", ""
}

// touchLocked moves Since when Running, OK or the error type changed.
func (m *Manager) touchLocked() {
	typ, _ := m.errorLocked()
	key := fmt.Sprintf("%t/%s", m.running, typ)
	if key != m.healthKey {
		m.healthKey = key
		m.since = time.Now()
	}
}

func (m *Manager) setApplyError(typ string, err error) {
	m.mu.Lock()
	m.applyErrType = typ
	m.applyErr = strings.TrimPrefix(err.Error(), ErrValidate.Error()+": ")
	m.applyErr = strings.TrimPrefix(m.applyErr, ErrReload.Error()+": ")
	m.touchLocked()
	m.mu.Unlock()
}

func (m *Manager) clearApplyError() {
	m.mu.Lock()
	m.applyErr, m.applyErrType = "", ""
	m.touchLocked()
	m.mu.Unlock()
}

// Stop stops HAProxy: a graceful soft stop (SIGUSR1 to the master: workers
// finish their connections), then SIGTERM and SIGKILL to its process group
// if it is still there after StopTimeout (or when ctx ends). The supervisor
// does not restart it. Used by decommission and uninstall.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	state := m.state
	m.mu.Unlock()
	switch state {
	case stateClosed:
		return ErrClosed
	case stateStopped:
		return nil
	case stateNew, stateStarting:
		return ErrNotRunning
	}
	if err := m.acquire(ctx); err != nil {
		return err
	}
	defer m.release()
	m.mu.Lock()
	if m.state == stateRunning {
		m.state = stateStopped
	}
	m.mu.Unlock()
	return m.halt(ctx)
}

// halt stops the master; the caller holds sem.
func (m *Manager) halt(ctx context.Context) error {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	err := p.terminate(ctx, m.cfg.StopTimeout)
	if err == nil {
		os.Remove(m.p.pidFile)
	}
	m.mu.Lock()
	m.running = false
	m.down = false
	m.workerPID = 0
	m.touchLocked()
	m.mu.Unlock()
	if err != nil {
		m.log.Error("stop haproxy", "master_pid", p.pid, "err", err)
		return err
	}
	m.log.Info("haproxy stopped", "master_pid", p.pid)
	m.emit(EventExited, "stopped", p.pid)
	return nil
}

// Close stops the supervisor and, unless KeepRunning, HAProxy. Safe to
// call more than once; after Close every method returns ErrClosed.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.state == stateClosed {
		m.mu.Unlock()
		return nil
	}
	prev := m.state
	m.state = stateClosed
	cancel := m.cancel
	events := m.events
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.wg.Wait()
	var err error
	if prev == stateRunning && !m.cfg.KeepRunning {
		if aerr := m.acquire(ctx); aerr != nil {
			// An apply still holds the Manager: stop HAProxy anyway.
			m.log.Warn("close: an operation is still running; stopping haproxy anyway", "err", aerr)
			err = m.halt(context.Background())
		} else {
			err = m.halt(ctx)
			m.release()
		}
	}
	if prev != stateStarting && events != nil {
		events.close(ctx)
	}
	return err
}

func (m *Manager) acquire(ctx context.Context) error {
	select {
	case m.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Manager) release() { <-m.sem }

// supervise polls HAProxy every CheckInterval and restarts it when it died.
func (m *Manager) supervise(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.CheckInterval)
	defer t.Stop()
	var failures int
	var next time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case m.sem <- struct{}{}:
		default:
			continue // an apply or a stop is running: check next time
		}
		m.check(ctx, &failures, &next)
		m.release()
	}
}

func (m *Manager) check(ctx context.Context, failures *int, next *time.Time) {
	m.mu.Lock()
	state, p, down := m.state, m.proc, m.down
	m.mu.Unlock()
	if state != stateRunning || p == nil {
		return
	}
	if !down {
		dead, status := p.exited()
		if !dead {
			if st, err := m.showProc(ctx, time.Second); err == nil {
				if w := st.current(); w > 0 {
					m.mu.Lock()
					m.workerPID = w
					m.mu.Unlock()
				}
			}
			m.rotateLog()
			return
		}
		reason := "master process " + strconv.Itoa(p.pid) + " exited: " + status
		m.mu.Lock()
		m.running = false
		m.down = true
		m.downReason = reason
		m.workerPID = 0
		m.touchLocked()
		m.mu.Unlock()
		m.log.Error("haproxy died", "master_pid", p.pid, "status", status)
		m.emit(EventExited, reason, p.pid)
		*failures = 0
		*next = time.Time{}
	}
	if time.Now().Before(*next) {
		return
	}
	if err := m.restart(ctx); err != nil {
		if ctx.Err() != nil {
			return
		}
		*failures++
		backoff := m.cfg.CheckInterval << min(*failures, 5)
		backoff = min(backoff, 30*time.Second)
		*next = time.Now().Add(backoff)
		m.mu.Lock()
		m.downReason = "restart failed: " + err.Error()
		m.mu.Unlock()
		m.log.Error("restart haproxy", "attempt", *failures, "retry_in", backoff, "err", err)
	}
}

// restart starts HAProxy again with the last good configuration.
func (m *Manager) restart(ctx context.Context) error {
	unlock, err := lockDir(ctx, m.p.lock)
	if err != nil {
		return err
	}
	defer unlock()
	good, err := m.loadGood()
	if err != nil {
		m.log.Warn("last good haproxy configuration unreadable: restarting with the files in place", "err", err)
	}
	var config []byte
	if good != nil {
		if err := m.writeLive(good); err != nil {
			return err
		}
		config = good.config
	} else if config, err = os.ReadFile(m.p.config); err != nil {
		return err
	}
	m.rotateLog()
	p, wpid, err := m.launch(ctx, config)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.proc = p
	m.running = true
	m.down = false
	m.downReason = ""
	m.workerPID = wpid
	m.restarts++
	n := m.restarts
	if good != nil {
		m.serving = good.state.loaded()
		m.servingMaps = good.maps
		m.mapsExact = true
	} else {
		m.serving = m.serving.loaded()
		m.mapsExact = false
	}
	m.touchLocked()
	m.mu.Unlock()
	m.log.Warn("haproxy restarted", "master_pid", p.pid, "worker_pid", wpid, "restarts", n)
	m.emit(EventRestarted, fmt.Sprintf("restart %d with the last good configuration", n), p.pid)
	return nil
}

// masterProc is an HAProxy master process, started by this Manager (its
// child) or adopted.
type masterProc struct {
	pid  int
	pgid int // its process group when it leads one (Setpgid), else 0

	mu     sync.Mutex
	dead   bool
	status string
}

// masterGroup returns pid's process group if pid leads it, else 0.
func masterGroup(pid int) int {
	if g, err := syscall.Getpgid(pid); err == nil && g == pid {
		return pid
	}
	return 0
}

// exited reports whether the master is gone, reaping it if it is this
// process's child. A zombie whose parent does not reap it counts as gone.
func (p *masterProc) exited() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead {
		return true, p.status
	}
	var ws syscall.WaitStatus
	wpid, err := syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil)
	switch {
	case err == nil && wpid == p.pid:
		p.dead, p.status = true, describeWait(ws)
	case syscall.Kill(p.pid, 0) == syscall.ESRCH:
		p.dead, p.status = true, "gone"
	case isZombie(p.pid):
		p.dead, p.status = true, "exited"
	}
	return p.dead, p.status
}

func describeWait(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	}
	return "status " + strconv.Itoa(int(ws))
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	s := b[i+2]
	return s == 'Z' || s == 'X'
}

// signal sends sig to the master's process group (master and workers), or
// to the master alone if it does not lead a group.
func (p *masterProc) signal(sig syscall.Signal) {
	if dead, _ := p.exited(); dead && p.pgid == 0 {
		return
	}
	if p.pgid > 0 {
		_ = syscall.Kill(-p.pgid, sig)
		return
	}
	_ = syscall.Kill(p.pid, sig)
}

// waitExit waits up to timeout (or ctx) for the master to exit.
func (p *masterProc) waitExit(ctx context.Context, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if dead, _ := p.exited(); dead {
			return true
		}
		if sleepCtx(ctx, 10*time.Millisecond) != nil {
			dead, _ := p.exited()
			return dead
		}
	}
}

// terminate soft-stops the master (SIGUSR1: workers finish their
// connections, then the master exits), then sends SIGTERM and SIGKILL to
// its group if it outlives grace or ctx.
func (p *masterProc) terminate(ctx context.Context, grace time.Duration) error {
	if dead, _ := p.exited(); !dead {
		_ = syscall.Kill(p.pid, syscall.SIGUSR1)
		if !p.waitExit(ctx, grace) {
			p.signal(syscall.SIGTERM)
			if !p.waitExit(context.Background(), 3*time.Second) {
				p.signal(syscall.SIGKILL)
				if !p.waitExit(context.Background(), 5*time.Second) {
					return fmt.Errorf("haproxy master %d still running after SIGKILL", p.pid)
				}
			}
		}
	}
	// Workers of a master that died first.
	if p.pgid > 0 {
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
	}
	return nil
}

func readPIDFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lockDir takes the flock on path, waiting while another process holds it,
// and returns its release.
func lockDir(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("haproxy lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			f.Close()
			return nil, fmt.Errorf("haproxy lock %s: %w", path, err)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			f.Close()
			return nil, fmt.Errorf("haproxy lock %s: %w", path, err)
		}
	}
}

func (m *Manager) logSize() int64 {
	fi, err := os.Stat(m.p.log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// rotateLog keeps HAProxy's log bounded: past logRotateAt it is copied to
// haproxy.log.1 and truncated (HAProxy keeps its descriptor, opened for
// appending, so it goes on writing at the new end).
func (m *Manager) rotateLog() {
	if m.logSize() < logRotateAt {
		return
	}
	src, err := os.Open(m.p.log)
	if err != nil {
		return
	}
	defer src.Close()
	dst, err := os.OpenFile(m.p.log+".1", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		_ = os.Truncate(m.p.log, 0)
	}
}

// eventQueue delivers events to OnEvent in order from one goroutine, never
// blocking the sender.
type eventQueue struct {
	fn   func(Event)
	mu   sync.Mutex
	q    []Event
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func newEventQueue(fn func(Event)) *eventQueue {
	e := &eventQueue{fn: fn, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if fn == nil {
		close(e.done)
		return e
	}
	go e.run()
	return e
}

func (e *eventQueue) push(ev Event) {
	if e == nil || e.fn == nil {
		return
	}
	e.mu.Lock()
	e.q = append(e.q, ev)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *eventQueue) run() {
	defer close(e.done)
	for {
		e.mu.Lock()
		q := e.q
		e.q = nil
		e.mu.Unlock()
		for _, ev := range q {
			e.fn(ev)
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-e.wake:
		case <-e.stop:
			e.mu.Lock()
			q := e.q
			e.q = nil
			e.mu.Unlock()
			for _, ev := range q {
				e.fn(ev)
			}
			return
		}
	}
}

// close delivers the queued events and stops the goroutine, waiting for it
// until ctx ends.
func (e *eventQueue) close(ctx context.Context) {
	if e == nil {
		return
	}
	e.once.Do(func() {
		if e.fn != nil {
			close(e.stop)
		}
	})
	select {
	case <-e.done:
	case <-ctx.Done():
	}
}

func (m *Manager) emit(typ, detail string, pid int) {
	m.mu.Lock()
	e := m.events
	m.mu.Unlock()
	e.push(Event{Type: typ, Time: time.Now(), Detail: detail, PID: pid})
}
