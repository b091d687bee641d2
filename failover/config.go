package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Errors.
var (
	// ErrConfig is wrapped by every Config.Validate error.
	ErrConfig = errors.New("failover: invalid config")
)

// Defaults of Config.
const (
	DefaultSweepInterval = 2 * time.Second
	DefaultRecoveryHold  = 10 * time.Second
	DefaultStaleAfter    = 20 * time.Second
	DefaultFlapLimit     = 3
	DefaultFlapWindow    = 10 * time.Minute
	DefaultFlapHold      = 5 * time.Minute
	DefaultDNSTimeout    = 15 * time.Second
	DefaultRetryMin      = time.Second
	DefaultRetryMax      = time.Minute
)

// Provider is an external DNS provider (the built-in DNS server needs none:
// it answers from the replicated state).
type Provider interface {
	// Name is the provider's name as domains name it (state.DNSCloudflare).
	Name() string
	// Set makes domain's A record point at ip with ttl. It is idempotent and
	// reports whether it wrote anything.
	Set(ctx context.Context, domain, ip string, ttl int) (changed bool, err error)
}

// Config configures the controller. Start from DefaultConfig.
type Config struct {
	// SweepInterval is the safety-net re-check; gossip events and state
	// changes are handled at once.
	SweepInterval time.Duration
	// RecoveryHold is how long a down shield must stay healthy before it is
	// up again (and its domains move back to it).
	RecoveryHold time.Duration
	// StaleAfter marks a shield down when gossip says it is alive but its
	// heartbeat has not moved for this long (0 disables).
	StaleAfter time.Duration
	// FlapLimit and FlapWindow: a shield that goes down more than FlapLimit
	// times in FlapWindow is held down until it has stayed healthy for
	// FlapHold (0 FlapLimit disables damping).
	FlapLimit  int
	FlapWindow time.Duration
	FlapHold   time.Duration

	// Providers are the external DNS providers by name.
	Providers map[string]Provider
	// DNSTimeout bounds one provider call; RetryMin/RetryMax bound the
	// backoff of a domain whose record could not be written.
	DNSTimeout         time.Duration
	RetryMin, RetryMax time.Duration

	// Notify, when set, runs on the leader next to the controller (the
	// notification dispatcher); it returns when ctx is done.
	Notify func(ctx context.Context)

	Metrics *Metrics
	Logger  *slog.Logger
}

// DefaultConfig returns the production defaults.
func DefaultConfig() *Config {
	return &Config{
		SweepInterval: DefaultSweepInterval,
		RecoveryHold:  DefaultRecoveryHold,
		StaleAfter:    DefaultStaleAfter,
		FlapLimit:     DefaultFlapLimit,
		FlapWindow:    DefaultFlapWindow,
		FlapHold:      DefaultFlapHold,
		DNSTimeout:    DefaultDNSTimeout,
		RetryMin:      DefaultRetryMin,
		RetryMax:      DefaultRetryMax,
	}
}

// Validate fills zero fields with defaults and checks the rest.
func (c *Config) Validate() error {
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.DNSTimeout == 0 {
		c.DNSTimeout = DefaultDNSTimeout
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.FlapWindow == 0 {
		c.FlapWindow = DefaultFlapWindow
	}
	for name, d := range map[string]time.Duration{
		"sweep interval": c.SweepInterval, "recovery hold": c.RecoveryHold, "stale-after": c.StaleAfter,
		"flap window": c.FlapWindow, "flap hold": c.FlapHold, "dns timeout": c.DNSTimeout,
		"retry min": c.RetryMin, "retry max": c.RetryMax,
	} {
		if d < 0 {
			return fmt.Errorf("%w: %s must not be negative", ErrConfig, name)
		}
	}
	if c.SweepInterval < 100*time.Millisecond {
		return fmt.Errorf("%w: sweep interval %s is below 100ms", ErrConfig, c.SweepInterval)
	}
	if c.FlapLimit < 0 {
		return fmt.Errorf("%w: flap limit must not be negative", ErrConfig)
	}
	if c.RetryMax < c.RetryMin {
		return fmt.Errorf("%w: retry max %s is below retry min %s", ErrConfig, c.RetryMax, c.RetryMin)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
