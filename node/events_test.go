package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/peerq/peerq/fakenet"
)

// The event log keeps the last MemberEventLog events, oldest first, and
// filters them.
func TestEventLogRing(t *testing.T) {
	t.Parallel()
	var l eventLog
	at := time.Unix(1_700_000_000, 0)
	for i := range MemberEventLog + 10 {
		l.add(MemberEvent{At: at.Add(time.Duration(i) * time.Second), Node: fmt.Sprintf("p%d", i%3), Kind: EventJoined})
	}
	all := l.last(1000, nil)
	if len(all) != MemberEventLog {
		t.Fatalf("%d events kept, want %d", len(all), MemberEventLog)
	}
	if !all[0].At.Equal(at.Add(10*time.Second)) || !all[len(all)-1].At.Equal(at.Add(time.Duration(MemberEventLog+9)*time.Second)) {
		t.Errorf("kept %v … %v: want the last ones, oldest first", all[0].At, all[len(all)-1].At)
	}
	p1 := l.last(3, func(e MemberEvent) bool { return e.Node == "p1" })
	if len(p1) != 3 || !slices.IsSortedFunc(p1, func(a, b MemberEvent) int { return a.At.Compare(b.At) }) {
		t.Fatalf("p1's last 3: %v", p1)
	}
	for _, e := range p1 {
		if e.Node != "p1" {
			t.Errorf("filtered for p1: %v", e)
		}
	}
	if want := all[len(all)-1]; want.Node == "p1" && p1[2] != want {
		t.Errorf("p1's last event %v, want %v", p1[2], want)
	}
}

// A member that fails is listed as departed, with when this peer saw it
// go, and its node page says so with its events; a reserved member's
// page shows its lease, its owner's the subcloud it owns.
func TestNodeInfo(t *testing.T) {
	t.Parallel()
	fake(t, 6, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		elapse(time.Second)
		asker := c.nodes[0]
		ask(t, asker, compile(t, asker, "RESERVE 2 AS pair FOR 10m"))
		elapse(time.Second) // the members' tags spread
		owner, ok := asker.NodeInfo(asker.Name(), 10)
		if !ok || !owner.Self || owner.Status != "alive" || len(owner.Owns) != 1 {
			t.Fatalf("the owner's page: %+v (%v)", owner, ok)
		}
		owns := owner.Owns[0]
		if owns.Subcloud != "pair" || len(owns.Members) != 2 || owns.EarliestExpiry == nil || owns.Source != "its owner's table" {
			t.Errorf("owned: %+v", owns)
		}
		member, ok := asker.NodeInfo(owns.Members[0], 10)
		if !ok || member.Self || member.Lease == nil || member.Lease.Subcloud != "pair" || member.Lease.Owner != asker.Name() || member.Lease.Expires == nil {
			t.Errorf("a member's page: %+v (%v)", member, ok)
		}
		if _, ok := member.Tags[TagSubcloud]; ok {
			t.Errorf("a member's tags show its lease: %v", member.Tags)
		}
		if from, ok := c.nodes[1].NodeInfo(owns.Members[0], 10); !ok || from.Lease == nil || from.Lease.Owner != asker.Name() {
			t.Errorf("the member's page at another agent: %+v", from)
		}
		if o, _ := c.nodes[1].NodeInfo(asker.Name(), 10); len(o.Owns) != 1 || o.Owns[0].Source != "members' tags" {
			t.Errorf("the owner's page at another agent: %+v", o.Owns)
		}

		victim := c.nodes[5].Name()
		before := time.Now()
		c.kill(5)
		elapse(fakenet.DefaultConfig().Detect + time.Second)
		dep := asker.Departed()
		if len(dep) != 1 || dep[0].Name != victim || dep[0].Status != "failed" || dep[0].LastSeen == nil || dep[0].LastSeen.Before(before) {
			t.Fatalf("departed: %+v", dep)
		}
		page, ok := asker.NodeInfo(victim, 10)
		if !ok || page.Status != "failed" || page.LastSeen == nil || page.Tags["region"] == "" {
			t.Errorf("the failed member's page: %+v (%v)", page, ok)
		}
		if n := len(page.Events); n == 0 || page.Events[n-1].Kind != EventFailed || page.Events[n-1].Node != victim {
			t.Errorf("the failed member's events: %+v", page.Events)
		}
		if _, ok := asker.NodeInfo("no-such-peer", 10); ok {
			t.Error("a page for a name never seen")
		}
		c.restart(t, 5)
		elapse(time.Second)
		if dep := asker.Departed(); len(dep) != 0 {
			t.Errorf("departed after it came back: %+v", dep)
		}
		if ev := asker.Events(MemberEventLog); len(ev) < 2 || ev[len(ev)-1].Kind != EventJoined || ev[len(ev)-2].Kind != EventFailed {
			t.Errorf("the last events: %+v", ev)
		}
	})
}
