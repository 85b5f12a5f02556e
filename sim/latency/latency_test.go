package latency

import (
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

// A serf.Query's model: hops grow as log N, the asker's link is the
// bottleneck only at large N, and Serf's default timeout is its formula.
func TestSerfTime(t *testing.T) {
	m, _ := Parse("lognormal:80ms:0")
	s := DefaultSerf()
	small, large := s.Time(m, 10_000), s.Time(m, 1_000_000)
	if small.Hops != 10 || large.Hops != 15 {
		t.Errorf("hops %d and %d, want ⌈log4 N + ln N/3⌉ = 10 and 15", small.Hops, large.Hops)
	}
	if want := 10 * (100*time.Millisecond + 40*time.Millisecond); small.Spread != want || small.Last != want+40*time.Millisecond {
		t.Errorf("10^4: spread %v, last %v; want %v, +40ms", small.Spread, small.Last, want)
	}
	if large.Link != 8*time.Second || large.Last != 8*time.Second+40*time.Millisecond {
		t.Errorf("10^6: link %v, last %v; want 100 MB at 12.5 MB/s = 8s", large.Link, large.Last)
	}
	if small.Timeout != 200*time.Millisecond*16*5 || large.Bytes != 100_000_000 {
		t.Errorf("timeout %v, bytes %d", small.Timeout, large.Bytes)
	}
}
