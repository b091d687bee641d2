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
	// RuntimeOnly: the running worker was brought to the rendering
	// through the runtime API, without a reload: map entries changed,
	// and new sites are served from spare backends.
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
	// Backends holds the hash of every backend section of the
	// configuration file in place, by name: those HAProxy loaded, and
	// those of the sites it serves from spare backends (Spares). After
	// map-only applies it may hold backends the maps no longer reach.
	Backends map[string]string `json:"backends,omitempty"`
	// Sites are the site backends of the rendering HAProxy serves, sorted.
	Sites []string `json:"sites,omitempty"`
	// Spares maps each site backend that HAProxy serves from a spare
	// backend, filled through the runtime API since it loaded its
	// configuration, to that spare backend; the maps in the worker name
	// the spare backend, those on disk the site backend. The site's own
	// section is in the configuration file in place: the next reload or
	// start loads it, and the spare backends are empty again.
	Spares map[string]string `json:"spares,omitempty"`
}

// loaded returns s as it is once HAProxy has loaded the files s describes:
// every site is served from its own backend.
func (s servingState) loaded() servingState {
	s.Spares = nil
	return s
}

// bundle is a configuration with its maps and its state.
type bundle struct {
	config []byte
	maps   map[string][]byte
	state  servingState
	// baseLen and sections describe config when it is laid out as Render
	// writes it: Base (config[:baseLen]) followed by the site backend
	// sections, each exactly its text in Rendered.Backends. sections is
	// nil when config is not laid out so (a rendering changed by hand):
	// it is then always validated whole.
	baseLen  int
	sections []section
}

// section is one site backend section of a bundle's configuration.
type section struct {
	name       string
	start, end int // config[start:end] is the section's text
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
			name == ConfigFile || name == goodDir || name == stagingDir || name == stateFile ||
			strings.HasSuffix(name, tmpSuffix) || strings.HasSuffix(name, nextSuffix) {
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
	}
	if secs, ok := splitSections(r); ok {
		b.baseLen, b.sections = len(r.Base), secs
		b.state.Sites = make([]string, 0, len(secs))
		for _, sec := range secs {
			b.state.Sites = append(b.state.Sites, sec.name)
		}
	} else {
		for name, text := range r.Backends {
			// Site backends are those outside Base.
			if !strings.Contains(r.Base, text) {
				b.state.Sites = append(b.state.Sites, name)
			}
		}
	}
	sort.Strings(b.state.Sites)
	return b, nil
}

// sectionMarker starts every backend section Render writes.
const sectionMarker = "\nbackend "

// splitSections checks that r.Config is laid out as Render writes it —
// r.Base, then site backend sections as Render writes them (see
// parseSiteSection), each of which is exactly the text of the backend of
// its name in r.Backends, every other backend of r.Backends inside r.Base —
// and returns the sections after Base. It reports false otherwise.
func splitSections(r *Rendered) ([]section, bool) {
	cfg := r.Config
	if r.Base == "" || len(cfg) < len(r.Base) || string(cfg[:len(r.Base)]) != r.Base {
		return nil, false
	}
	marker := []byte(sectionMarker)
	secs := make([]section, 0, len(r.Backends))
	seen := make(map[string]bool, len(r.Backends))
	for pos := len(r.Base); pos < len(cfg); {
		rest := cfg[pos:]
		if !bytes.HasPrefix(rest, marker) {
			return nil, false
		}
		n := len(rest)
		if i := bytes.Index(rest[len(marker):], marker); i >= 0 {
			n = len(marker) + i
		}
		text := rest[:n]
		header := text[len(marker):]
		if i := bytes.IndexByte(header, '\n'); i >= 0 {
			header = header[:i]
		}
		f := strings.Fields(string(header))
		if len(f) == 0 || seen[f[0]] {
			return nil, false
		}
		name := f[0]
		if want, ok := r.Backends[name]; !ok || want != string(text) {
			return nil, false
		}
		if _, _, ok := parseSiteSection(text, false); !ok {
			return nil, false
		}
		seen[name] = true
		secs = append(secs, section{name: name, start: pos, end: pos + n})
		pos += n
	}
	if len(seen) != len(r.Backends) {
		for name, text := range r.Backends {
			if !seen[name] && !strings.Contains(r.Base, text) {
				return nil, false
			}
		}
	}
	return secs, true
}

// siteServer is a server line of a site backend section.
type siteServer struct {
	name, addr string
	check      bool
}

// parseSiteSection reads a backend section as Render writes a site's: a
// "backend NAME" line, then only "mode http|tcp", "balance roundrobin" and
// "server NAME ADDRESS [check]" lines, at least one server. Such a section
// refers to no other section. It reports false for any other text, and
// returns the mode and (with servers) the server lines.
func parseSiteSection(text []byte, servers bool) (mode string, srvs []siteServer, ok bool) {
	lines, n := 0, 0
	for len(text) > 0 {
		var line []byte
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		lines++
		if lines == 1 {
			// "backend NAME": nothing else (no "from" another defaults
			// section).
			if !bytes.HasPrefix(line, []byte("backend ")) || bytes.ContainsAny(bytes.TrimSpace(line[len("backend "):]), " \t") {
				return "", nil, false
			}
			continue
		}
		switch {
		case bytes.Equal(line, []byte("mode http")):
			mode = ModeHTTP
		case bytes.Equal(line, []byte("mode tcp")):
			mode = ModeTCP
		case bytes.Equal(line, []byte("balance roundrobin")):
		case bytes.HasPrefix(line, []byte("server ")):
			f := bytes.Fields(line)
			if len(f) != 3 && (len(f) != 4 || string(f[3]) != "check") {
				return "", nil, false
			}
			n++
			if servers {
				srvs = append(srvs, siteServer{name: string(f[1]), addr: string(f[2]), check: len(f) == 4})
			}
		default:
			return "", nil, false
		}
	}
	if mode == "" || n == 0 {
		return "", nil, false
	}
	return mode, srvs, true
}

// validationConfig returns what `haproxy -c` checks for b when HAProxy
// serves what serving describes, and how many site backends it holds.
//
// Every backend section of serving's configuration file passed `haproxy -c`
// (HAProxy loaded it, or checked it when its site was served from a spare
// backend) after a Base with serving.BaseHash. When b has that Base and is
// laid out as Render writes it, a section of b identical to one of those
// parses the same way (same global, defaults and frontends before it; a
// site section refers to no other section), so only Base and the new or
// changed sections are checked: the others are left out, each replaced by
// as many empty lines so that HAProxy's messages quote the lines of the
// real file. Otherwise the whole configuration is checked.
func (b *bundle) validationConfig(serving servingState) (cfg []byte, checked int) {
	if b.sections == nil || b.state.BaseHash == "" || serving.BaseHash != b.state.BaseHash || serving.Backends == nil {
		return b.config, len(b.sections)
	}
	out := make([]byte, 0, b.baseLen+len(b.config)/32)
	out = append(out, b.config[:b.baseLen]...)
	for _, sec := range b.sections {
		text := b.config[sec.start:sec.end]
		if h, ok := serving.Backends[sec.name]; ok && h == b.state.Backends[sec.name] {
			for n := bytes.Count(text, []byte{'\n'}); n > 0; n-- {
				out = append(out, '\n')
			}
			continue
		}
		out = append(out, text...)
		checked++
	}
	return out, checked
}

// sameBinds reports whether b listens where serving does: b has serving's
// Base and is laid out as Render writes it (site backend sections hold no
// bind lines).
func (b *bundle) sameBinds(serving servingState) bool {
	return b.sections != nil && b.state.BaseHash != "" && serving.BaseHash == b.state.BaseHash
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
//   - RuntimeOnly, maps only: r.Base is the Base HAProxy loaded and every
//     backend of r exists unchanged in the configuration in place (which
//     may hold more, unreachable once their map entries are gone): the
//     changed map entries are changed in the running worker through the
//     runtime API and the maps written to Dir for later reloads and
//     restarts. No reload.
//   - RuntimeOnly, new sites: as above, except that some site backends of
//     r are new (no backend of that name in the configuration in place)
//     and there are as many free spare backends of their modes
//     (SpareBackendName): their sections are validated (`haproxy -c`),
//     each new site's servers are added to a spare backend through the
//     runtime API (health checks enabled), its map entry names that
//     spare backend in the worker, and its own section is appended to the
//     configuration file in Dir, so that the next reload or start serves
//     it from its own backend. No reload.
//   - Reloaded: otherwise the configuration and maps are validated
//     (`haproxy -c` on a staged copy pointing at the staged maps; only the
//     sections not already checked when Base is unchanged), renamed into
//     place and reloaded through the master CLI; the reload is confirmed
//     by a new worker in `show proc` (which answers the stats socket) and
//     no failed reload. The spare backends are empty again.
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

	var fills []spareFill
	runtime := mapOnly(serving, b.state)
	if !runtime {
		fills = m.planSpares(serving, b)
		runtime = fills != nil
	}
	if runtime {
		// A few milliseconds, not cancelled half-way.
		uctx := context.WithoutCancel(ctx)
		err := m.applyRuntime(uctx, b, serving, servingMaps, fills)
		if err == nil {
			return ApplyResult{RuntimeOnly: true, Took: time.Since(start)}, nil
		}
		if errors.Is(err, ErrValidate) {
			return ApplyResult{}, err
		}
		m.log.Warn("runtime update failed: reloading instead", "err", err)
		// Put the maps HAProxy served back, so that the worker matches
		// the recorded state whatever the reload below does (spare
		// backends filled on the way are unreachable).
		if _, rerr := m.updateMaps(uctx, servingMaps, nil); rerr != nil {
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

// spareFill is a new site served from a spare backend.
type spareFill struct {
	site    string // its site backend
	spare   string // the spare backend that serves it
	servers []siteServer
	text    []byte // its site backend section
}

// planSpares returns how the new site backends of b are served from spare
// backends when HAProxy serves what serving describes, or nil when b needs
// a reload: another Base, a layout Render does not write, a changed site
// backend, not enough free spare backends of a mode, or no stats socket.
func (m *Manager) planSpares(serving servingState, b *bundle) []spareFill {
	if b.sections == nil || b.state.BaseHash == "" || serving.BaseHash != b.state.BaseHash ||
		serving.Backends == nil || !m.hasStatsSocket(b.config[:b.baseLen]) {
		return nil
	}
	used := make(map[string]bool, len(serving.Spares))
	for _, sp := range serving.Spares {
		used[sp] = true
	}
	free := make(map[string][]string) // by mode, in order
	for name := range serving.Backends {
		if mode, _, ok := parseSpareName(name); ok && !used[name] {
			free[mode] = append(free[mode], name)
		}
	}
	for mode := range free {
		sort.Slice(free[mode], func(i, j int) bool {
			_, a, _ := parseSpareName(free[mode][i])
			_, c, _ := parseSpareName(free[mode][j])
			return a < c
		})
	}
	var fills []spareFill
	for _, sec := range b.sections {
		h := b.state.Backends[sec.name]
		old, ok := serving.Backends[sec.name]
		if ok && old == h {
			continue
		}
		if ok {
			return nil // a changed backend
		}
		text := b.config[sec.start:sec.end]
		mode, servers, ok := parseSiteSection(text, true)
		if !ok || len(free[mode]) == 0 {
			return nil
		}
		fills = append(fills, spareFill{site: sec.name, spare: free[mode][0], servers: servers, text: text})
		free[mode] = free[mode][1:]
	}
	if len(fills) == 0 {
		return nil
	}
	filled := make(map[string]bool, len(fills))
	for _, f := range fills {
		filled[f.site] = true
	}
	for name, h := range b.state.Backends {
		if old, ok := serving.Backends[name]; (!ok || old != h) && !filled[name] {
			return nil // a changed backend outside the site sections
		}
	}
	return fills
}

// parseSpareName reads a spare backend's name: its mode and index.
func parseSpareName(name string) (mode string, i int, ok bool) {
	rest, ok := strings.CutPrefix(name, SpareBackendPrefix)
	if !ok {
		return "", 0, false
	}
	j := strings.LastIndexByte(rest, '_')
	if j < 0 {
		return "", 0, false
	}
	i, err := strconv.Atoi(rest[j+1:])
	if err != nil || i < 0 {
		return "", 0, false
	}
	mode = rest[:j]
	if mode != ModeHTTP && mode != ModeTCP {
		return "", 0, false
	}
	return mode, i, true
}

// physicalMaps returns maps as the worker holds them when it serves the
// site backends in spares from spare backends: their entries ("key
// backend" lines) name the spare backend.
func physicalMaps(maps map[string][]byte, spares map[string]string) map[string][]byte {
	if len(spares) == 0 || maps == nil {
		return maps
	}
	out := make(map[string][]byte, len(maps))
	for name, data := range maps {
		var b []byte // nil until a line changes
		for pos := 0; pos < len(data); {
			end := len(data)
			if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
				end = pos + i + 1
			}
			line := bytes.TrimSpace(data[pos:end])
			if sp, ok := physicalValue(line, spares); ok {
				if b == nil {
					b = make([]byte, 0, len(data)+64)
					b = append(b, data[:pos]...)
				}
				key := line[:bytes.IndexAny(line, " \t")]
				b = append(b, key...)
				b = append(b, ' ')
				b = append(b, sp...)
				b = append(b, '\n')
			} else if b != nil {
				b = append(b, data[pos:end]...)
			}
			pos = end
		}
		if b == nil {
			out[name] = data
		} else {
			out[name] = b
		}
	}
	return out
}

// physicalValue returns the spare backend a map line's value names, if the
// line is "key value" with a value in spares.
func physicalValue(line []byte, spares map[string]string) (string, bool) {
	if len(line) == 0 || line[0] == '#' {
		return "", false
	}
	i := bytes.IndexAny(line, " \t")
	if i < 0 {
		return "", false
	}
	value := bytes.TrimSpace(line[i:])
	if bytes.ContainsAny(value, " \t") {
		return "", false
	}
	sp, ok := spares[string(value)]
	return sp, ok
}

// applyRuntime brings the running worker to b without a reload: fills
// spare backends with the new sites (validated first), changes the map
// entries, then writes the files into Dir and last-good. A validation
// failure is returned as is (wrapping ErrValidate: nothing changed); any
// other error leaves the worker for the caller to reload.
func (m *Manager) applyRuntime(ctx context.Context, b *bundle, serving servingState, servingMaps map[string][]byte, fills []spareFill) error {
	t0 := time.Now()
	next := serving
	next.Hash = b.state.Hash
	next.Sites = b.state.Sites
	var config []byte // the configuration file to write, nil: unchanged
	if len(fills) > 0 {
		if err := m.validateApply(ctx, b, serving); err != nil {
			return err
		}
		cur, err := os.ReadFile(m.p.config)
		if err != nil {
			return fmt.Errorf("read configuration: %w", err)
		}
		next.Backends = make(map[string]string, len(serving.Backends)+len(fills))
		for name, h := range serving.Backends {
			next.Backends[name] = h
		}
		next.Spares = make(map[string]string, len(serving.Spares)+len(fills))
		for site, sp := range serving.Spares {
			next.Spares[site] = sp
		}
		config = cur
		for _, f := range fills {
			config = append(config[:len(config):len(config)], f.text...)
			next.Backends[f.site] = b.state.Backends[f.site]
			next.Spares[f.site] = f.spare
		}
	}
	validated := time.Since(t0)
	phys := physicalMaps(b.maps, next.Spares)

	// The last good copy is written while the worker is changed; it
	// replaces the last good files once the worker serves b.
	staged := m.stageGood(config, b.maps, next)
	ok := false
	defer func() {
		if !ok {
			_ = staged.finish(false)
		}
	}()

	t1 := time.Now()
	if len(fills) > 0 {
		if err := m.fillSpares(ctx, fills); err != nil {
			return err
		}
	}
	n, err := m.updateMaps(ctx, phys, servingMaps)
	if err != nil {
		return err
	}
	changed := time.Since(t1)
	for name, data := range b.maps {
		if err := atomicWrite(filepath.Join(m.p.dir, name), data); err != nil {
			return err
		}
	}
	if config != nil {
		if err := atomicWrite(m.p.config, config); err != nil {
			return err
		}
	}
	syncDir(m.p.dir)
	ok = true
	if err := staged.finish(true); err != nil {
		m.log.Error("keep the last good haproxy configuration", "err", err)
	}
	m.mu.Lock()
	m.serving = next
	m.servingMaps = phys
	m.applyErr, m.applyErrType = "", ""
	m.touchLocked()
	w := m.workerPID
	m.mu.Unlock()
	took := time.Since(t0)
	if len(fills) > 0 {
		spares := make([]string, len(fills))
		for i, f := range fills {
			spares[i] = f.site + "=" + f.spare
		}
		m.log.Info("haproxy serves new sites from spare backends", "sites", spares, "maps", n, "config_hash", b.state.Hash,
			"validate", validated, "runtime", changed, "took", took)
		m.emit(EventRuntimeUpdated, fmt.Sprintf("%d new site(s) served from spare backends, %d map(s) updated without reload", len(fills), n), w)
		return nil
	}
	m.log.Info("haproxy maps updated through the runtime API", "maps", n, "config_hash", b.state.Hash, "took", took)
	m.emit(EventRuntimeUpdated, fmt.Sprintf("%d map(s) updated without reload", n), w)
	return nil
}

// mapOnly reports whether next differs from what HAProxy serves (the
// configuration in place) in map entries only.
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

// applyReload validates b, puts it in place and reloads; on a failed
// reload it puts the last good configuration back.
func (m *Manager) applyReload(ctx context.Context, p *masterProc, b *bundle) (ApplyResult, error) {
	tv := time.Now()
	m.mu.Lock()
	serving := m.serving
	m.mu.Unlock()
	if err := m.validateApply(ctx, b, serving); err != nil {
		return ApplyResult{}, err
	}
	// A listener that cannot bind fails the reload, and HAProxy 2.6 then
	// pauses the listeners of the serving worker for 1 to 2 s while it
	// retries: check the new addresses first (there are none when the
	// Base HAProxy loaded is kept).
	if !b.sameBinds(serving) {
		if err := m.checkBinds(b.config); err != nil {
			ferr := fmt.Errorf("%w: %v (nothing changed)", ErrReload, err)
			m.setApplyError(ErrorTypeReloadFailed, ferr)
			m.emit(EventReloadFailed, err.Error(), 0)
			m.log.Error("haproxy configuration cannot bind", "config_hash", b.state.Hash, "err", err)
			return ApplyResult{}, ferr
		}
	}
	// The master must answer before anything changes on disk.
	before, err := m.showProc(ctx, 2*time.Second)
	if err != nil {
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
	// The last good copy of b is written while HAProxy loads b; it
	// replaces the last good files only once the reload is confirmed.
	staged := m.stageGood(b.config, b.maps, b.state)
	wpid, err := m.reload(rctx, p, b.config, &before)
	if err == nil {
		if serr := staged.finish(true); serr != nil {
			m.log.Error("keep the last good haproxy configuration", "err", serr)
		}
		m.mu.Lock()
		m.serving = b.state
		m.servingMaps = b.maps
		m.mapsExact = true
		m.workerPID = wpid
		m.applyErr, m.applyErrType = "", ""
		m.touchLocked()
		m.mu.Unlock()
		m.log.Info("haproxy reloaded", "worker_pid", wpid, "config_hash", b.state.Hash, "validate", validated, "reload", time.Since(t0))
		m.emit(EventReloaded, "config "+shortHash(b.state.Hash), wpid)
		return ApplyResult{Reloaded: true}, nil
	}
	_ = staged.finish(false)

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
	wpid, err := m.reload(ctx, p, good.config, nil)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.workerPID = wpid
	// The worker loaded the last good files: every site in its own
	// backend, the maps as written.
	m.serving = good.state.loaded()
	m.servingMaps = good.maps
	m.mapsExact = true
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

// validateApply validates b for an apply (see validate) and records a
// refusal: Health, a validate_failed event, the log.
func (m *Manager) validateApply(ctx context.Context, b *bundle, serving servingState) error {
	err := m.validate(ctx, b, serving)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	m.setApplyError(ErrorTypeValidateFailed, err)
	m.emit(EventValidateFailed, err.Error(), 0)
	m.log.Error("haproxy configuration refused", "config_hash", b.state.Hash, "err", err)
	return err
}

// validate runs `haproxy -c` on b, or on the part of b HAProxy has not
// loaded yet when it serves what serving describes (see
// bundle.validationConfig; servingState{} checks all of b). The
// configuration names the maps by their final paths in Dir; the maps being
// validated are written to a staging directory and a copy of the
// configuration pointing at them is checked, so the maps HAProxy serves are
// not touched.
func (m *Manager) validate(ctx context.Context, b *bundle, serving servingState) error {
	if err := os.RemoveAll(m.p.staging); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	if err := os.Mkdir(m.p.staging, 0o700); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	defer os.RemoveAll(m.p.staging)
	cfg, _ := b.validationConfig(serving)
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

// Suffixes of the files written beside the files they replace: atomicWrite's
// temporary files, and the last good copy staged during a reload.
const (
	tmpSuffix  = ".new"
	nextSuffix = ".next"
)

// goodStage is a last good copy being written into last-good as NAME.next
// files, beside the files they replace.
type goodStage struct {
	dir   string
	names []string // final names, state.json last
	data  map[string][]byte
	state servingState
	done  chan struct{}
	err   error
}

// stageGood starts writing the last good copy of config (nil: the last
// good configuration is kept), maps and state, in a goroutine of its own.
// The caller must call finish.
func (m *Manager) stageGood(config []byte, maps map[string][]byte, state servingState) *goodStage {
	g := &goodStage{dir: m.p.good, data: make(map[string][]byte, len(maps)+1), state: state, done: make(chan struct{})}
	for n, d := range maps {
		g.names = append(g.names, n)
		g.data[n] = d
	}
	sort.Strings(g.names)
	if config != nil {
		g.names = append(g.names, ConfigFile)
		g.data[ConfigFile] = config
	}
	g.names = append(g.names, stateFile)
	go func() {
		defer close(g.done)
		g.err = g.write()
	}()
	return g
}

func (g *goodStage) write() error {
	if err := os.MkdirAll(g.dir, 0o700); err != nil {
		return err
	}
	js, err := json.Marshal(g.state)
	if err != nil {
		return err
	}
	g.data[stateFile] = js
	for _, n := range g.names {
		if err := writeSynced(filepath.Join(g.dir, n+nextSuffix), g.data[n]); err != nil {
			return err
		}
	}
	return nil
}

// finish waits for the staged files; with keep, it renames them over the
// last good files (state.json last, which names what the files hold, as
// saveGoodFiles writes it), otherwise it removes them.
func (g *goodStage) finish(keep bool) error {
	<-g.done
	err := g.err
	if keep && err == nil {
		for _, n := range g.names {
			if err = os.Rename(filepath.Join(g.dir, n+nextSuffix), filepath.Join(g.dir, n)); err != nil {
				break
			}
		}
		syncDir(g.dir)
		if err == nil {
			return nil
		}
	}
	for _, n := range g.names {
		os.Remove(filepath.Join(g.dir, n+nextSuffix))
	}
	return err
}

// writeSynced writes data to path and syncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
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
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
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
		if e.Type().IsRegular() && n != ConfigFile && n != stateFile && !strings.HasSuffix(n, tmpSuffix) && !strings.HasSuffix(n, nextSuffix) {
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
	tmp := path + tmpSuffix
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
