package node

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/node/network"
)

// boots is a probeNet of members and their incarnations, reaching no one.
type boots map[string]uint64

func (b boots) Name() string { return "self" }
func (b boots) Member(name string) (network.Member, bool) {
	boot, ok := b[name]
	return network.Member{Name: name, Boot: boot}, ok
}
func (b boots) Sample(r *mrand.Rand) (string, bool) { return "", false }
func (b boots) Exchange(ctx context.Context, peer string, req []byte) ([]byte, error) {
	return nil, errors.New("unreachable")
}

// A member this peer found lost that answers again is a mistake of this
// peer's timeouts (local health goes up) unless it is back as a new
// incarnation: then it really was gone.
func TestLocalHealthCountsOnlyMistakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		why        string
		bootBefore uint64
		bootAfter  uint64
		want       int
	}{
		{"alive all along", unreachablePrefix + ": 2 pings failed", 7, 7, 1},
		{"restarted", unreachablePrefix + ": 2 pings failed", 7, 8, 0},
		{"boot unknown", unreachablePrefix + ": 2 pings failed", 0, 8, 1},
		{"refused: its process was down", "its address refused the connection", 7, 7, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net := boots{"a": tc.bootBefore}
			now := time.Unix(1000, 0)
			cfg := proberConfig{HintTTL: 10 * time.Second, ProbeTries: 1, IndirectProbes: 3, ExchangeTimeout: time.Second,
				MinRound: 50 * time.Millisecond, ExchangeTime: func() time.Duration { return 0 }, Now: func() time.Time { return now },
				Rand: mrand.New(mrand.NewPCG(1, 1))}
			var lost []string
			p := newProber(context.Background(), cfg, net, func(name, why string) { lost = append(lost, name) })
			defer p.close()
			p.declareLost("a", tc.why, now)
			if len(lost) != 1 || !p.isLost("a") {
				t.Fatalf("declareLost: onLost got %v, isLost %v", lost, p.isLost("a"))
			}
			net["a"] = tc.bootAfter
			p.reached("a", now.Add(2*time.Second))
			if p.isLost("a") {
				t.Errorf("still lost after it answered")
			}
			if p.health.level != tc.want {
				t.Errorf("health %d, want %d", p.health.level, tc.want)
			}
		})
	}
}

// A failure noted after the time a peer's hints are read for (another
// goroutine's miss, after the exchange's handler read the clock) is
// passed on at age 0, and the exchange decodes. Mutation: without the
// clamp its age wraps past 2^31 ms and the receiver refuses the whole
// exchange ("bad hint age").
func TestHintNotedAfterNow(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	s := newSuspicions()
	s.missed("early", now.Add(-1500*time.Millisecond))
	s.missed("late", now.Add(3*time.Millisecond))
	hs := s.hints(now, time.Minute)
	want := map[string]uint32{"early": 1500, "late": 0}
	if len(hs) != len(want) {
		t.Fatalf("hints %v, want %v", hs, want)
	}
	for _, h := range hs {
		if h.AgeMillis != want[h.Name] {
			t.Errorf("%s: age %d ms, want %d", h.Name, h.AgeMillis, want[h.Name])
		}
	}
	b, err := decodeBatch(encodeBatch(batch{Hints: hs}))
	if err != nil || len(b.Hints) != 2 {
		t.Fatalf("the exchange with these hints: %v, %d hints", err, len(b.Hints))
	}
}

// looks is a probeNet whose members each answer a ping, stay silent, or
// answer refusing this peer's clock, as how says (absent: not listed).
type looks struct {
	mu  sync.Mutex
	how map[string]string
}

func (l *looks) Name() string { return "self" }
func (l *looks) Member(name string) (network.Member, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.how[name]
	return network.Member{Name: name, Boot: 1}, ok
}
func (l *looks) Sample(r *mrand.Rand) (string, bool) { return "", false }
func (l *looks) Exchange(ctx context.Context, peer string, req []byte) ([]byte, error) {
	l.mu.Lock()
	how := l.how[peer]
	l.mu.Unlock()
	switch how {
	case "answers":
		return encodeBatch(batch{}), nil
	case "skewed":
		return nil, &network.SkewError{Peer: peer, Offset: time.Minute}
	}
	return nil, errors.New("silent")
}

func (l *looks) set(name, how string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if how == "" {
		delete(l.how, name)
		return
	}
	l.how[name] = how
}

// Members this peer found lost that the membership still lists and that
// stay silent keep their notes, every one of them while there are no more
// than maxRelooks·HintTTL/s (the oldest are looked at first), and count
// as silent for long (silentFor) but for while this peer's own health is
// in doubt; a member the membership drops is forgotten after HintTTL; one
// that answers at last, long after it was found, is cleared without
// counting as a mistake of this peer's timeouts; one that answers
// refusing this peer's clock is not silent, is not looked at again while
// its skew note lasts, and its lost note runs out; and notes kept so
// leave the prober quiet. Mutations: without the renewal every note
// expires at 10 s; with the map's order in place of the oldest first, 30
// notes lose some; renewing on a skew refusal keeps that note past 10 s.
func TestSilentMembersStayLost(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		net := &looks{how: map[string]string{"gone": "silent", "skewed": "skewed", "back": "silent"}}
		names := make([]string, 30)
		for i := range names {
			names[i] = fmt.Sprintf("m%02d", i)
			net.how[names[i]] = "silent"
		}
		now := time.Unix(1000, 0)
		cfg := proberConfig{HintTTL: 10 * time.Second, ProbeTries: 1, IndirectProbes: 3, ExchangeTimeout: time.Second,
			MinRound: 50 * time.Millisecond, ExchangeTime: func() time.Duration { return 0 }, Now: func() time.Time { return now },
			Rand: mrand.New(mrand.NewPCG(1, 1))}
		p := newProber(context.Background(), cfg, net, func(string, string) {})
		defer p.close()
		for _, name := range append(names, "gone", "skewed", "back") {
			p.declareLost(name, unreachablePrefix+": 2 pings failed", now)
		}
		net.set("gone", "")
		for round := int64(1); round <= 120; round++ {
			now = now.Add(time.Second)
			if round == 60 {
				net.set("back", "answers")
			}
			p.tick(now)
			synctest.Wait() // the looks' pings fail, or answer, at once
			if round == 10 && p.isLost("skewed") {
				t.Errorf("skewed: still lost %v after it was found, though it answered (refusing this peer's clock): its note was renewed", 10*time.Second)
			}
		}
		for _, name := range names {
			if !p.isLost(name) {
				t.Errorf("%s: silent for 2 minutes and listed, but no longer lost", name)
			} else if d, silent := p.silentFor(name, now); !silent || d != 2*time.Minute {
				t.Errorf("%s: silent for %v (%v), want 2m0s", name, d, silent)
			}
		}
		for _, name := range []string{"gone", "skewed", "back"} {
			if p.isLost(name) {
				t.Errorf("%s is still noted lost after 2 minutes", name)
			}
		}
		if p.health.level != 0 {
			t.Errorf("health %d after a member answered a minute after it was found: want 0 (no mistake)", p.health.level)
		}
		if n := len(p.lostLately(now)); n != len(names) {
			t.Errorf("lostLately: %d members, want %d", n, len(names))
		}
		if !p.quiet() {
			t.Errorf("not quiet with only renewed notes: rounds would stay short for as long as a member hangs")
		}
		p.reached(names[0], now)
		if p.isLost(names[0]) || p.health.level != 0 {
			t.Errorf("a member that answered 2 minutes after it was found: lost %v, health %d (want cleared, 0)", p.isLost(names[0]), p.health.level)
		}
		p.mu.Lock()
		p.health.mistake(now)
		p.mu.Unlock()
		if _, silent := p.silentFor(names[1], now); silent {
			t.Errorf("silent for long while this peer's own health is in doubt")
		}
	})
}

// silentNet is a probeNet whose members never answer: an exchange waits
// until it is given up. It counts the pings (empty exchanges) sent.
type silentNet struct {
	boots
	pings *int
	mu    *sync.Mutex
}

func (s silentNet) Exchange(ctx context.Context, peer string, req []byte) ([]byte, error) {
	s.mu.Lock()
	*s.pings++
	s.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

// An exchange that outlasts suspectAfter has its peer verified (pinged,
// then found lost); one that ends before does not; and a prober closed
// while an exchange's timer is armed pings no one after. Mutations: a
// timer that is not stopped pings in the second case; one that verifies
// without checking the prober's context pings in the third.
func TestSuspectIfSlow(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endAfter  time.Duration // 0: the exchange never ends
		closeAt   time.Duration // 0: the prober stays open
		wantPings bool
	}{
		{"slow exchange", 0, 0, true},
		{"answered in time", 500 * time.Millisecond, 0, false},
		{"prober closed first", 0, 500 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				pings := 0
				net := silentNet{boots: boots{"a": 1}, pings: &pings, mu: &mu}
				cfg := proberConfig{HintTTL: 10 * time.Second, ProbeTries: 1, IndirectProbes: 3, ExchangeTimeout: time.Second,
					MinRound: 50 * time.Millisecond, ExchangeTime: func() time.Duration { return 0 }, Now: time.Now,
					Rand: mrand.New(mrand.NewPCG(1, 1))}
				var lost []string
				p := newProber(context.Background(), cfg, net, func(name, why string) {
					mu.Lock()
					lost = append(lost, name)
					mu.Unlock()
				})
				ended := p.suspectIfSlow("a")
				if tc.endAfter > 0 {
					time.Sleep(tc.endAfter)
					ended()
				}
				if tc.closeAt > 0 {
					time.Sleep(tc.closeAt)
					p.close()
				}
				time.Sleep(10 * time.Second) // past suspectAfter (1 s here) and the pings
				synctest.Wait()
				mu.Lock()
				gotPings, gotLost := pings, len(lost)
				mu.Unlock()
				if gotPings > 0 != tc.wantPings {
					t.Errorf("%d pings; want pings: %v", gotPings, tc.wantPings)
				}
				if tc.wantPings && (gotLost != 1 || !p.isLost("a")) {
					t.Errorf("a silent peer verified: onLost called %d times, isLost %v; want it lost", gotLost, p.isLost("a"))
				}
				if !tc.wantPings && gotLost != 0 {
					t.Errorf("onLost called %d times, want none", gotLost)
				}
				if tc.closeAt == 0 {
					p.close()
				}
			})
		})
	}
}
