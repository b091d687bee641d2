package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

// Backend is what the HTTP API needs from the node it runs on.
type Backend interface {
	// NodeName is the name of this node in the mesh.
	NodeName() string
	// View gives fn read-only access to the local replicated state. fn must
	// not keep st or anything it points to after it returns, and must not
	// call other Backend methods.
	View(fn func(st *state.State))
	// Members is the gossip view, including dead and left members.
	Members() []mesh.Member
	// Status is the raft/cluster part of the status (Node, Version,
	// RaftState, Leader, LeaderAPI, Term, CommitIndex, AppliedIndex,
	// Nodes); the API fills in the counts of servers, domains, failed-over
	// domains and the plan.
	Status() StatusResponse
	// IsLeader reports whether this node is the raft leader.
	IsLeader() bool
	// LeaderAPI returns the base URL (http://IP:PORT) of the leader's API,
	// or an error if no leader is known.
	LeaderAPI() (string, error)
	// Apply commits cmd through raft and returns the result of
	// state.State.Apply. Only valid on the leader. A validation failure is a
	// *state.Error; losing leadership is ErrNotLeader or the raft error.
	Apply(ctx context.Context, cmd *state.Command) (any, error)
	// Join admits a shield (leader only): it checks the token, binds the
	// server record to the node and adds the node as a raft non-voter. A
	// bad token is a *state.Error with code unauthorized (or forbidden,
	// decommissioned, ...).
	Join(ctx context.Context, req *JoinRequest) (*JoinResponse, error)
	// Now is the node's clock.
	Now() time.Time
}

// ServerConfig configures the HTTP API handler.
type ServerConfig struct {
	// AdminTokenHash is the hex SHA-256 (state.HashToken) of the admin
	// token. Required: NewHandler refuses an empty one.
	AdminTokenHash string
	// MaxBodyBytes limits request bodies (default 1 MiB).
	MaxBodyBytes int64
	// ForwardTimeout bounds a write forwarded to the leader (default 10s).
	ForwardTimeout time.Duration
	// Logger receives request failures (default: discard).
	Logger *slog.Logger
}

// Defaults of ServerConfig.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultForwardTimeout = 10 * time.Second
	// DefaultEventLimit and MaxEventLimit bound GET /v1/events.
	DefaultEventLimit = 100
	MaxEventLimit     = state.MaxEvents
)

// Validate fills in defaults and checks the configuration.
func (c *ServerConfig) Validate() error {
	h := strings.ToLower(strings.TrimSpace(c.AdminTokenHash))
	if h == "" {
		return fmt.Errorf("%w: an admin token is required", ErrConfig)
	}
	if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
		return fmt.Errorf("%w: admin token hash must be 64 hex characters (SHA-256)", ErrConfig)
	}
	c.AdminTokenHash = h
	if c.MaxBodyBytes < 0 || c.ForwardTimeout < 0 {
		return fmt.Errorf("%w: negative body limit or forward timeout", ErrConfig)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = DefaultForwardTimeout
	}
	return nil
}

// server is the HTTP API of one node.
type server struct {
	b         Backend
	cfg       ServerConfig
	log       *slog.Logger
	mux       *http.ServeMux
	joins     *failLimiter
	transport *http.Transport
}

// NewHandler returns the HTTP API (every route under /v1) served by b.
func NewHandler(b Backend, cfg ServerConfig) (http.Handler, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: no backend", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &server{
		b:         b,
		cfg:       cfg,
		log:       logger(cfg.Logger),
		mux:       http.NewServeMux(),
		joins:     newFailLimiter(joinBurst, joinRefill),
		transport: newForwardTransport(),
	}
	s.routes()
	return s, nil
}

// route options.
const (
	public = 1 << iota // no admin token needed
	write              // changes state: forwarded to the leader
	read               // reads the state: answered by the leader unless ?stale
)

func (s *server) routes() {
	s.handle("GET /v1/health", public, s.health)
	s.handle("POST /v1/join", public|write, s.join)

	s.handle("GET /v1/status", 0, s.status)

	s.handle("GET /v1/servers", read, s.listServers)
	s.handle("POST /v1/servers", write, s.addServer)
	s.handle("GET /v1/servers/{ref}", read, s.getServer)
	s.handle("PATCH /v1/servers/{ref}", write, s.renameServer)
	s.handle("POST /v1/servers/{ref}/decommission", write, s.decommissionServer)
	s.handle("GET /v1/servers/{ref}/sites", read, s.serverSites)
	s.handle("POST /v1/servers/{ref}/import", write, s.importSites)

	s.handle("GET /v1/domains", read, s.listDomains)
	s.handle("POST /v1/domains", write, s.addDomain)
	s.handle("GET /v1/domains/{name}", read, s.getDomain)
	s.handle("PUT /v1/domains/{name}/servers", write, s.assignDomain)
	s.handle("PATCH /v1/domains/{name}", write, s.setDomain)
	s.handle("DELETE /v1/domains/{name}", write, s.removeDomain)

	s.handle("GET /v1/events", read, s.events)

	s.handle("GET /v1/plan", read, s.getPlan)
	s.handle("PUT /v1/plan", write, s.setPlan)

	s.mux.HandleFunc("/", s.unmatched)
}

// handle registers fn under pattern behind authentication and, for writes,
// forwarding to the leader.
func (s *server) handle(pattern string, opts int, fn http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if opts&public == 0 && !s.authorize(w, r) {
			return
		}
		if opts&write != 0 && !s.b.IsLeader() {
			s.forward(w, r)
			return
		}
		if opts&read != 0 && !s.b.IsLeader() && !s.serveLocally(w, r) {
			s.forward(w, r)
			return
		}
		fn(w, r)
	})
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// serveLocally decides whether a follower answers a read from its own copy:
// when the client asked for it (?stale=true), when the request was already
// forwarded, or when no leader is known — then the answer is marked with
// HeaderStale, so a read keeps working while the cluster elects or has lost
// its majority. Otherwise the read goes to the leader, so a client reads
// its own writes whichever control node it talks to.
func (s *server) serveLocally(w http.ResponseWriter, r *http.Request) bool {
	if v := r.URL.Query().Get("stale"); v != "" && v != "0" && v != "false" {
		w.Header().Set(HeaderStale, "true")
		return true
	}
	if r.Header.Get(HeaderForwarded) != "" {
		w.Header().Set(HeaderStale, "true")
		return true
	}
	if api, err := s.b.LeaderAPI(); err != nil || api == "" {
		w.Header().Set(HeaderStale, "true")
		return true
	}
	return false
}

// probeMethods are tried to tell "wrong method" from "no such path".
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// unmatched answers requests no route matched: 405 with Allow when the path
// exists under another method, else 404. Both need the admin token except on
// the public paths, so the API's shape is not shown to strangers.
func (s *server) unmatched(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p != "/v1/health" && p != "/v1/join" && !s.authorize(w, r) {
		return
	}
	var allow []string
	for _, m := range probeMethods {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, &state.Error{Code: CodeMethod, Message: fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))})
		return
	}
	writeError(w, &state.Error{Code: state.CodeNotFound, Message: fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path)})
}

// authorize checks the admin token and answers 401 when it is missing or
// wrong.
func (s *server) authorize(w http.ResponseWriter, r *http.Request) bool {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, token, _ := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	var msg string
	switch {
	case h == "":
		msg = "admin token required: set LUMOS_ADMIN_TOKEN (sent as Authorization: Bearer <token>)"
	case !strings.EqualFold(scheme, "Bearer") || token == "":
		msg = "malformed Authorization header: want Bearer <admin token>; set LUMOS_ADMIN_TOKEN"
	case !state.HashesEqual(state.HashToken(token), s.cfg.AdminTokenHash):
		msg = "admin token is not valid: check LUMOS_ADMIN_TOKEN"
	default:
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="lumos"`)
	writeError(w, &state.Error{Code: state.CodeUnauthorized, Message: msg})
	return false
}

// remoteIP is the address the request came from.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientIP is the address of the client: the peer, or, when a control node
// forwarded the request, the client address it recorded. Forwarding headers
// are trusted only from control nodes known to gossip.
func (s *server) clientIP(r *http.Request) string {
	peer := remoteIP(r)
	if r.Header.Get(HeaderForwarded) == "" {
		return peer
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 || !s.isControlPeer(peer) {
		return peer
	}
	parts := strings.Split(xff[len(xff)-1], ",")
	client := strings.TrimSpace(parts[len(parts)-1])
	if _, err := netip.ParseAddr(client); err != nil {
		return peer
	}
	return client
}

// isControlPeer reports whether ip belongs to a live control node.
func (s *server) isControlPeer(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	same := func(s string) bool {
		b, err := netip.ParseAddr(s)
		return err == nil && b.Unmap() == a
	}
	for _, m := range s.b.Members() {
		if !m.Meta.Control || (m.State != mesh.StateAlive && m.State != mesh.StateSuspect) {
			continue
		}
		if same(m.Addr) || same(m.Meta.Addr) {
			return true
		}
	}
	return false
}

// read runs fn on the local state together with the gossip view.
func (s *server) read(fn func(st *state.State, mi memberIndex, now time.Time)) {
	mi := indexMembers(s.b.Members())
	now := s.b.Now()
	s.b.View(func(st *state.State) { fn(st, mi, now) })
}

// commit builds a command from the current state, dry-runs it on a clone
// and, if it passes, commits it through the backend. On failure it answers
// the request and returns false.
func (s *server) commit(w http.ResponseWriter, r *http.Request, build func(st *state.State) (any, error)) (any, bool) {
	now := s.b.Now()
	var (
		cmd *state.Command
		err error
	)
	s.b.View(func(st *state.State) {
		var payload any
		if payload, err = build(st); err != nil {
			return
		}
		if cmd, err = state.NewCommand(now, payload); err != nil {
			return
		}
		_, err = st.Clone().Apply(st.Index+1, cmd)
	})
	if err != nil {
		s.writeErr(w, r, err)
		return nil, false
	}
	res, err := s.b.Apply(r.Context(), cmd)
	if err != nil {
		s.writeErr(w, r, err)
		return nil, false
	}
	s.log.Debug("committed", "type", cmd.Type, "remote", remoteIP(r), "forwarded_by", r.Header.Get(HeaderForwarded))
	return res, true
}

// resolveServers turns server references (IDs or names) into IDs.
func resolveServers(st *state.State, refs []string) ([]string, error) {
	ids := make([]string, 0, len(refs))
	for _, ref := range refs {
		sv, err := st.FindServer(ref)
		if err != nil {
			var se *state.Error
			if errors.As(err, &se) {
				e := *se
				e.Field = "servers"
				return nil, &e
			}
			return nil, err
		}
		ids = append(ids, sv.ID)
	}
	return ids, nil
}
