package node

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/node/network"
)

// The ring keeps the newest events, oldest first, and logs each one as
// Serf's agent logs its members.
func TestEventLog(t *testing.T) {
	t.Parallel()
	var lines []string
	l := newEventLog(3, func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) })
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	info := func(name string, pool string) []network.Member {
		tags := map[string]string{"region": "eu"}
		if pool != "" {
			tags[TagPool] = pool
		}
		return []network.Member{{Name: name, Addr: "10.0.0.5:7946", Tags: tags}}
	}
	l.record(network.Event{Kind: network.MemberJoined, Members: []string{"a"}, Info: info("a", "")}, at)
	l.record(network.Event{Kind: network.MemberUpdated, Members: []string{"a"}, Info: info("a", "")}, at) // not kept
	l.record(network.Event{Kind: network.MemberFailed, Members: []string{"b"}, Info: info("b", "west")}, at.Add(time.Second))
	l.record(network.Event{Kind: network.MemberLeft, Members: []string{"c"}}, at.Add(2*time.Second)) // no Info: no address
	l.record(network.Event{Kind: network.MemberLeft, Reap: true, Members: []string{"b"}, Info: info("b", "west")}, at.Add(3*time.Second))
	want := []MemberEvent{
		{At: at.Add(time.Second), Node: "b", Kind: EventFailed, Pool: "west", Addr: "10.0.0.5:7946"},
		{At: at.Add(2 * time.Second), Node: "c", Kind: EventLeave},
		{At: at.Add(3 * time.Second), Node: "b", Kind: EventReap, Pool: "west", Addr: "10.0.0.5:7946"},
	}
	if got := l.last(0); !reflect.DeepEqual(got, want) {
		t.Errorf("last(0) = %+v\nwant %+v", got, want)
	}
	if got := l.last(2); !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("last(2) = %+v\nwant %+v", got, want[1:])
	}
	if got := l.last(10); len(got) != 3 {
		t.Errorf("last(10): %d events, want the 3 kept", len(got))
	}
	wantLines := []string{
		"member joined: a 10.0.0.5:7946",
		"member failed: b 10.0.0.5:7946 pool=west",
		"member left: c",
		"member reaped: b 10.0.0.5:7946 pool=west",
	}
	if !reflect.DeepEqual(lines, wantLines) {
		t.Errorf("logged %q\nwant %q", lines, wantLines)
	}
}

// A peer keeps what its network told it of its members — joins, a crash,
// a graceful leave — logs each, and answers SHOW EVENTS with them.
func TestShowEvents(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var logged []string // every peer's lines
		c := startFake(t, 4, fakenet.DefaultConfig(), 1, func(cfg *Config) {
			cfg.Infof = func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				logged = append(logged, fmt.Sprintf(format, args...))
			}
		})
		c.kill(3)
		c.nodes[2].Close()
		c.net.Leave(c.nodes[2].Name())
		elapse(2 * fakenet.DefaultConfig().Detect)

		ev := c.nodes[0].Events(0)
		var got []string
		for _, e := range ev {
			got = append(got, e.Kind+" "+e.Node)
			if e.Addr == "" || e.At.IsZero() {
				t.Errorf("event %+v: no address or time", e)
			}
		}
		n := func(i int) string { return c.nodes[i].Name() }
		want := []string{EventJoin + " " + n(1), EventJoin + " " + n(2), EventJoin + " " + n(3), EventLeave + " " + n(2), EventFailed + " " + n(3)}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("peer 0's events %q, want %q", got, want)
		}
		if last := c.nodes[0].Events(1); len(last) != 1 || last[0].Node != n(3) {
			t.Errorf("Events(1) = %+v, want the failure of %s", last, n(3))
		}

		a, err := c.nodes[0].Execute(context.Background(), "SHOW EVENTS", nil)
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for _, col := range a.Columns {
			cols = append(cols, col.Name)
		}
		if strings.Join(cols, ",") != "at,node,event,addr,pool" || len(a.Rows) != len(want) {
			t.Fatalf("SHOW EVENTS: columns %v, %d rows; want at,node,event,addr,pool and %d rows", cols, len(a.Rows), len(want))
		}
		for i, r := range a.Rows {
			if r[2].Str+" "+r[1].Str != want[i] {
				t.Errorf("SHOW EVENTS row %d: %v, want %s", i, r, want[i])
			}
			if _, err := time.Parse(time.RFC3339, r[0].Str); err != nil {
				t.Errorf("SHOW EVENTS row %d: at %q is not RFC 3339: %v", i, r[0].Str, err)
			}
		}

		mu.Lock()
		defer mu.Unlock()
		for _, line := range []string{"member failed: " + n(3) + " fake:" + n(3), "member left: " + n(2) + " fake:" + n(2)} {
			found := 0
			for _, l := range logged {
				if l == line {
					found++
				}
			}
			if found != 2 { // peers 0 and 1 saw it
				t.Errorf("%q logged %d times, want 2 (by peers 0 and 1); logged %q", line, found, logged)
			}
		}
	})
}
