package haproxy

// Modes of a site, as in the replicated state.
const (
	ModeHTTP = "http" // reverse proxy routed by Host header
	ModeTCP  = "tcp"  // TLS passthrough routed by SNI
)

// Site is one domain as HAProxy serves it.
type Site struct {
	Domain  string   // normalized lower-case name
	Mode    string   // ModeHTTP or ModeTCP
	Origins []string // IP:PORT, in order
}

// Spec is everything a shield's HAProxy configuration is rendered from.
type Spec struct {
	// Dir is the absolute directory lumos owns for HAProxy: the rendered
	// configuration, map files, sockets and pid file live in it.
	Dir string
	// ListenHTTP and ListenTLS are the IP:PORT HAProxy serves HTTP and TLS
	// passthrough on. ListenTLS may be empty (no TLS frontend).
	ListenHTTP string
	ListenTLS  string
	// Sites are the domains assigned to this shield, sorted by Domain.
	Sites []Site
}

// Rendered is a configuration ready to validate and apply.
type Rendered struct {
	// Config is the haproxy.cfg text.
	Config []byte
	// Maps holds the map files by base name (HostsMap, SNIMap); every
	// line is "key value".
	Maps map[string][]byte
	// Backends holds each backend section's text by backend name; Config
	// contains exactly these sections. The sites' backends are named
	// BackendName(domain); BackendUnknownHost, BackendUnknownSNI and the
	// spare backends (SpareBackendName) are always there. Each text
	// starts with the blank line before its section, so Config is exactly
	// Base followed by the sites' backends in Spec.Sites order.
	Backends map[string]string
	// Base is Config without the backend sections of sites (it keeps
	// the default and spare backends); two renders with the same Base
	// differ only in backends and map entries.
	Base string
	// Hash identifies the whole rendering (config and maps).
	Hash string
}

// File names inside Spec.Dir.
const (
	ConfigFile   = "haproxy.cfg"
	HostsMap     = "hosts.map" // HTTP: host -> backend
	SNIMap       = "sni.map"   // TLS passthrough: SNI -> backend
	MasterSocket = "master.sock"
	StatsSocket  = "stats.sock"
	PIDFile      = "haproxy.pid"
)
