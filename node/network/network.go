package network

import (
	"errors"
	"fmt"
	"time"

	"github.com/peerq/peerq/identity"
)

// Member is a live peerq peer as the membership knows it.
type Member struct {
	Name     string
	Addr     string // gossip address, host:port
	Exchange string // exchange address
	// Tags are its user tags: read them, never write them (members that
	// show the same share one map).
	Tags map[string]string
	// Key is the member's public key as this peer pinned it (the first
	// one it saw for the name while the member was alive: a change while
	// it stays alive is refused); zero if it shows none. Boot is its
	// incarnation (new at every start).
	Key  identity.Public
	Boot uint64
}

// The statuses of a member, as Serf names them: a failed or left member
// is kept (and shown) until Serf reaps it.
const (
	StatusAlive   = "alive"
	StatusLeaving = "leaving"
	StatusLeft    = "left"
	StatusFailed  = "failed"
)

// Known is a member as this peer's membership knows it: alive, or failed
// or left and not reaped yet.
type Known struct {
	Member
	Status string // StatusAlive, StatusLeaving, StatusLeft or StatusFailed
}

// EventKind says what happened to members.
type EventKind int

// The kinds of member event.
const (
	MemberJoined  EventKind = iota + 1
	MemberLeft              // left gracefully
	MemberFailed            // declared dead by the failure detector
	MemberUpdated           // tags changed
	// MemberConflict: a member's tags showed another identity while it
	// was alive; the pinned one is kept.
	MemberConflict
)

// Event is a change in the membership.
type Event struct {
	Kind    EventKind
	Members []string
	// Info is each of Members as the event showed it (its address and
	// tags), in the same order; nil where the implementation does not
	// tell. A failed or departed member is in it, though no longer in
	// Members().
	Info []Member
	// Reap, on a MemberLeft, says that the member had failed or left
	// earlier and the membership now forgets it (Serf's reap).
	Reap bool
}

// MemberEvent is a change in the membership as one peer saw it: a member
// joined, failed, left or was reaped (forgotten after it failed or left).
// node keeps the last ones (node.Node.Events) and names the kinds
// (node.EventJoin ...).
type MemberEvent struct {
	At   time.Time
	Node string
	// Kind is Serf's name of the event: "member-join", "member-failed",
	// "member-leave" or "member-reap".
	Kind string
	// Pool is the member's pool in a cloud of pools ("" in a cloud of one
	// pool).
	Pool string
	// Addr is the member's gossip address, host:port ("" if the network
	// does not tell).
	Addr string
}

// Handler answers an exchange request from the named peer. It runs on the
// transport's goroutines and must be safe for concurrent use. req is the
// handler's to keep: no transport reuses it.
type Handler func(from string, req []byte) ([]byte, error)

// ReplayWindow is how far a request's time may be from the receiver's
// clock; clocks of peers must agree that well.
const ReplayWindow = 30 * time.Second

// ErrNoEndpoint says that nothing listens at a peer's exchange address:
// the connection was refused (in memory: the endpoint is gone). Unlike a
// timeout, which loss can cause, it means the peer's process is not
// serving.
var ErrNoEndpoint = errors.New("network: nothing serves exchanges at the peer's address")

// ErrSkew matches a SkewError: a peer refused an exchange because the two
// clocks disagree by more than ReplayWindow.
var ErrSkew = errors.New("network: clock skew")

// SkewError is an exchange refused for the time on it: Offset is the
// peer's clock minus this one's.
type SkewError struct {
	Peer   string
	Offset time.Duration
}

func (e *SkewError) Error() string {
	return fmt.Sprintf("clock skew at %s (%s): it refused the exchange, whose time is beyond the %v replay window",
		e.Peer, FormatOffset(e.Offset), ReplayWindow)
}

func (e *SkewError) Unwrap() error { return ErrSkew }

// FormatOffset is a clock offset for people: "+31 s", "-2.5 s".
func FormatOffset(d time.Duration) string {
	s := d.Round(100 * time.Millisecond).Seconds()
	if s == float64(int64(s)) {
		return fmt.Sprintf("%+d s", int64(s))
	}
	return fmt.Sprintf("%+.1f s", s)
}
