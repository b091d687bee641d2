package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/lumos-mesh/lumos/api"
	"github.com/lumos-mesh/lumos/mesh"
	"github.com/lumos-mesh/lumos/state"
)

// Errors of the dashboard package.
var (
	// ErrConfig is wrapped by New for a bad Config.
	ErrConfig = errors.New("dashboard: bad config")
)

// Defaults of Config.
const (
	DefaultPrefix  = "/ui"
	DefaultRefresh = 5 * time.Second
	// DefaultEventLimit is how many events the events page shows unless
	// ?limit= asks for another number (at most state.MaxEvents).
	DefaultEventLimit = 200
)

// Source is what the dashboard reads. *node.Node implements it.
type Source interface {
	// View gives fn read-only access to the replicated state; fn must not
	// keep pointers into st after it returns.
	View(fn func(st *state.State))
	// Members is the gossip view.
	Members() []mesh.Member
	// Status is the Raft part of the status (see api.Backend.Status).
	Status() api.StatusResponse
	// Now is the node's clock.
	Now() time.Time
}

// Config configures the dashboard.
type Config struct {
	// Source is the node the dashboard shows. Required.
	Source Source
	// AdminTokenHash is the hex SHA-256 of the admin token
	// (state.HashToken). Required.
	AdminTokenHash string
	// ReadTokenHashes are the hashes of optional read-only tokens.
	ReadTokenHashes []string
	// Prefix is the URL path the dashboard is mounted at (default "/ui").
	Prefix string
	// ClusterName is shown in the header and page titles (default "lumos").
	ClusterName string
	// Refresh is how often an open page refreshes itself (default 5s).
	Refresh time.Duration
	// Logger receives refused requests and rendering failures (default:
	// discard). Tokens are never logged.
	Logger *slog.Logger
}

// Validate fills in defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Source == nil {
		return fmt.Errorf("%w: no source", ErrConfig)
	}
	h, err := normHash(c.AdminTokenHash)
	if err != nil {
		return fmt.Errorf("%w: admin token hash: %w", ErrConfig, err)
	}
	c.AdminTokenHash = h
	reads := make([]string, 0, len(c.ReadTokenHashes))
	for i, r := range c.ReadTokenHashes {
		h, err := normHash(r)
		if err != nil {
			return fmt.Errorf("%w: read-only token hash %d: %w", ErrConfig, i+1, err)
		}
		reads = append(reads, h)
	}
	c.ReadTokenHashes = reads
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if c.Prefix == "" || !strings.HasPrefix(c.Prefix, "/") || path.Clean(c.Prefix) != c.Prefix || strings.ContainsAny(c.Prefix, "?#%\"'<> ") {
		return fmt.Errorf("%w: prefix %q must be a clean absolute path like /ui (not the root)", ErrConfig, c.Prefix)
	}
	if strings.TrimSpace(c.ClusterName) == "" {
		c.ClusterName = "lumos"
	}
	c.ClusterName = strings.TrimSpace(c.ClusterName)
	if c.Refresh < 0 {
		return fmt.Errorf("%w: negative refresh interval", ErrConfig)
	}
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func normHash(h string) (string, error) {
	h = strings.ToLower(strings.TrimSpace(h))
	if h == "" {
		return "", errors.New("empty")
	}
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return "", errors.New("want 64 hex characters (SHA-256)")
	}
	return h, nil
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// handler is the dashboard.
type handler struct {
	cfg     Config
	src     Source
	log     *slog.Logger
	pages   map[string]*template.Template
	static  map[string]staticFile
	version string // of the static files, for cache-busting URLs
}

type staticFile struct {
	body  []byte
	ctype string
}

// Page templates: each is rendered inside layout.html.
var pageNames = []string{"overview", "servers", "server", "domains", "domain", "events", "error"}

// New returns the dashboard handler. Mount it at cfg.Prefix and
// cfg.Prefix+"/" without a method in the patterns (see the package
// documentation).
func New(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &handler{cfg: cfg, src: cfg.Source, log: cfg.Logger, pages: map[string]*template.Template{}, static: map[string]staticFile{}}
	sum := sha256.New()
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.static[strings.TrimPrefix(p, "static/")] = staticFile{body: b, ctype: ct}
		sum.Write([]byte(p))
		sum.Write(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard static files: %w", err)
	}
	h.version = hex.EncodeToString(sum.Sum(nil))[:12]
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard templates: %w", err)
	}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	return h, nil
}

// Security headers of every answer.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func setSecurityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "405 method not allowed: the dashboard is read-only", http.StatusMethodNotAllowed)
		return
	}
	if !h.authorized(r) {
		h.log.Debug("dashboard: unauthorized request", "remote", remoteIP(r), "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Basic realm="lumos"`)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "401 unauthorized: sign in with the admin token or a read-only token as the password", http.StatusUnauthorized)
		return
	}
	p := r.URL.Path
	if p == h.cfg.Prefix {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, h.cfg.Prefix+"/", http.StatusFound)
		return
	}
	rest, ok := strings.CutPrefix(p, h.cfg.Prefix+"/")
	if !ok {
		h.notFound(w, r, "no such page")
		return
	}
	rest = strings.TrimSuffix(rest, "/")
	first, tail, _ := strings.Cut(rest, "/")
	switch {
	case rest == "":
		h.overview(w, r)
	case first == "servers" && tail == "":
		h.servers(w, r)
	case first == "servers":
		h.server(w, r, tail)
	case first == "domains" && tail == "":
		h.domains(w, r)
	case first == "domains":
		h.domain(w, r, tail)
	case rest == "events":
		h.events(w, r)
	case first == "static":
		h.serveStatic(w, r, tail)
	default:
		h.notFound(w, r, "no such page")
	}
}

// authorized checks the bearer token or the Basic password (the user name
// is ignored; a token given as the user name with no password counts too)
// against the admin and read-only hashes, in constant time.
func (h *handler) authorized(r *http.Request) bool {
	var token string
	if user, pass, ok := r.BasicAuth(); ok {
		token = pass
		if token == "" {
			token = user
		}
	} else if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		token = v
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return false
	}
	got := state.HashToken(token)
	match := state.HashesEqual(got, h.cfg.AdminTokenHash)
	for _, rh := range h.cfg.ReadTokenHashes {
		// No early exit: the time taken does not tell which hash matched.
		if state.HashesEqual(got, rh) {
			match = true
		}
	}
	return match
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request, name string) {
	f, ok := h.static[name]
	if !ok {
		h.notFound(w, r, "no such file")
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	if r.URL.Query().Get("v") == h.version {
		w.Header().Set("Cache-Control", "private, max-age=86400, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(f.body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(f.body)
}

// render writes a page: the whole body is rendered before anything is
// sent, so a template failure is a clean 500.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	t := h.pages[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		h.log.Error("dashboard: render page", "page", name, "err", err)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "500 internal error: the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	w.Write(buf.Bytes())
}

func (h *handler) notFound(w http.ResponseWriter, r *http.Request, msg string) {
	p := h.newPage("Not found", "")
	p.Content = errorPage{Status: http.StatusNotFound, Message: msg}
	h.render(w, r, http.StatusNotFound, "error", p)
}
