package overlay

import (
	"strconv"
	"testing"

	"github.com/peerq/peerq/node/network"
)

// A burst far larger than the channel, with nobody reading, is delivered
// whole and in order once the reader comes (the channel of 256 used to
// drop the rest).
func TestEventQueueDropsNothing(t *testing.T) {
	q := newEventQueue()
	const n = 10_000
	for i := range n {
		q.push(network.Event{Kind: network.MemberJoined, Members: []string{strconv.Itoa(i)}})
	}
	out, done := make(chan network.Event, 256), make(chan struct{})
	finished := make(chan struct{})
	go func() { q.run(out, done); close(finished) }()
	for i := range n {
		e := <-out
		if e.Members[0] != strconv.Itoa(i) {
			t.Fatalf("event %d is %v", i, e.Members)
		}
	}
	q.push(network.Event{Kind: network.MemberFailed, Members: []string{"late"}})
	if e := <-out; e.Kind != network.MemberFailed || e.Members[0] != "late" {
		t.Fatalf("a push after the burst: %+v", e)
	}
	for range 300 { // more than out holds: run is blocked sending when done closes
		q.push(network.Event{Kind: network.MemberLeft, Members: []string{"x"}})
	}
	close(done)
	<-finished
}
