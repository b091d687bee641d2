package mesh

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timing profiles accepted in Config.Profile.
const (
	ProfileLAN   = "lan"
	ProfileWAN   = "wan"
	ProfileLocal = "local"

	// minRetransmitMult is the least retransmit multiplier of any profile.
	minRetransmitMult = 8
)

// Defaults applied by DefaultConfig (and by New where a field is left zero,
// for the fields whose zero value is not meaningful).
const (
	DefaultBindAddr    = "0.0.0.0"
	DefaultBindPort    = 7946
	DefaultEventBuffer = 256
)

// MaxNameLength bounds Config.Name: node names travel in every gossip
// message about the node and must fit a UDP packet with room to spare.
const MaxNameLength = 256

// Config configures a Mesh. Start from DefaultConfig.
type Config struct {
	Name           string // unique node name (required)
	BindAddr       string // IP to bind ("" = DefaultBindAddr)
	BindPort       int    // port for TCP and UDP gossip; 0 picks a free port (tests)
	AdvertiseAddr  string // IP announced to peers (optional; default: the bound IP, or a private IP when bound to 0.0.0.0)
	AdvertisePort  int    // port announced to peers (optional; default: the bound port)
	Profile        string // "lan" (default), "wan", "local"
	SecretKey      []byte // KeySize bytes, AES-256-GCM; required unless AllowPlaintext
	AllowPlaintext bool   // accept running without SecretKey (development and tests only)
	Meta           Meta   // initial local metadata
	Logger         *slog.Logger

	// Optional overrides of the profile's timings (zero = profile default).
	ProbeInterval, ProbeTimeout, GossipInterval time.Duration
	SuspicionMult                               int

	// EventBuffer is the per-subscriber channel size (0 = DefaultEventBuffer).
	EventBuffer int
}

// DefaultConfig returns a Config with the production defaults. Name and
// SecretKey must still be set.
func DefaultConfig() *Config {
	return &Config{
		BindAddr:    DefaultBindAddr,
		BindPort:    DefaultBindPort,
		Profile:     ProfileLAN,
		EventBuffer: DefaultEventBuffer,
	}
}

// Validate checks the configuration. Errors wrap ErrInvalidConfig (and
// ErrNoKey or ErrInvalidKey for key problems) and name the offending field.
func (c *Config) Validate() error {
	if c == nil {
		return fmt.Errorf("%w: config is nil", ErrInvalidConfig)
	}
	if c.Name == "" {
		return fmt.Errorf("%w: Name is required", ErrInvalidConfig)
	}
	if len(c.Name) > MaxNameLength {
		return fmt.Errorf("%w: Name is %d bytes, limit %d", ErrInvalidConfig, len(c.Name), MaxNameLength)
	}
	if c.BindAddr != "" && net.ParseIP(c.BindAddr) == nil {
		return fmt.Errorf("%w: BindAddr %q is not an IP address", ErrInvalidConfig, c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return fmt.Errorf("%w: BindPort %d out of range 0-65535", ErrInvalidConfig, c.BindPort)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return fmt.Errorf("%w: AdvertiseAddr %q is not an IP address", ErrInvalidConfig, c.AdvertiseAddr)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return fmt.Errorf("%w: AdvertisePort %d out of range 0-65535", ErrInvalidConfig, c.AdvertisePort)
	}
	switch {
	case len(c.SecretKey) == 0 && !c.AllowPlaintext:
		return fmt.Errorf("%w: SecretKey: %w (set AllowPlaintext only for development)", ErrInvalidConfig, ErrNoKey)
	case len(c.SecretKey) != 0:
		if err := checkKey(c.SecretKey); err != nil {
			return fmt.Errorf("%w: SecretKey: %w", ErrInvalidConfig, err)
		}
	}
	if c.ProbeInterval < 0 {
		return fmt.Errorf("%w: ProbeInterval must not be negative", ErrInvalidConfig)
	}
	if c.ProbeTimeout < 0 {
		return fmt.Errorf("%w: ProbeTimeout must not be negative", ErrInvalidConfig)
	}
	if c.GossipInterval < 0 {
		return fmt.Errorf("%w: GossipInterval must not be negative", ErrInvalidConfig)
	}
	if c.SuspicionMult < 0 {
		return fmt.Errorf("%w: SuspicionMult must not be negative", ErrInvalidConfig)
	}
	if c.EventBuffer < 0 {
		return fmt.Errorf("%w: EventBuffer must not be negative", ErrInvalidConfig)
	}
	mc, err := c.profileConfig()
	if err != nil {
		return err
	}
	if mc.ProbeTimeout >= mc.ProbeInterval {
		return fmt.Errorf("%w: ProbeTimeout (%s) must be shorter than ProbeInterval (%s)",
			ErrInvalidConfig, mc.ProbeTimeout, mc.ProbeInterval)
	}
	if _, err := c.Meta.Encode(); err != nil {
		return fmt.Errorf("%w: Meta: %w", ErrInvalidConfig, err)
	}
	return nil
}

// profileConfig returns memberlist's configuration for the profile with the
// timing overrides applied. Addresses, keys and delegates are set by New.
func (c *Config) profileConfig() (*memberlist.Config, error) {
	var mc *memberlist.Config
	switch c.Profile {
	case "", ProfileLAN:
		mc = memberlist.DefaultLANConfig()
		mc.ProbeInterval = 500 * time.Millisecond
		mc.ProbeTimeout = 250 * time.Millisecond
		mc.GossipInterval = 100 * time.Millisecond
		// A suspect is declared dead after 3 × max(1, log10 n) probe
		// intervals once one other member confirms the suspicion (Lifeguard
		// shortens the timeout from SuspicionMaxTimeoutMult × that as
		// independent confirmations arrive; k = SuspicionMult − 2). A live
		// member refutes a suspicion within one round trip, so a slow
		// shield is suspected now and then but not declared dead; a killed
		// one is dead in about 2 s.
		mc.SuspicionMult = 3
		// Gossip to a dead node for 30 probe intervals so a node wrongly
		// declared dead hears of it and refutes; after that memberlist
		// forgets the node, and dead nodes stop taking gossip fan-out
		// slots in small meshes.
		mc.GossipToTheDeadTime = 15 * time.Second
		mc.PushPullInterval = 10 * time.Second
	case ProfileWAN:
		mc = memberlist.DefaultWANConfig() // GossipToTheDeadTime 60 s = 12 probe intervals
		mc.PushPullInterval = 30 * time.Second
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.GossipInterval = 50 * time.Millisecond
		mc.SuspicionMult = 3
		mc.GossipToTheDeadTime = 5 * time.Second // 25 probe intervals
		mc.PushPullInterval = 2 * time.Second
	default:
		return nil, fmt.Errorf("%w: unknown Profile %q (want %q, %q or %q)",
			ErrInvalidConfig, c.Profile, ProfileLAN, ProfileWAN, ProfileLocal)
	}
	// Metadata (HAProxy health, applied index) travels on alive broadcasts.
	// memberlist retransmits each one RetransmitMult × ⌈log10(n+1)⌉ times,
	// which in a small mesh (2 for the local profile, 4 for LAN) misses a
	// member now and then; that member then learns the change only at the
	// next push-pull. A higher multiplier makes a miss vanishingly rare for
	// the price of a few more small packets per change, and the shorter
	// push-pull intervals above bound the rest.
	if mc.RetransmitMult < minRetransmitMult {
		mc.RetransmitMult = minRetransmitMult
	}
	if c.ProbeInterval > 0 {
		mc.ProbeInterval = c.ProbeInterval
	}
	if c.ProbeTimeout > 0 {
		mc.ProbeTimeout = c.ProbeTimeout
	}
	if c.GossipInterval > 0 {
		mc.GossipInterval = c.GossipInterval
	}
	if c.SuspicionMult > 0 {
		mc.SuspicionMult = c.SuspicionMult
	}
	return mc, nil
}
