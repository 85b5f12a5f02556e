package node

import (
	"sync"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/node/network"
)

// MemberEvent is a change in the membership this peer saw: when, which
// member, what (Kind: "joined", "failed", "left", "conflict"), in
// which pool, at which address. It is the API's value (api.MemberEvent),
// so that the server can serve it without importing node.
type MemberEvent = api.MemberEvent

// MemberEventLog is how many membership events a peer keeps (Events): the
// last ones, older ones dropped. 256 holds a 200-peer demo's formation (a
// join each) and more; a few tens of kilobytes.
const MemberEventLog = 256

// The kinds of MemberEvent.
const (
	EventJoined   = "joined"
	EventFailed   = "failed"
	EventLeft     = "left"
	EventConflict = "conflict"
)

// eventKind is a network event's kind as a MemberEvent's, or "" for
// changes the log leaves out: tag updates, which every lease change and
// resize makes and which would push the joins and failures out of it.
func eventKind(k network.EventKind) string {
	switch k {
	case network.MemberJoined:
		return EventJoined
	case network.MemberFailed:
		return EventFailed
	case network.MemberLeft:
		return EventLeft
	case network.MemberConflict:
		return EventConflict
	}
	return ""
}

// eventLog is a ring of the last MemberEventLog events. It is safe for
// concurrent use.
type eventLog struct {
	mu   sync.Mutex
	buf  []MemberEvent // at most MemberEventLog; next is the oldest once full
	next int
}

func (l *eventLog) add(e MemberEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) < MemberEventLog {
		l.buf = append(l.buf, e)
		return
	}
	l.buf[l.next] = e
	l.next = (l.next + 1) % MemberEventLog
}

// last is the last n events that match (all if match is nil), oldest
// first.
func (l *eventLog) last(n int, match func(MemberEvent) bool) []MemberEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []MemberEvent
	for i := len(l.buf) - 1; i >= 0 && len(out) < n; i-- {
		e := l.buf[(l.next+i)%len(l.buf)]
		if match == nil || match(e) {
			out = append(out, e)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// noteEvent enters a membership change in the log, with each member's
// address where the membership still knows it.
func (n *Node) noteEvent(e network.Event) {
	kind := eventKind(e.Kind)
	if kind == "" {
		return
	}
	var departed map[string]string
	for _, name := range e.Members {
		addr := ""
		if m, ok := n.net.Member(name); ok {
			addr = m.Addr
		} else {
			if departed == nil {
				departed = map[string]string{}
				for _, d := range n.departed() {
					departed[d.Name] = d.Addr
				}
			}
			addr = departed[name]
		}
		n.events.add(MemberEvent{At: n.now(), Node: name, Kind: kind, Pool: n.cfg.Pool, Addr: addr})
	}
}

// Events are the last n membership events this peer saw (at most
// MemberEventLog), oldest first.
func (n *Node) Events(limit int) []MemberEvent { return n.events.last(limit, nil) }

// eventsOf are the last n membership events about the member name, oldest
// first.
func (n *Node) eventsOf(name string, limit int) []MemberEvent {
	return n.events.last(limit, func(e MemberEvent) bool { return e.Node == name })
}

// departedLister is a network that keeps the members that failed or left
// (overlay.Overlay, until Serf reaps them; fakenet.Host).
type departedLister interface {
	Departed() []network.Departed
}

// departed are the members the network knows that failed or left, or
// none where it keeps no states.
func (n *Node) departed() []network.Departed {
	if d, ok := n.net.(departedLister); ok {
		return d.Departed()
	}
	return nil
}
