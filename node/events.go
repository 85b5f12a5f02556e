package node

import (
	"sync"
	"time"

	"github.com/peerq/peerq/node/network"
)

// The kinds of MemberEvent: Serf's own event names (what `serf monitor`
// and a Serf event handler's SERF_EVENT say), so that an operator who knows
// Serf reads them as such.
const (
	EventJoin   = "member-join"
	EventFailed = "member-failed"
	EventLeave  = "member-leave"
	EventReap   = "member-reap"
)

// DefaultEventLog is how many membership events a peer keeps when
// Config.EventLog is 0: as many as a cluster of that size makes when every
// member restarts once, and ~30 KB.
const DefaultEventLog = 256

// MemberEvent is a change in the membership as this peer saw it: a member
// joined, failed, left or was reaped. Tag updates are not kept: a lease
// changes its members' tags, and they would push out the events an
// operator looks for. It is network's, so that the API's server can name
// it without importing node.
type MemberEvent = network.MemberEvent

// eventLog keeps the last membership events in a ring, and tells each to
// the operator's log as it comes. It is safe for concurrent use.
type eventLog struct {
	infof func(format string, args ...any) // nil: nothing is logged

	max  int // events kept
	mu   sync.Mutex
	ring []MemberEvent // grows to max (an embedded cluster's 200 peers need not hold 256 each)
	next int           // where the next event goes once the ring is full
	at   time.Time     // the newest event's time
}

func newEventLog(size int, infof func(string, ...any)) *eventLog {
	if size <= 0 {
		size = DefaultEventLog
	}
	return &eventLog{infof: infof, max: size}
}

// record keeps the events one membership change makes (one per member)
// and logs them; updates and conflicts are neither kept nor logged here
// (the overlay logs a conflict).
func (l *eventLog) record(e network.Event, at time.Time) {
	var kind, verb string
	switch {
	case e.Kind == network.MemberJoined:
		kind, verb = EventJoin, "joined"
	case e.Kind == network.MemberFailed:
		kind, verb = EventFailed, "failed"
	case e.Kind == network.MemberLeft && e.Reap:
		kind, verb = EventReap, "reaped"
	case e.Kind == network.MemberLeft:
		kind, verb = EventLeave, "left"
	default:
		return
	}
	for i, name := range e.Members {
		me := MemberEvent{At: at, Node: name, Kind: kind}
		if i < len(e.Info) {
			me.Addr, me.Pool = e.Info[i].Addr, e.Info[i].Tags[TagPool]
		}
		l.mu.Lock()
		l.at = at
		if len(l.ring) < l.max {
			l.ring = append(l.ring, me)
		} else {
			l.ring[l.next] = me
			l.next = (l.next + 1) % len(l.ring)
		}
		l.mu.Unlock()
		if l.infof != nil {
			// As Serf's agent logs its members: name, address; then
			// what peerq adds.
			line := "member " + verb + ": " + me.Node
			if me.Addr != "" {
				line += " " + me.Addr
			}
			if me.Pool != "" {
				line += " pool=" + me.Pool
			}
			l.infof("%s", line)
		}
	}
}

// last returns the newest n events (all kept when n <= 0), oldest first.
func (l *eventLog) last(n int) []MemberEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := make([]MemberEvent, 0, len(l.ring))
	all = append(all, l.ring[l.next:]...)
	all = append(all, l.ring[:l.next]...)
	if n > 0 && n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}

// lastAt is when the newest event came (zero: none yet).
func (l *eventLog) lastAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.at
}

// size is how many events the log keeps at most.
func (l *eventLog) size() int { return l.max }

// Events returns the newest n membership events this peer saw (all it
// keeps, Config.EventLog, when n <= 0), oldest first: joins, failures,
// leaves and reaps, since it started.
func (n *Node) Events(limit int) []MemberEvent { return n.events.last(limit) }
