package latency

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		spec string
		ok   bool
	}{
		{"lognormal:80ms", true}, {"lognormal:80ms:0.6", true}, {"lognormal:0ms", false}, {"lognormal:80", false},
		{"lognormal:80ms:-1", false}, {"lognormal:80ms:x", false}, {"normal:80ms", false}, {"lognormal", false}, {"", false},
	} {
		if _, err := Parse(c.spec); (err == nil) != c.ok {
			t.Errorf("Parse(%q): %v, want ok %v", c.spec, err, c.ok)
		}
	}
	if _, err := FromText([]byte("# rtts\n80ms\n\n120\n")); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "# none\n", "fast\n", "-5ms\n", "2m\n"} {
		if _, err := FromText([]byte(bad)); err == nil {
			t.Errorf("FromText(%q) taken", bad)
		}
	}
}

// The log-normal's draws have the median asked for, and a round lasts at
// least MinRound and on average more than the median round trip (the
// mean of a log-normal is above its median).
func TestModel(t *testing.T) {
	m, err := Parse("lognormal:80ms")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	below := 0
	for range 100_000 {
		if m.Draw(r) < 80*time.Millisecond {
			below++
		}
	}
	if below < 49_000 || below > 51_000 {
		t.Errorf("%d of 100,000 draws below the median", below)
	}
	if rt := m.RoundTime(r, 10*time.Millisecond, 100_000); rt < 85*time.Millisecond || rt > 96*time.Millisecond {
		t.Errorf("round time %v, want the log-normal's mean, 80 ms × e^(σ²/2) = 90.7 ms", rt)
	}
	if rt := m.RoundTime(r, time.Second, 1000); rt < time.Second {
		t.Errorf("round time %v below MinRound", rt)
	}
	f, err := FromText([]byte(strings.Repeat("10ms\n", 3) + "1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Median(); got != 10*time.Millisecond {
		t.Errorf("median of 10, 10, 10 ms and 1 s: %v", got)
	}
}

// A serf.Query's model, event by event: with no spread in the round
// trips, a member holds the query a whole number of half round trips
// plus tick waits after the asker; the spread grows as log N; the
// asker's link is the bottleneck at 10^6 (128 MB at 12.5 MB/s) and not
// at 10^4; the WAN profile spreads more slowly; Serf's default timeout is
// its formula; a run is its seed's.
func TestSerfTime(t *testing.T) {
	m, _ := Parse("lognormal:80ms:0")
	s := DefaultSerf()
	r := func(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }
	small, large := s.Time(m, 10_000, r(1)), s.Time(m, 1_000_000, r(1))
	if small.Reached != 10_000 || large.Reached != 1_000_000 {
		t.Errorf("reached %d of 10^4 and %d of 10^6", small.Reached, large.Reached)
	}
	// At least a hop (40 ms) per doubling-and-more: log_4 N hops; at most
	// log_4 N + ln N/3 whole intervals and hops.
	for _, c := range []struct {
		st   SerfTime
		n    float64
		name string
	}{{small, 1e4, "10^4"}, {large, 1e6, "10^6"}} {
		lo := time.Duration(math.Log(c.n)/math.Log(4)) * 40 * time.Millisecond
		hi := time.Duration(math.Ceil(math.Log(c.n)/math.Log(4)+math.Log(c.n)/3)+2) * (200*time.Millisecond + 40*time.Millisecond)
		if c.st.Spread < lo || c.st.Spread > hi || c.st.Median > c.st.P99 || c.st.P99 > c.st.Spread {
			t.Errorf("%s: half by %v, 99%% by %v, all by %v; want all within [%v, %v]", c.name, c.st.Median, c.st.P99, c.st.Spread, lo, hi)
		}
	}
	if large.Spread <= small.Spread {
		t.Errorf("the spread does not grow with N: %v at 10^4, %v at 10^6", small.Spread, large.Spread)
	}
	if want := time.Duration(999_999) * 128 * time.Second / 12_500_000; large.Link != want || large.Last < want || large.Last > want+large.Spread {
		t.Errorf("10^6: link %v, last %v; want %v, the last answer in after it and before it plus the spread", large.Link, large.Last, want)
	}
	if small.Last < small.Spread+40*time.Millisecond || small.Last > small.Spread+small.Link+40*time.Millisecond {
		t.Errorf("10^4: last %v, spread %v: the link is not the bottleneck", small.Last, small.Spread)
	}
	if small.Timeout != 200*time.Millisecond*16*5 || large.Bytes != 999_999*128 {
		t.Errorf("timeout %v, bytes %d", small.Timeout, large.Bytes)
	}
	if wan := s.WAN().Time(m, 10_000, r(1)); wan.Spread <= small.Spread || wan.Reached != 10_000 {
		t.Errorf("WAN: all by %v, reached %d; LAN all by %v", wan.Spread, wan.Reached, small.Spread)
	}
	// A hop is a wait for the next tick (100 ms on average, the phases
	// random) and half a round trip: half the members hold the query
	// after about log_4(N/2) ≈ 6 such hops. Ticks in step, or no wait
	// for the tick, would put it near 1.3 s or 0.3 s.
	if small.Median < 600*time.Millisecond || small.Median > 1150*time.Millisecond {
		t.Errorf("10^4: half reached by %v, want about 6 hops of 140 ms", small.Median)
	}
	// memberlist's retransmit limit: with one target a tick and
	// 1·⌈log10(1001)⌉ = 4 sends a member, about e^-4 of the members are
	// never reached (1.8%); 8 sends would miss 0.03%.
	one := s
	one.GossipNodes, one.RetransmitMult = 1, 1
	if got := one.Time(m, 1000, r(1)).Reached; got < 970 || got > 990 {
		t.Errorf("1,000 members, 4 sends each to one: %d reached, want about 982", got)
	}
	if again := s.Time(m, 10_000, r(1)); again != small {
		t.Errorf("the same seed twice: %+v and %+v", small, again)
	}
}
