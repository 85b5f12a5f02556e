package latency

import (
	"bufio"
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Model draws round-trip times.
type Model struct {
	name string
	// median is the model's; sigma the standard deviation of ln(rtt) of
	// a log-normal; samples, if set, measured round trips drawn
	// uniformly.
	median  time.Duration
	sigma   float64
	samples []time.Duration
}

// DefaultSigma is the log-normal spread when none is given: 0.5 puts the
// 90th percentile at 1.9 times the median, about what RIPE Atlas-style
// pings between home hosts on one continent show.
const DefaultSigma = 0.5

// MaxSamples bounds a file of measured round trips.
const MaxSamples = 1 << 20

// Parse reads a model: "lognormal:MEDIAN" or "lognormal:MEDIAN:SIGMA",
// MEDIAN a Go duration (80ms).
func Parse(spec string) (*Model, error) {
	parts := strings.Split(spec, ":")
	if parts[0] != "lognormal" || len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("latency: %q: want lognormal:MEDIAN[:SIGMA] (lognormal:80ms), or a file of round trips", spec)
	}
	med, err := time.ParseDuration(parts[1])
	if err != nil || med <= 0 {
		return nil, fmt.Errorf("latency: %q: the median %q is not a positive duration", spec, parts[1])
	}
	sigma := DefaultSigma
	if len(parts) == 3 {
		if sigma, err = strconv.ParseFloat(parts[2], 64); err != nil || !(sigma >= 0 && sigma <= 3) {
			return nil, fmt.Errorf("latency: %q: sigma %q is not a number in [0, 3]", spec, parts[2])
		}
	}
	return &Model{name: fmt.Sprintf("log-normal, median %v, sigma %g", med, sigma), median: med, sigma: sigma}, nil
}

// FromText reads measured round trips, one a line: a Go duration (80ms)
// or a number of milliseconds; blank lines and lines starting with # are
// skipped.
func FromText(text []byte) (*Model, error) {
	var out []time.Duration
	sc := bufio.NewScanner(bytes.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			ms, ferr := strconv.ParseFloat(s, 64)
			if ferr != nil {
				return nil, fmt.Errorf("latency: line %d: %q is neither a duration nor milliseconds", line, s)
			}
			d = time.Duration(ms * float64(time.Millisecond))
		}
		if d <= 0 || d > time.Minute {
			return nil, fmt.Errorf("latency: line %d: %v is not a round trip (0 < rtt ≤ 1m)", line, d)
		}
		if len(out) == MaxSamples {
			return nil, fmt.Errorf("latency: more than %d round trips", MaxSamples)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("latency: no round trips")
	}
	sorted := slices.Sorted(slices.Values(out))
	med := sorted[len(sorted)/2]
	return &Model{name: fmt.Sprintf("%d measured round trips, median %v", len(out), med), median: med, samples: out}, nil
}

// String says what the model is.
func (m *Model) String() string { return m.name }

// Draw is one round trip.
func (m *Model) Draw(r *rand.Rand) time.Duration {
	if m.samples != nil {
		return m.samples[r.IntN(len(m.samples))]
	}
	return time.Duration(float64(m.median) * math.Exp(m.sigma*r.NormFloat64()))
}

// Median is the model's median round trip.
func (m *Model) Median() time.Duration { return m.median }

// RoundTime is the mean length of a query's round, E[max(minRound, rtt)],
// over n draws.
func (m *Model) RoundTime(r *rand.Rand, minRound time.Duration, n int) time.Duration {
	var sum float64
	for range n {
		sum += float64(max(minRound, m.Draw(r)))
	}
	return time.Duration(sum / float64(n))
}

// Serf is the model of a serf.Query (doc.go): one of memberlist's
// profiles, the answers' size and the asker's link.
type Serf struct {
	Profile        string        // "LAN" or "WAN": memberlist's DefaultLANConfig, DefaultWANConfig
	GossipInterval time.Duration // LAN 200 ms, WAN 500 ms
	GossipNodes    int           // members a gossip tick sends to: LAN 3, WAN 4
	// RetransmitMult bounds how often a member sends a broadcast:
	// RetransmitMult × ⌈log10(N+1)⌉ times (memberlist's retransmitLimit).
	RetransmitMult int
	// QueryTimeoutMult is Serf's: its default timeout is GossipInterval ×
	// QueryTimeoutMult × ⌈log10(N+1)⌉.
	QueryTimeoutMult int
	// ReplyBytes is one answer on the asker's link: Serf's query response
	// around a 43-byte payload and a node name (about 100 bytes with its
	// message type, as serf encodes messageQueryResponse), and the IP and
	// UDP headers (28). memberlist's encryption adds 29 more.
	ReplyBytes int
	Bandwidth  float64 // the asker's downlink, bytes a second
}

// DefaultSerf is memberlist's LAN profile and Serf's defaults, answers of
// 128 bytes on the wire, unencrypted, and an asker on 100 Mbit/s.
func DefaultSerf() Serf {
	return Serf{Profile: "LAN", GossipInterval: 200 * time.Millisecond, GossipNodes: 3, RetransmitMult: 4, QueryTimeoutMult: 16,
		ReplyBytes: 128, Bandwidth: 100e6 / 8}
}

// WAN is s with memberlist's WAN profile (DefaultWANConfig: gossip every
// 500 ms to 4), which memberlist advises for members across the
// internet.
func (s Serf) WAN() Serf {
	s.Profile, s.GossipInterval, s.GossipNodes = "WAN", 500*time.Millisecond, 4
	return s
}

// SerfTime is what a serf.Query over n members takes on model m: Reached
// how many it reached (memberlist's retransmit limit can miss some), the
// times when half of them, 99% and all held it (Median, P99, Spread),
// Link the answers' time on the asker's link alone, Last when the last
// answer is in, Timeout Serf's default wait, and Bytes what the asker
// receives.
type SerfTime struct {
	Reached                                  int
	Median, P99, Spread, Link, Last, Timeout time.Duration
	Bytes                                    int64
}

// Time models a serf.Query over n members, event by event: each member
// ticks every GossipInterval at its own phase; from its first tick after
// it holds the query it sends it to GossipNodes random others a tick,
// RetransmitMult·⌈log10(n+1)⌉ sends in all; a send arrives half a drawn
// round trip later. Each member that holds it answers the asker directly,
// half a drawn round trip away, and the answers queue on the asker's
// link, first in, first out. No loss, and no drop at the asker's socket
// (memberlist's handoff queue holds 1,024): both would favour gossip.
// It costs O(n log n) time; at 10^6 members about 4 s and 100 bytes a
// member live (the sends in flight), 330 MB allocated in all.
func (s Serf) Time(m *Model, n int, r *rand.Rand) SerfTime {
	n = max(n, 2)
	x := float64(n)
	period := float64(s.GossipInterval)
	oneway := func() float64 { return float64(m.Draw(r)) / 2 }
	limit := s.RetransmitMult * int(math.Ceil(math.Log10(x+1)))
	phase := make([]float64, n)
	for i := range phase {
		phase[i] = r.Float64() * period
	}
	best := make([]float64, n) // the earliest arrival known, 0: none (the asker's is 0, and done)
	done := make([]bool, n)
	var informed []float64
	q := arrivals{{0, 0}}
	picked := make([]int, 0, s.GossipNodes)
	for len(q) > 0 {
		e := heap.Pop(&q).(arrival)
		if done[e.member] {
			continue
		}
		done[e.member] = true
		informed = append(informed, e.at)
		i := int(e.member)
		tick := phase[i] + math.Ceil((e.at-phase[i])/period)*period
		for left := limit; left > 0; tick += period {
			picked = picked[:0]
			for j := 0; j < s.GossipNodes && left > 0 && len(picked) < n-1; j++ {
				to := r.IntN(n)
				for to == i || slices.Contains(picked, to) {
					to = r.IntN(n)
				}
				picked = append(picked, to)
				left--
				if at := tick + oneway(); !done[to] && (best[to] == 0 || at < best[to]) {
					best[to] = at
					heap.Push(&q, arrival{at, int32(to)})
				}
			}
		}
	}
	t := SerfTime{Reached: len(informed), Bytes: int64(len(informed)-1) * int64(s.ReplyBytes)}
	t.Median, t.P99 = time.Duration(informed[len(informed)/2]), time.Duration(informed[len(informed)*99/100])
	t.Spread = time.Duration(informed[len(informed)-1])
	answers := make([]float64, 0, len(informed)-1)
	for _, at := range informed[1:] { // the asker's own answer is local
		answers = append(answers, at+oneway())
	}
	slices.Sort(answers)
	per := float64(s.ReplyBytes) / s.Bandwidth * float64(time.Second)
	var free float64 // when the link is next free
	for _, at := range answers {
		free = max(free, at) + per
	}
	t.Last = time.Duration(free)
	t.Link = time.Duration(float64(len(answers)) * per)
	t.Timeout = s.GossipInterval * time.Duration(s.QueryTimeoutMult) * time.Duration(math.Ceil(math.Log10(x+1)))
	return t
}

// arrival is a send of the query reaching a member at a time; arrivals
// is a heap of them, the earliest first.
type arrival struct {
	at     float64
	member int32
}

type arrivals []arrival

func (a arrivals) Len() int           { return len(a) }
func (a arrivals) Less(i, j int) bool { return a[i].at < a[j].at }
func (a arrivals) Swap(i, j int)      { a[i], a[j] = a[j], a[i] }
func (a *arrivals) Push(v any)        { *a = append(*a, v.(arrival)) }
func (a *arrivals) Pop() any {
	old := *a
	v := old[len(old)-1]
	*a = old[:len(old)-1]
	return v
}
