package haproxy

// Talking to a running HAProxy: the master CLI (DIR/master.sock: `show proc`,
// `reload`) and the runtime API of the current worker (DIR/stats.sock: map
// entries, `show info`, `show stat`).
//
// The master CLI is spoken directly: client-native's Reload needs HAProxy
// 2.7 (where `reload` answers with the outcome), and HAProxy 2.6's `reload`
// answers nothing — the master re-executes itself and the outcome shows in
// `show proc`. The runtime API goes through client-native's runtime client.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	nativeruntime "github.com/haproxytech/client-native/v5/runtime"
	"github.com/haproxytech/client-native/v5/runtime/options"
)

// cliTimeout bounds one exchange on a CLI socket when the caller's context
// has no earlier deadline.
const cliTimeout = 5 * time.Second

// cliExchange sends one command line to an HAProxy CLI socket and returns
// everything HAProxy writes until it closes the connection. The command is
// followed by "quit", so the master CLI (which keeps a connection open
// otherwise) closes it too.
func cliExchange(ctx context.Context, sock, command string, timeout time.Duration) (string, error) {
	if timeout <= 0 {
		timeout = cliTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A cancelled context ends a read waiting for an answer at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(conn, command+";quit\n"); err != nil {
		return "", err
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		return string(out), err
	}
	return string(out), nil
}

// procWorker is one worker line of `show proc`.
type procWorker struct {
	PID     int
	Reloads int // reloads this worker has lived through
}

// procStatus is the master CLI's `show proc`. On HAProxy 2.6 it reads:
//
//	#<PID>          <type>          <reloads>       <uptime>        <version>
//	11902           master          3 [failed: 0]   0d00h00m05s     2.6.12-1+deb12u4
//	# workers
//	12044           worker          0               0d00h00m00s     2.6.12-1+deb12u4
//	# old workers
//	11905           worker          1               0d00h00m04s     2.6.12-1+deb12u4
//	# programs
//
// The master's reload counter grows at every reload, failed or not; the
// failed counter counts the failed reloads since the last successful one (a
// successful reload resets it to 0). "# workers" lists the current worker;
// after a failed reload it is still the one from before, with its reload
// count increased.
type procStatus struct {
	MasterPID  int
	Reloads    int
	Failed     int
	Workers    []procWorker // current
	OldWorkers []procWorker // soft-stopping after a reload
}

// parseShowProc parses the output of `show proc`.
func parseShowProc(out string) (procStatus, error) {
	var st procStatus
	section := ""
	master := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			switch strings.TrimSpace(strings.TrimPrefix(line, "#")) {
			case "workers":
				section = "workers"
			case "old workers":
				section = "old"
			case "programs":
				section = "programs"
			default:
				section = "" // the column header
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		reloads, _ := strconv.Atoi(f[2])
		switch {
		case f[1] == "master":
			master = true
			st.MasterPID = pid
			st.Reloads = reloads
			// "[failed: N]"
			if i := strings.Index(line, "[failed:"); i >= 0 {
				rest := strings.TrimSpace(line[i+len("[failed:"):])
				if j := strings.IndexByte(rest, ']'); j >= 0 {
					st.Failed, _ = strconv.Atoi(strings.TrimSpace(rest[:j]))
				}
			}
		case f[1] == "worker" && section == "workers":
			st.Workers = append(st.Workers, procWorker{PID: pid, Reloads: reloads})
		case f[1] == "worker" && section == "old":
			st.OldWorkers = append(st.OldWorkers, procWorker{PID: pid, Reloads: reloads})
		}
	}
	if !master {
		return st, fmt.Errorf("unexpected show proc output: %q", firstLine(out))
	}
	return st, nil
}

// current returns the PID of the current worker, 0 if there is none.
func (st procStatus) current() int {
	if len(st.Workers) == 0 {
		return 0
	}
	return st.Workers[0].PID
}

// newWorker returns a current worker that was not among before's workers
// (current or old), 0 if there is none yet.
func (st procStatus) newWorker(before procStatus) int {
	known := make(map[int]bool, len(before.Workers)+len(before.OldWorkers))
	for _, w := range before.Workers {
		known[w.PID] = true
	}
	for _, w := range before.OldWorkers {
		known[w.PID] = true
	}
	for _, w := range st.Workers {
		if !known[w.PID] {
			return w.PID
		}
	}
	return 0
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// showProc asks the master for its processes.
func (m *Manager) showProc(ctx context.Context, timeout time.Duration) (procStatus, error) {
	out, err := cliExchange(ctx, m.p.masterSock, "show proc", timeout)
	if err != nil {
		return procStatus{}, fmt.Errorf("master CLI %s: %w", m.p.masterSock, err)
	}
	return parseShowProc(out)
}

// sendReload asks the master to reload. The master re-executes itself at
// once, which closes the connection; the outcome is read from `show proc`.
func (m *Manager) sendReload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", m.p.masterSock)
	if err != nil {
		return fmt.Errorf("master CLI %s: %w", m.p.masterSock, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, "reload\n"); err != nil {
		return fmt.Errorf("master CLI %s: send reload: %w", m.p.masterSock, err)
	}
	// Wait for the master to close the connection (it does when it
	// re-executes), so the command is known to have been read. A reset
	// or a timeout here says nothing about the reload itself.
	_, _ = io.Copy(io.Discard, conn)
	return nil
}

// workerPIDFromStats asks the runtime API on the stats socket which process answers
// it: the current worker once it is up.
func (m *Manager) workerPIDFromStats(ctx context.Context) (int, error) {
	out, err := cliExchange(ctx, m.p.statsSock, "show info", time.Second)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "Pid: "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no Pid in show info: %q", firstLine(out))
}

// Polling steps while a reload is confirmed: the first polls come quickly
// (a small configuration loads in a few milliseconds), later ones at
// pollMaxStep, so a reload is seen at most that long after it completed (a
// refused connection costs the master nothing).
const (
	pollFirstStep = 2 * time.Millisecond
	pollMaxStep   = 5 * time.Millisecond
)

// nextStep doubles a polling step up to max.
func nextStep(d, max time.Duration) time.Duration {
	return min(2*d, max)
}

// waitReady waits until the master p serves with a new worker: `show proc`
// answers with at least wantReloads reloads and no failed reload, a current
// worker that was not in before, and (when the configuration has the stats
// socket) that worker answers the runtime API. It gives up after
// ReloadTimeout, when the master exits, or when the master counts a failed
// reload. logOffset is where HAProxy's log stood before, to quote its
// alerts in the error.
//
// The master re-executes itself to load the configuration and once more
// after it forked the new worker (to release the configuration's memory);
// it answers `show proc` again only then. Waiting for that answer, rather
// than for the new worker alone, leaves the master ready for the next
// command or signal when waitReady returns.
func (m *Manager) waitReady(ctx context.Context, p *masterProc, before procStatus, wantReloads int, logOffset int64, statsSocket bool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ReloadTimeout)
	defer cancel()
	step := pollFirstStep
	var last error
	for {
		if dead, status := p.exited(); dead {
			return 0, fmt.Errorf("haproxy exited (%s)%s", status, m.logReason(logOffset))
		}
		st, err := m.showProc(ctx, time.Second)
		switch {
		case err != nil:
			last = err // re-executing, or not listening yet
		case st.Reloads < wantReloads:
			last = fmt.Errorf("reload not taken yet (reloads %d)", st.Reloads)
		case st.Failed > 0 && wantReloads > 0:
			return 0, fmt.Errorf("haproxy refused the configuration (failed reloads: %d)%s", st.Failed, m.logReason(logOffset))
		default:
			w := st.newWorker(before)
			if w == 0 {
				last = errors.New("no new worker yet")
				break
			}
			if !statsSocket {
				return w, nil
			}
			pid, err := m.workerPIDFromStats(ctx)
			if err == nil && pid == w {
				return w, nil
			}
			last = fmt.Errorf("new worker %d not answering on the stats socket yet (pid %d, %v)", w, pid, err)
		}
		if sleepCtx(ctx, step) != nil {
			return 0, fmt.Errorf("not confirmed within %v: %v%s", m.cfg.ReloadTimeout, last, m.logReason(logOffset))
		}
		step = nextStep(step, pollMaxStep)
	}
}

// reload asks the master to load the configuration files in Dir and waits
// for the new worker. It returns the new worker's PID. before is the
// master's `show proc` taken since the last reload, or nil to ask for it.
func (m *Manager) reload(ctx context.Context, p *masterProc, config []byte, before *procStatus) (int, error) {
	if before == nil {
		st, err := m.showProc(ctx, 2*time.Second)
		if err != nil {
			return 0, err
		}
		before = &st
	}
	off := m.logSize()
	if err := m.sendReload(ctx); err != nil {
		return 0, err
	}
	return m.waitReady(ctx, p, *before, before.Reloads+1, off, m.hasStatsSocket(config))
}

// hasStatsSocket reports whether a configuration declares the stats socket
// in Dir, which the Manager then uses to confirm a worker and to reach the
// runtime API.
func (m *Manager) hasStatsSocket(config []byte) bool {
	return bytes.Contains(config, []byte(m.p.statsSock))
}

// logReason returns HAProxy's alerts written to its log since offset, as
// ": alert; alert", or "" if there are none.
func (m *Manager) logReason(offset int64) string {
	f, err := os.Open(m.p.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 256<<10))
	if s := haproxyAlerts(b, 3); s != "" {
		return ": " + s
	}
	return ""
}

// haproxyAlerts returns up to n of HAProxy's [ALERT] lines (without the
// level and process prefix), joined by "; ".
func haproxyAlerts(out []byte, n int) string {
	var alerts []string
	for _, l := range strings.Split(string(out), "\n") {
		i := strings.Index(l, "[ALERT]")
		if i < 0 {
			continue
		}
		l = l[i+len("[ALERT]"):]
		// "    (1234) : message"
		if j := strings.Index(l, ") : "); j >= 0 && strings.HasPrefix(strings.TrimSpace(l), "(") {
			l = l[j+len(") : "):]
		}
		l = strings.TrimPrefix(strings.TrimSpace(l), "config : ")
		// HAProxy's closing summaries say nothing the alerts before
		// them do not.
		if l == "" || strings.Contains(l, "Error(s) found in configuration file") ||
			strings.Contains(l, "Fatal errors found in configuration") {
			continue
		}
		if len(alerts) == n {
			alerts = append(alerts, "...")
			break
		}
		alerts = append(alerts, l)
	}
	return strings.Join(alerts, "; ")
}

// runtimeClient returns client-native's runtime client on the stats socket.
// Its request goroutine lives until ctx is cancelled: give it a context the
// caller cancels when done.
func (m *Manager) runtimeClient(ctx context.Context) (nativeruntime.Runtime, error) {
	rt, err := nativeruntime.New(ctx, options.Socket(m.p.statsSock), options.DoNotCheckRuntimeOnInit)
	if err != nil {
		return nil, fmt.Errorf("runtime API %s: %w", m.p.statsSock, err)
	}
	return rt, nil
}

// runtimeCommand runs one runtime API command and returns its output,
// turning HAProxy's error answers (severity 0 to 3) into errors.
func runtimeCommand(rt nativeruntime.Runtime, command string) (string, error) {
	outs, err := rt.ExecuteRaw(command)
	if err != nil {
		return "", err
	}
	out := strings.TrimSpace(strings.Join(outs, "\n"))
	if len(out) >= 4 && out[0] == '[' && out[2] == ']' && out[3] == ':' && out[1] >= '0' && out[1] <= '3' {
		verb := command
		if i := strings.IndexAny(verb, "<\n"); i >= 0 {
			verb = strings.TrimSpace(verb[:i])
		}
		return out, fmt.Errorf("%s: %s", verb, strings.TrimSpace(out[4:]))
	}
	return out, nil
}

// mapPayloadLimit bounds the entries sent with one `add map` command: the
// CLI reads a command and its payload into one buffer (tune.bufsize, 16 kB by
// default).
const mapPayloadLimit = 8000

// mapEditLimit is the largest number of entry changes made one by one
// (`add map`, `set map`, `del map`) in a map; more changes replace the
// whole map in one step.
const mapEditLimit = 64

// updateMaps brings, in the current worker, every map whose content differs
// from old (nil: unknown, every map) to its content in maps. Maps the
// running configuration does not use are skipped. HAProxy names a map by
// the file path the configuration gives; the ids from `show map` are used
// instead.
//
// When the Manager knows the worker's maps exactly (it loaded them, or they
// were last changed through this function) and a map differs in at most
// mapEditLimit entries of unique keys, those entries are changed one by
// one: each entry is routed either the old or the new way at every moment.
// Otherwise the map is replaced atomically: `prepare map` opens a new
// version, `add map @version` fills it, `commit map @version` switches to
// it in one step, so a request never sees a half-updated map.
func (m *Manager) updateMaps(ctx context.Context, maps, old map[string][]byte) (int, error) {
	names := make([]string, 0, len(maps))
	for name, data := range maps {
		if o, ok := old[name]; ok && bytes.Equal(o, data) {
			continue
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return 0, nil
	}
	sort.Strings(names)

	m.mu.Lock()
	exact := m.mapsExact
	m.mapsExact = false // until the worker holds maps
	m.mu.Unlock()

	loaded, err := m.showMaps(ctx)
	if err != nil {
		return 0, err
	}
	// client-native's runtime client replaces whole maps; it is started
	// only if one is.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var rt nativeruntime.Runtime
	updated := 0
	for _, name := range names {
		entries := mapEntries(maps[name])
		var edits []mapEdit
		if o, ok := old[name]; ok && exact {
			edits, ok = mapDiff(mapEntries(o), entries)
			if !ok || len(edits) > mapEditLimit {
				edits = nil
			}
		}
		for _, lm := range loaded {
			if !m.isMapFile(lm.file, name) {
				continue
			}
			ref := "#" + lm.id
			if edits != nil {
				err = m.runtimeBatch(ctx, editMapCommands(ref, edits))
			} else {
				if rt == nil {
					if rt, err = m.runtimeClient(rctx); err != nil {
						return updated, err
					}
				}
				err = replaceMap(rt, ref, entries)
			}
			if err != nil {
				return updated, fmt.Errorf("map %s: %w", lm.file, err)
			}
			updated++
		}
	}
	m.mu.Lock()
	m.mapsExact = true
	m.mu.Unlock()
	return updated, nil
}

// loadedMap is a map of the running worker: its id and the file the
// configuration names.
type loadedMap struct {
	id, file string
}

// showMaps lists the maps of the running worker (`show map`).
func (m *Manager) showMaps(ctx context.Context) ([]loadedMap, error) {
	out, err := cliExchange(ctx, m.p.statsSock, "show map", cliTimeout)
	if err != nil {
		return nil, fmt.Errorf("runtime API %s: show map: %w", m.p.statsSock, err)
	}
	return parseShowMap(out)
}

// parseShowMap reads `show map`:
//
//	# id (file) description
//	2 (/var/lib/lumos/haproxy/hosts.map) pattern loaded from file '...' ...
func parseShowMap(out string) ([]loadedMap, error) {
	var maps []loadedMap
	header := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			header = true
			continue
		}
		id, rest, ok := strings.Cut(line, " ")
		if _, err := strconv.ParseUint(id, 10, 64); err != nil || !ok || !strings.HasPrefix(rest, "(") {
			return nil, fmt.Errorf("show map: unexpected answer %q", firstLine(line))
		}
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return nil, fmt.Errorf("show map: unexpected answer %q", firstLine(line))
		}
		maps = append(maps, loadedMap{id: id, file: rest[1:end]})
	}
	if !header {
		return nil, fmt.Errorf("show map: unexpected answer %q", firstLine(out))
	}
	return maps, nil
}

// mapEdit is one entry change: del (value ""), set or add.
type mapEdit struct {
	op, key, value string
}

// mapDiff returns the entry changes from old to next: deletions, then
// changed values, then additions. It reports false when a key repeats in
// either or a key or value cannot be sent as one word.
func mapDiff(old, next [][2]string) ([]mapEdit, bool) {
	word := func(s string) bool {
		return s != "" && !strings.ContainsAny(s, " \t\r\n;\\'\"#")
	}
	before := make(map[string]string, len(old))
	for _, e := range old {
		if _, dup := before[e[0]]; dup || !word(e[0]) || !word(e[1]) {
			return nil, false
		}
		before[e[0]] = e[1]
	}
	after := make(map[string]string, len(next))
	for _, e := range next {
		if _, dup := after[e[0]]; dup || !word(e[0]) || !word(e[1]) {
			return nil, false
		}
		after[e[0]] = e[1]
	}
	var dels, sets, adds []mapEdit
	for _, e := range old {
		if _, ok := after[e[0]]; !ok {
			dels = append(dels, mapEdit{op: "del", key: e[0]})
		}
	}
	for _, e := range next {
		v, ok := before[e[0]]
		switch {
		case !ok:
			adds = append(adds, mapEdit{op: "add", key: e[0], value: e[1]})
		case v != e[1]:
			sets = append(sets, mapEdit{op: "set", key: e[0], value: e[1]})
		}
	}
	return append(append(dels, sets...), adds...), true
}

// editMapCommands returns the runtime API commands of entry changes in a
// map.
func editMapCommands(ref string, edits []mapEdit) []string {
	cmds := make([]string, 0, len(edits))
	for _, e := range edits {
		cmd := e.op + " map " + ref + " " + e.key
		if e.op != "del" {
			cmd += " " + e.value
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// batchLimit bounds the length of one line of commands sent to the stats
// socket (the CLI reads a line into one buffer, tune.bufsize, 16 kB by
// default).
const batchLimit = 8000

// runtimeBatch runs commands on the stats socket, in order, as few lines of
// ';'-separated commands as batchLimit allows (one connection each), and
// returns HAProxy's error answers (severity 0 to 3) as an error. HAProxy
// runs every command of a line even after one fails. No command may hold a
// ';'.
func (m *Manager) runtimeBatch(ctx context.Context, cmds []string) error {
	const prefix = "set severity-output number"
	var errs []string
	run := func(line string) error {
		out, err := cliExchange(ctx, m.p.statsSock, line, cliTimeout)
		if err != nil {
			return fmt.Errorf("runtime API %s: %w", m.p.statsSock, err)
		}
		for _, l := range strings.Split(out, "\n") {
			l = strings.TrimSpace(l)
			if len(l) >= 4 && l[0] == '[' && l[2] == ']' && l[3] == ':' && l[1] >= '0' && l[1] <= '3' {
				errs = append(errs, strings.TrimSpace(l[4:]))
			}
		}
		return nil
	}
	line := prefix
	for _, c := range cmds {
		if strings.ContainsRune(c, ';') {
			return fmt.Errorf("runtime API: command %q holds ';'", c)
		}
		if len(line)+1+len(c) > batchLimit && line != prefix {
			if err := run(line); err != nil {
				return err
			}
			line = prefix
		}
		line += ";" + c
	}
	if line != prefix {
		if err := run(line); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		if len(errs) > 3 {
			errs = append(errs[:3], "...")
		}
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// fillSpares serves new sites from spare backends: each site's servers are
// added to its spare backend as its section declares them, with the
// health-check settings of default-server and health checks enabled, then
// taken out of the maintenance mode HAProxy adds them in. No map entry
// names the spare backends yet: nothing routes to them before the maps
// change.
func (m *Manager) fillSpares(ctx context.Context, fills []spareFill) error {
	var cmds []string
	for _, f := range fills {
		for _, s := range f.servers {
			cmd := "add server " + f.spare + "/" + s.name + " " + s.addr
			if s.check {
				cmd += " check " + renderServerDefaults
			}
			cmds = append(cmds, cmd)
		}
		for _, s := range f.servers {
			srv := f.spare + "/" + s.name
			if s.check {
				cmds = append(cmds, "enable health "+srv)
			}
			cmds = append(cmds, "enable server "+srv)
		}
	}
	if err := m.runtimeBatch(ctx, cmds); err != nil {
		return fmt.Errorf("fill spare backends: %w", err)
	}
	return nil
}

// isMapFile reports whether the file name HAProxy shows for a map is the map
// name in Dir.
func (m *Manager) isMapFile(file, name string) bool {
	if filepath.Base(file) != name {
		return false
	}
	return !filepath.IsAbs(file) || filepath.Clean(file) == filepath.Join(m.p.dir, name)
}

// replaceMap swaps a map's entries for entries in one step.
func replaceMap(rt nativeruntime.Runtime, ref string, entries [][2]string) error {
	out, err := runtimeCommand(rt, "prepare map "+ref)
	if err != nil {
		return err
	}
	// "[6]: New version created: 3" (with severity output) or
	// "New version created: 3".
	i := strings.LastIndexByte(out, ':')
	version := strings.TrimSpace(out[i+1:])
	if _, err := strconv.ParseUint(version, 10, 64); err != nil {
		return fmt.Errorf("prepare map %s: unexpected answer %q", ref, firstLine(out))
	}
	var payload strings.Builder
	flush := func() error {
		if payload.Len() == 0 {
			return nil
		}
		// The payload ends with an empty line (the client adds the
		// final newline).
		_, err := runtimeCommand(rt, "add map @"+version+" "+ref+" <<\n"+payload.String())
		payload.Reset()
		return err
	}
	for _, e := range entries {
		if payload.Len()+len(e[0])+len(e[1])+2 > mapPayloadLimit {
			if err := flush(); err != nil {
				return err
			}
		}
		payload.WriteString(e[0])
		payload.WriteByte(' ')
		payload.WriteString(e[1])
		payload.WriteByte('\n')
	}
	if err := flush(); err != nil {
		return err
	}
	_, err = runtimeCommand(rt, "commit map @"+version+" "+ref)
	return err
}

// mapEntries parses a map file: "key value" per line; blank lines and
// comments are skipped, as HAProxy does.
func mapEntries(data []byte) [][2]string {
	var entries [][2]string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		key := strings.Fields(line)[0]
		value := strings.TrimSpace(line[len(key):])
		entries = append(entries, [2]string{key, value})
	}
	return entries
}
