package notify

import "errors"

// Errors returned by this package; match them with errors.Is.
var (
	// ErrInvalidConfig reports a bad target or dispatcher configuration.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrStatus reports a webhook answer outside 2xx.
	ErrStatus = errors.New("unexpected response status")
	// ErrNoStartTLS reports an SMTP server that does not offer STARTTLS;
	// nothing, credentials least of all, is sent to it.
	ErrNoStartTLS = errors.New("smtp server does not offer STARTTLS")
	// ErrNoAuthPlain reports an SMTP server that does not offer AUTH PLAIN
	// when a username is configured.
	ErrNoAuthPlain = errors.New("smtp server does not offer AUTH PLAIN")
	// ErrRunning reports a Dispatcher that is already running.
	ErrRunning = errors.New("dispatcher already running")
	// ErrClosed reports a Dispatcher that has been closed.
	ErrClosed = errors.New("dispatcher closed")
)
