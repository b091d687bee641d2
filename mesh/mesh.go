package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Errors returned by this package. Match them with errors.Is.
var (
	// ErrInvalidConfig is wrapped by every Config.Validate error.
	ErrInvalidConfig = errors.New("mesh: invalid config")
	// ErrNoKey means no gossip key was configured and plaintext is not allowed.
	ErrNoKey = errors.New("mesh: no secret key")
	// ErrInvalidKey means a key is not valid base64 or not KeySize bytes.
	ErrInvalidKey = errors.New("mesh: invalid key")
	// ErrMetaTooLarge means the encoded Meta would exceed MetaMaxSize.
	ErrMetaTooLarge = errors.New("mesh: meta too large")
	// ErrBadMeta means gossiped metadata could not be decoded.
	ErrBadMeta = errors.New("mesh: bad meta")
	// ErrClosed is returned by operations on a closed Mesh.
	ErrClosed = errors.New("mesh: closed")
	// ErrLeft is returned by Join and UpdateMeta after Leave: a node that left
	// cannot come back without a new Mesh.
	ErrLeft = errors.New("mesh: node has left")
	// ErrNoPeers is returned by Join when given no addresses.
	ErrNoPeers = errors.New("mesh: no peers to join")
	// ErrJoin wraps memberlist's error when no peer could be contacted.
	ErrJoin = errors.New("mesh: join failed")
	// ErrPlaintext is returned by the keyring operations on a Mesh running
	// without encryption.
	ErrPlaintext = errors.New("mesh: encryption is not enabled")
)

// State is a member's state as seen by the local node.
type State string

// Member states. memberlist does not expose suspicion, so StateSuspect is
// reserved and not reported at present (see the package documentation).
const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect"
	StateDead    State = "dead"
	StateLeft    State = "left"
)

// Member is a node of the mesh as seen by the local node.
type Member struct {
	Name     string
	Addr     string // gossip IP
	Port     int    // gossip port
	State    State
	Meta     Meta
	LastSeen time.Time // alive/suspect members: time of the call; dead/left: when that was learned
	Since    time.Time // when the member entered its current State
}

// Address returns "IP:PORT" of the member's gossip endpoint.
func (mb Member) Address() string {
	return net.JoinHostPort(mb.Addr, strconv.Itoa(mb.Port))
}

// EventType is the kind of a membership Event.
type EventType string

// Event types.
const (
	EventJoin   EventType = "join"
	EventLeave  EventType = "leave"  // clean leave (memberlist StateLeft)
	EventDead   EventType = "dead"   // failed (memberlist StateDead)
	EventUpdate EventType = "update" // metadata changed
)

// Event reports a change of a member. Member is a snapshot taken when the
// change was learned.
type Event struct {
	Type   EventType
	Member Member
	Time   time.Time
}

// defaultLeaveTimeout is used by Leave when given a timeout <= 0.
const defaultLeaveTimeout = 5 * time.Second

// Mesh is one node's membership in the gossip mesh. Its methods are safe for
// concurrent use.
type Mesh struct {
	name         string
	logger       *slog.Logger
	ml           *memberlist.Memberlist
	keyring      *memberlist.Keyring // nil when running in plaintext
	broadcasts   *memberlist.TransmitLimitedQueue
	updateWait   time.Duration // how long UpdateMeta waits for its broadcast
	departWindow time.Duration // how long a departure may still be reclassified dead → left
	deadGrace    time.Duration // how long an EventDead is held for a late leave intent
	settle       time.Duration // Leave's pause for in-flight gossip to go out
	eventBuffer  int
	localAddr    string // advertised IP:PORT, fixed at creation

	// lifeMu serialises the operations that must not race with each other
	// or with shutdown: UpdateMeta, Leave and the shutdown step of Close
	// (memberlist panics on Leave after Shutdown, and UpdateNode after Leave
	// would announce the node alive again).
	lifeMu sync.Mutex
	closed atomic.Bool
	left   atomic.Bool

	metaMu    sync.RWMutex
	localMeta Meta
	metaBytes []byte

	// mu guards the member table and the event queue. It is taken inside
	// memberlist callbacks (some under memberlist's own lock), so nothing
	// may call into memberlist while holding it.
	mu           sync.Mutex
	members      map[string]*memberEntry
	queue        []queuedEvent
	seq          uint64        // number of events emitted so far
	pending      int           // members with a held EventDead
	dispatchDone bool          // the dispatcher has exited: emit nothing more
	wake         chan struct{} // capacity 1: the dispatcher has work

	subMu      sync.Mutex // taken before mu when both are needed
	subs       map[uint64]*subscriber
	nextSub    uint64
	subsClosed bool
	dropped    atomic.Uint64

	closeOnce sync.Once
	closeErr  error
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	stopped   chan struct{} // closed when the dispatcher has exited
}

type memberEntry struct {
	member      Member
	leaving     bool          // announced a leave intent since it last joined
	pendingDead *pendingEvent // EventDead held during the grace period
}

// New validates cfg, starts memberlist listening on the configured address
// and starts the event dispatcher. The Mesh is alone until Join is called
// (or until another node joins it).
func New(cfg *Config) (*Mesh, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := *cfg // the caller may reuse cfg
	mc, err := c.profileConfig()
	if err != nil {
		return nil, err
	}
	fitted, metaBytes, err := c.Meta.fit()
	if err != nil {
		return nil, err
	}

	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	eventBuffer := c.EventBuffer
	if eventBuffer == 0 {
		eventBuffer = DefaultEventBuffer
	}

	ctx, cancel := context.WithCancel(context.Background())
	m := &Mesh{
		name:   c.Name,
		logger: logger,
		// memberlist's UpdateNode queues the broadcast before it waits, and
		// with a higher retransmit count the wait would last until every
		// retransmission is sent; nothing here needs that, and callers
		// (the shield's config loop) must not be held up by gossip.
		updateWait:   time.Millisecond,
		departWindow: mc.GossipToTheDeadTime,
		deadGrace:    mc.GossipInterval,
		settle:       2 * mc.GossipInterval,
		eventBuffer:  eventBuffer,
		localMeta:    fitted,
		metaBytes:    metaBytes,
		members:      make(map[string]*memberEntry),
		wake:         make(chan struct{}, 1),
		subs:         make(map[uint64]*subscriber),
		cancel:       cancel,
		stopped:      make(chan struct{}),
	}
	m.broadcasts = &memberlist.TransmitLimitedQueue{
		NumNodes:       m.numAlive,
		RetransmitMult: mc.RetransmitMult,
	}

	mc.Name = c.Name
	mc.BindAddr = c.BindAddr
	if mc.BindAddr == "" {
		mc.BindAddr = DefaultBindAddr
	}
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = c.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort // memberlist replaces it when BindPort is 0
	}
	if len(c.SecretKey) > 0 {
		key := slices.Clone(c.SecretKey)
		kr, err := memberlist.NewKeyring(nil, key)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%w: SecretKey: %w", ErrInvalidConfig, err)
		}
		mc.Keyring = kr
		m.keyring = kr
	}
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.Delegate = (*delegate)(m)
	mc.Events = (*eventDelegate)(m)
	mc.Logger = newStdLogger(logger.With("component", "memberlist"))
	mc.LogOutput = nil

	ml, err := memberlist.Create(mc)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start memberlist: %w", err)
	}
	m.ml = ml
	// memberlist mutates its local node under its own lock, so read it
	// once here rather than on every call.
	ln := ml.LocalNode()
	m.localAddr = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))

	m.wg.Add(1)
	go m.dispatch(ctx)
	m.logger.Debug("mesh started", "name", m.name, "addr", m.LocalAddr(),
		"profile", orDefault(c.Profile, ProfileLAN), "encrypted", m.keyring != nil)
	return m, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Join contacts the given peers ("IP:PORT") and merges their view of the
// mesh. It returns how many peers were contacted; the error (wrapping
// ErrJoin) is non-nil only if none could be.
func (m *Mesh) Join(peers []string) (int, error) {
	if m.closed.Load() {
		return 0, ErrClosed
	}
	if m.left.Load() {
		return 0, ErrLeft
	}
	var addrs []string
	for _, p := range peers {
		if p = strings.TrimSpace(p); p != "" {
			addrs = append(addrs, p)
		}
	}
	if len(addrs) == 0 {
		return 0, ErrNoPeers
	}
	n, err := m.ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("%w: %w", ErrJoin, err)
	}
	return n, nil
}

// LocalName returns the local node's name.
func (m *Mesh) LocalName() string { return m.name }

// LocalMeta returns the local node's current metadata.
func (m *Mesh) LocalMeta() Meta {
	m.metaMu.RLock()
	defer m.metaMu.RUnlock()
	return m.localMeta
}

// UpdateMeta applies fn to a copy of the local metadata, encodes it and
// gossips it. If the result does not fit (ErrMetaTooLarge) nothing changes.
// HealthError is shortened to fit, as in Meta.Encode. UpdateMeta does not
// wait for the gossip to go out: the update is queued and retransmitted
// from memberlist's gossip loop. An error always means nothing changed.
func (m *Mesh) UpdateMeta(fn func(*Meta)) error {
	if fn == nil {
		return errors.New("mesh: UpdateMeta: nil func")
	}
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed.Load() {
		return ErrClosed
	}
	if m.left.Load() {
		return ErrLeft
	}
	next := m.LocalMeta()
	fn(&next)
	fitted, b, err := next.fit()
	if err != nil {
		return fmt.Errorf("update meta: %w", err)
	}
	m.metaMu.Lock()
	m.localMeta, m.metaBytes = fitted, b
	m.metaMu.Unlock()
	// The only error is the wait running out; the update stays queued.
	_ = m.ml.UpdateNode(m.updateWait)
	return nil
}

// Members returns every member known, including the local node and dead or
// left members not yet forgotten, sorted by name.
func (m *Mesh) Members() []Member {
	return m.snapshot(func(Member) bool { return true })
}

// AliveMembers returns the alive (and suspect) members, including the local
// node, sorted by name.
func (m *Mesh) AliveMembers() []Member {
	return m.snapshot(func(mb Member) bool { return mb.State == StateAlive || mb.State == StateSuspect })
}

// Member returns the named member, if known.
func (m *Mesh) Member(name string) (Member, bool) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[name]
	if !ok {
		return Member{}, false
	}
	return e.view(now), true
}

func (m *Mesh) snapshot(keep func(Member) bool) []Member {
	now := time.Now()
	m.mu.Lock()
	out := make([]Member, 0, len(m.members))
	for _, e := range m.members {
		if mb := e.view(now); keep(mb) {
			out = append(out, mb)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// view returns the member as callers see it at time now.
func (e *memberEntry) view(now time.Time) Member {
	mb := e.member
	if mb.State == StateAlive || mb.State == StateSuspect {
		mb.LastSeen = now
	}
	return mb
}

// ForgetMember drops a dead or left member from the local table (for example
// after a decommission grace period). Alive members are kept: they would be
// re-learned at once anyway. No event is emitted.
func (m *Mesh) ForgetMember(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[name]
	if !ok || name == m.name {
		return
	}
	if e.member.State == StateDead || e.member.State == StateLeft {
		m.dropDeadLocked(e)
		delete(m.members, name)
	}
}

// LocalAddr returns the "IP:PORT" peers use to reach this node: the
// advertised address and the port actually bound (useful with BindPort 0).
func (m *Mesh) LocalAddr() string { return m.localAddr }

// Leave announces a graceful departure: it gossips a leave intent, then
// memberlist's leave message, waiting at most timeout overall (<= 0 means 5
// s). Peers report the node with EventLeave. The node keeps gossiping until
// Close, which should follow. Calling Leave again is a no-op.
func (m *Mesh) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = defaultLeaveTimeout
	}
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed.Load() {
		return ErrClosed
	}
	if m.left.Swap(true) {
		return nil
	}
	deadline := time.Now().Add(timeout)

	m.mu.Lock()
	if e, ok := m.members[m.name]; ok {
		e.leaving = true
	}
	m.mu.Unlock()

	if m.numAlive() > 1 {
		// memberlist marks a broadcast finished when it hands the last
		// copy to the transport, not when the packet is out: pause a
		// little after each so the intent goes out before the leave
		// message, and the leave message before the caller's Close.
		done := make(chan struct{})
		m.broadcasts.QueueBroadcast(newIntentBroadcast(m.name, done))
		if !waitUntil(done, time.Now().Add(timeout/2)) {
			m.logger.Warn("leave intent not fully gossiped before timeout; leaving anyway")
		}
		waitUntil(nil, minTime(time.Now().Add(m.settle), deadline))
	}
	wait := max(time.Until(deadline), time.Millisecond) // memberlist waits forever on 0
	if err := m.ml.Leave(wait); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	waitUntil(nil, minTime(time.Now().Add(m.settle), deadline))
	return nil
}

// waitUntil waits until done is closed (nil: never) or the deadline passes,
// and reports whether done was closed.
func waitUntil(done <-chan struct{}, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Close shuts memberlist down without leaving (peers detect the node as
// dead unless Leave was called first), stops the dispatcher and closes every
// subscriber channel. Events not yet dispatched are delivered first. Close
// waits for an in-flight Leave or UpdateMeta to finish. It is safe to call
// more than once; ctx bounds the wait for the dispatcher.
func (m *Mesh) Close(ctx context.Context) error {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		m.lifeMu.Lock()
		if err := m.ml.Shutdown(); err != nil {
			m.closeErr = fmt.Errorf("shutdown memberlist: %w", err)
		}
		m.lifeMu.Unlock()
		m.cancel()
	})
	select {
	case <-m.stopped:
	case <-ctx.Done():
		return fmt.Errorf("close mesh: %w", ctx.Err())
	}
	m.wg.Wait()
	return m.closeErr
}

// InstallKey adds key to the keyring; it is accepted for decryption but not
// yet used for encryption. Rotation: InstallKey on every node, then UseKey,
// then RemoveKey of the old key.
func (m *Mesh) InstallKey(key []byte) error {
	if m.keyring == nil {
		return ErrPlaintext
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if err := m.keyring.AddKey(slices.Clone(key)); err != nil {
		return fmt.Errorf("install key: %w", err)
	}
	return nil
}

// UseKey makes an installed key the one used to encrypt outgoing gossip.
func (m *Mesh) UseKey(key []byte) error {
	if m.keyring == nil {
		return ErrPlaintext
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if err := m.keyring.UseKey(key); err != nil {
		return fmt.Errorf("use key: %w", err)
	}
	return nil
}

// RemoveKey removes a key from the keyring. The key in use cannot be removed.
func (m *Mesh) RemoveKey(key []byte) error {
	if m.keyring == nil {
		return ErrPlaintext
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if err := m.keyring.RemoveKey(key); err != nil {
		return fmt.Errorf("remove key: %w", err)
	}
	return nil
}

// numAlive counts alive members in the local table, the local node included.
func (m *Mesh) numAlive() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.members {
		if e.member.State == StateAlive || e.member.State == StateSuspect {
			n++
		}
	}
	return n
}
