package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lumos-mesh/lumos/failover"
	"github.com/lumos-mesh/lumos/failover/cloudflare"
	"github.com/lumos-mesh/lumos/failover/notify"
	"github.com/lumos-mesh/lumos/node"
	"github.com/lumos-mesh/lumos/state"
)

// failoverFlags are a control node's failover, DNS and notification
// settings. Secrets come from files (or the environment) and stay on the
// node: they never enter the replicated log or the logs.
type failoverFlags struct {
	dnsListen                                  string
	cloudflareTokenFile, cloudflareAPIURL      string
	webhooks                                   []string
	webhookSecretFile                          string
	smtpAddr, smtpFrom, smtpUser, smtpPassFile string
	notifyEmails                               []string
	recoveryHold, sweepInterval, staleAfter    time.Duration
	flapLimit                                  int
	flapWindow, flapHold                       time.Duration
}

func (f *failoverFlags) register(cmd *cobra.Command, dnsDefault string) {
	fl := cmd.Flags()
	d := failover.DefaultConfig()
	fl.StringVar(&f.dnsListen, "dns-listen", dnsDefault, "IP:PORT the built-in authoritative DNS server listens on, UDP and TCP (control nodes; empty: none)")
	fl.StringVar(&f.cloudflareTokenFile, "cloudflare-token-file", "", "file holding the Cloudflare API token (Zone:DNS:Edit); or set CLOUDFLARE_API_TOKEN")
	fl.StringVar(&f.cloudflareAPIURL, "cloudflare-api-url", "", "Cloudflare API base URL (default: Cloudflare's own; for tests)")
	fl.StringArrayVar(&f.webhooks, "webhook", nil, "`URL` to POST events to as JSON (repeatable)")
	fl.StringVar(&f.webhookSecretFile, "webhook-secret-file", "", "file holding the secret webhooks are signed with (X-Lumos-Signature: sha256=HMAC)")
	fl.StringVar(&f.smtpAddr, "smtp-addr", "", "SMTP server HOST:PORT for email notifications (STARTTLS required)")
	fl.StringVar(&f.smtpFrom, "smtp-from", "", "sender address of notification emails")
	fl.StringVar(&f.smtpUser, "smtp-username", "", "SMTP user name (AUTH PLAIN after STARTTLS)")
	fl.StringVar(&f.smtpPassFile, "smtp-password-file", "", "file holding the SMTP password")
	fl.StringArrayVar(&f.notifyEmails, "notify-email", nil, "`ADDRESS` to email events to (repeatable)")
	fl.DurationVar(&f.recoveryHold, "recovery-hold", d.RecoveryHold, "how long a recovered shield must stay healthy before domains move back to it")
	fl.DurationVar(&f.sweepInterval, "sweep-interval", d.SweepInterval, "how often the leader re-checks every domain (gossip events act at once)")
	fl.DurationVar(&f.staleAfter, "stale-after", d.StaleAfter, "a shield alive in gossip whose heartbeat has not moved for this long is down (0: off)")
	fl.IntVar(&f.flapLimit, "flap-limit", d.FlapLimit, "a shield down more than this many times in --flap-window is held down until stable (0: off)")
	fl.DurationVar(&f.flapWindow, "flap-window", d.FlapWindow, "window for --flap-limit")
	fl.DurationVar(&f.flapHold, "flap-hold", d.FlapHold, "how long a flapping shield must stay healthy before domains move back to it")
}

// readSecret reads a secret file (trimmed); the error names the flag, never
// the content.
func readSecret(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("--%s %s is empty", flag, path)
	}
	return s, nil
}

// apply puts the failover settings into a control node's config.
func (f *failoverFlags) apply(cfg *node.Config) error {
	fc := failover.DefaultConfig()
	fc.RecoveryHold, fc.SweepInterval, fc.StaleAfter = f.recoveryHold, f.sweepInterval, f.staleAfter
	fc.FlapLimit, fc.FlapWindow, fc.FlapHold = f.flapLimit, f.flapWindow, f.flapHold
	if err := fc.Validate(); err != nil {
		return err
	}
	token := strings.TrimSpace(os.Getenv("CLOUDFLARE_API_TOKEN"))
	if f.cloudflareTokenFile != "" {
		t, err := readSecret("cloudflare-token-file", f.cloudflareTokenFile)
		if err != nil {
			return err
		}
		token = t
	}
	if token != "" {
		p, err := cloudflare.New(cloudflare.Config{Token: token, BaseURL: f.cloudflareAPIURL, Logger: cfg.Logger.With("subsystem", "cloudflare")})
		if err != nil {
			return fmt.Errorf("cloudflare: %w", err)
		}
		fc.Providers = map[string]failover.Provider{state.DNSCloudflare: p}
	} else if f.cloudflareAPIURL != "" {
		return fmt.Errorf("--cloudflare-api-url needs a token: --cloudflare-token-file or CLOUDFLARE_API_TOKEN")
	}
	cfg.Failover = fc
	cfg.DNSListen = f.dnsListen

	var secret []byte
	if f.webhookSecretFile != "" {
		s, err := readSecret("webhook-secret-file", f.webhookSecretFile)
		if err != nil {
			return err
		}
		secret = []byte(s)
	}
	for _, u := range f.webhooks {
		t, err := notify.NewWebhook(notify.WebhookConfig{URL: u, Secret: secret})
		if err != nil {
			return fmt.Errorf("--webhook: %w", err)
		}
		cfg.Notify = append(cfg.Notify, t)
	}
	if len(f.notifyEmails) > 0 {
		if f.smtpAddr == "" || f.smtpFrom == "" {
			return fmt.Errorf("--notify-email needs --smtp-addr and --smtp-from")
		}
		sc := notify.SMTPConfig{Addr: f.smtpAddr, From: f.smtpFrom, Username: f.smtpUser}
		if f.smtpPassFile != "" {
			p, err := readSecret("smtp-password-file", f.smtpPassFile)
			if err != nil {
				return err
			}
			sc.Password = p
		}
		for _, to := range f.notifyEmails {
			t, err := notify.NewEmail(sc, to)
			if err != nil {
				return fmt.Errorf("--notify-email: %w", err)
			}
			cfg.Notify = append(cfg.Notify, t)
		}
	} else if f.smtpAddr != "" {
		return fmt.Errorf("--smtp-addr is set but no --notify-email address is given")
	}
	return nil
}
