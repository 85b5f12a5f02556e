package overlay

import (
	"sync"

	"github.com/peerq/peerq/node/network"
)

// eventQueue hands membership events to the node in order and never
// drops one. The events come from Serf's event loop, which must not wait
// on the node (Serf holds its member lock while it delivers one); a
// bounded channel filled by a send that gave up when full lost events
// silently in a burst of joins or failures (a partition healing), and the
// node's queries, prober and subcloud owner never heard of them. The
// queue grows only while the node is behind: by the membership's changes
// in that time, each event a few names.
type eventQueue struct {
	mu      sync.Mutex
	pending []network.Event
	wake    chan struct{} // one buffered: a push since the last look
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

// push queues e; it never blocks.
func (q *eventQueue) push(e network.Event) {
	q.mu.Lock()
	q.pending = append(q.pending, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers the queued events to out, in order, until done is closed.
func (q *eventQueue) run(out chan<- network.Event, done <-chan struct{}) {
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		q.mu.Unlock()
		for _, e := range batch {
			select {
			case out <- e:
			case <-done:
				return
			}
		}
		if len(batch) == 0 {
			select {
			case <-q.wake:
			case <-done:
				return
			}
		}
	}
}
