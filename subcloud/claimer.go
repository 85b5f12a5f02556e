package subcloud

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// ErrNotEnoughPeers is a Claimer's result when it could not get the peers
// it needs; it has then released every peer it may hold. The error
// returned is a *NotEnoughError.
var ErrNotEnoughPeers = errors.New("subcloud: not enough free peers")

// NotEnoughError says how far a RESERVE got.
type NotEnoughError struct{ N, Got, Tried int }

func (e *NotEnoughError) Error() string {
	return fmt.Sprintf("not enough free peers: RESERVE %d got %d of the %d peers it tried", e.N, e.Got, e.Tried)
}

// Is makes errors.Is(err, ErrNotEnoughPeers) hold.
func (e *NotEnoughError) Is(target error) bool { return target == ErrNotEnoughPeers }

// ClaimerConfig is what a RESERVE asks for.
type ClaimerConfig struct {
	Subcloud string
	// Owner is the reserving peer; Token its secret for this subcloud
	// (random, at least 16 bytes); Key the RESERVE's idempotency key.
	Owner, Token, Key string
	// N is how many peers to hold; AtLeast, if set, accepts fewer (down to
	// AtLeast) once the candidates run out. 0 is all-or-nothing.
	N, AtLeast int
	Lease      time.Duration
	// Since is the subcloud's creation, sent with every claim (Lease.Since):
	// zero for a new subcloud, its first RESERVE's time for a repair or a
	// RESIZE.
	Since time.Time
	// Searches is how many candidate lists the Claimer asks for before it
	// gives up (the first included).
	Searches int
}

// DefaultSearches is how many times an owner looks for candidates.
const DefaultSearches = 5

// State is where a Claimer is.
type State uint8

// The states.
const (
	// NeedCandidates: run a search (the top-k over free peers) and pass
	// its nodes to Candidates — after a random back-off when it is not
	// the first, so that racing owners stop colliding.
	NeedCandidates State = iota + 1
	// Claiming: claims are in flight; deliver their replies to Step.
	Claiming
	// Done: Result is final; send what Outbox still holds (releases).
	Done
)

func (s State) String() string {
	switch s {
	case NeedCandidates:
		return "need-candidates"
	case Claiming:
		return "claiming"
	case Done:
		return "done"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Message is a lease request and the peer it goes to.
type Message struct {
	To  string
	Req Request
}

// Claimer is the owner's side of a RESERVE as a pure state machine: it
// claims candidates in rank order, backfills each refusal from the next
// candidate at once, asks for fresh candidates when a list runs out (a
// peer a rival refused before may be free by then), and ends holding N
// peers — or AtLeast when the searches run out — or nothing: on failure it
// releases every peer it holds or may hold. A claim whose reply never came
// may have been granted; such a peer is claimed again if it comes up
// (a claim with the same token is idempotent) or released at the end, so
// that what the owner reports is exactly what the peers hold once its
// releases are delivered.
//
// It does no I/O and reads no clock; it is not safe for concurrent use.
//
//	c, _ := subcloud.NewClaimer(cfg)
//	for c.State() != subcloud.Done {
//		if c.State() == subcloud.NeedCandidates {
//			c.Candidates(search())             // top-k, best first
//		}
//		for _, m := range c.Outbox() {
//			go send(m)                         // reply → c.Step(m.To, reply, err)
//		}
//		...
//	}
//	send(c.Outbox())                           // the releases
//	members, err := c.Result()
type Claimer struct {
	cfg      ClaimerConfig
	state    State
	searches int
	queue    []string        // this search's candidates, not yet claimed
	pending  map[string]bool // claims in flight
	held     map[string]bool
	// uncertain peers got a claim whose reply was lost: they may hold the
	// lease.
	uncertain map[string]bool
	tried     map[string]bool
	out       []Message
	members   []string
	err       error
}

// NewClaimer starts a RESERVE; its first state is NeedCandidates.
func NewClaimer(cfg ClaimerConfig) (*Claimer, error) {
	if cfg.Searches <= 0 {
		cfg.Searches = DefaultSearches
	}
	c := Claim{Subcloud: cfg.Subcloud, Owner: cfg.Owner, Token: cfg.Token, Key: cfg.Key, For: cfg.Lease}
	switch err := c.valid(); {
	case err != nil:
		return nil, err
	case cfg.N < 1 || cfg.AtLeast < 0 || cfg.AtLeast > cfg.N:
		return nil, fmt.Errorf("%w: RESERVE %d AT LEAST %d", ErrBadClaim, cfg.N, cfg.AtLeast)
	}
	return &Claimer{cfg: cfg, state: NeedCandidates, pending: map[string]bool{}, held: map[string]bool{},
		uncertain: map[string]bool{}, tried: map[string]bool{}}, nil
}

// State is where the Claimer is.
func (c *Claimer) State() State { return c.state }

// Searches is how many candidate lists it has been given.
func (c *Claimer) Searches() int { return c.searches }

// need is how many peers make a success.
func (c *Claimer) need() int {
	if c.cfg.AtLeast > 0 {
		return c.cfg.AtLeast
	}
	return c.cfg.N
}

// Candidates gives the nodes of one search, best first. Peers it holds or
// is claiming are skipped; peers refused before are tried again. A search
// with nothing new in it is the last.
func (c *Claimer) Candidates(nodes []string) {
	if c.state != NeedCandidates {
		return
	}
	c.searches++
	c.queue = c.queue[:0]
	seen := map[string]bool{}
	for _, p := range nodes {
		if !c.held[p] && !c.pending[p] && !seen[p] {
			seen[p] = true
			c.queue = append(c.queue, p)
		}
	}
	if len(c.queue) == 0 {
		c.searches = c.cfg.Searches // nothing new to try: searching again would find the same
	}
	c.state = Claiming
	c.advance()
}

// Step applies the reply to the claim sent to from; err is set when no
// reply came (the transport failed or timed out).
func (c *Claimer) Step(from string, rep Reply, err error) {
	if !c.pending[from] {
		return // not a claim of ours in flight: a duplicate, or late
	}
	delete(c.pending, from)
	switch {
	case err != nil:
		c.uncertain[from] = true
	case rep.OK:
		c.held[from] = true
		delete(c.uncertain, from)
	default:
		// Refused: it does not hold our lease (a peer answers only after
		// persisting, and refuses only what it did not grant).
		delete(c.uncertain, from)
	}
	c.advance()
}

// Lost tells the Claimer that a peer it held is no longer counted (a
// renewal while the RESERVE runs was refused, or its lease lapsed): it is
// not a member, and its place is claimed again from the candidates.
// mayHold says the peer may still hold the lease (it refused the renewal
// for want of a disk, say, and keeps what it granted until it lapses): it
// is then released at the end unless claimed again meanwhile — at once,
// through the Outbox, when the Claimer is already Done (the caller leaves
// it out of Result's members).
func (c *Claimer) Lost(peer string, mayHold bool) {
	if !c.held[peer] {
		return
	}
	delete(c.held, peer)
	switch {
	case mayHold && c.state == Done:
		c.release(map[string]bool{peer: true})
	case mayHold:
		c.uncertain[peer] = true
	}
	if c.state == Claiming {
		c.advance()
	}
}

// Abort ends the RESERVE now (its context ended): it fails, and releases
// every peer it holds or may hold, claims in flight included.
func (c *Claimer) Abort(err error) {
	if c.state == Done {
		return
	}
	for p := range c.pending {
		c.uncertain[p] = true
	}
	clear(c.pending)
	c.fail(err)
}

// advance sends claims while fewer than N are held or in flight, and moves
// on when nothing is in flight.
func (c *Claimer) advance() {
	if c.state != Claiming {
		return
	}
	for len(c.held)+len(c.pending) < c.cfg.N && len(c.queue) > 0 {
		p := c.queue[0]
		c.queue = c.queue[1:]
		c.pending[p], c.tried[p] = true, true
		c.out = append(c.out, Message{To: p, Req: Request{Op: OpClaim, Subcloud: c.cfg.Subcloud, Owner: c.cfg.Owner,
			Token: c.cfg.Token, Key: c.cfg.Key, For: c.cfg.Lease, Since: unixNano(c.cfg.Since)}})
	}
	if len(c.pending) > 0 {
		return
	}
	switch {
	case len(c.held) >= c.cfg.N:
		c.succeed()
	case c.searches < c.cfg.Searches:
		c.state = NeedCandidates
	case len(c.held) >= c.need():
		c.succeed()
	default:
		c.fail(&NotEnoughError{N: c.cfg.N, Got: len(c.held), Tried: len(c.tried)})
	}
}

func (c *Claimer) succeed() {
	c.members = sortedKeys(c.held)
	c.release(c.uncertain)
	c.state = Done
}

func (c *Claimer) fail(err error) {
	c.release(c.held)
	c.release(c.uncertain)
	clear(c.held)
	c.err = err
	c.state = Done
}

func (c *Claimer) release(peers map[string]bool) {
	for _, p := range sortedKeys(peers) {
		c.out = append(c.out, Message{To: p, Req: Request{Op: OpRelease, Subcloud: c.cfg.Subcloud, Token: c.cfg.Token}})
	}
	clear(peers)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Outbox returns the requests to send and forgets them. Claims' replies go
// to Step; releases need no reply.
func (c *Claimer) Outbox() []Message {
	out := c.out
	c.out = nil
	return out
}

// Result is the RESERVE's outcome once Done: the members (sorted), or
// ErrNotEnoughPeers (or Abort's error) with none.
func (c *Claimer) Result() ([]string, error) {
	if c.state != Done {
		return nil, errors.New("subcloud: the claim is still running")
	}
	return c.members, c.err
}

// Tried is how many distinct peers it sent a claim to.
func (c *Claimer) Tried() int { return len(c.tried) }

// unixNano is t on the wire: 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
