package latency

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peerq/peerq/query"
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

// Serf is the model of a serf.Query (doc.go).
type Serf struct {
	GossipInterval time.Duration // memberlist's LAN profile: 200 ms
	GossipNodes    int           // members a gossip tick sends to: 3
	// QueryTimeoutMult is Serf's: its default timeout is GossipInterval ×
	// QueryTimeoutMult × ⌈log10(N+1)⌉.
	QueryTimeoutMult int
	ReplyBytes       int     // one answer on the wire: payload, Serf's header, memberlist's encryption
	Bandwidth        float64 // the asker's downlink, bytes a second
}

// DefaultSerf is memberlist's LAN profile and Serf's defaults, answers of
// 100 bytes (measured payloads were 43: BENCHMARKS.md, issue 4) and an
// asker on 100 Mbit/s.
func DefaultSerf() Serf {
	return Serf{GossipInterval: 200 * time.Millisecond, GossipNodes: 3, QueryTimeoutMult: 16, ReplyBytes: 100, Bandwidth: 100e6 / 8}
}

// SerfTime is what a serf.Query over n members takes on model m: Hops
// gossip hops to reach them all, Spread their time, Link the answers'
// time on the asker's link, Last when the last answer is in, Timeout
// Serf's default wait, and Bytes what the asker receives.
type SerfTime struct {
	Hops                        int
	Spread, Link, Last, Timeout time.Duration
	Bytes                       int64
}

// Time models a serf.Query over n members.
func (s Serf) Time(m *Model, n int) SerfTime {
	x := float64(max(n, 2))
	hops := query.PushFanoutRounds(max(n, 2), s.GossipNodes)
	half := m.Median() / 2
	t := SerfTime{Hops: hops, Bytes: int64(n) * int64(s.ReplyBytes)}
	t.Spread = time.Duration(hops) * (s.GossipInterval/2 + half)
	t.Link = time.Duration(float64(t.Bytes) / s.Bandwidth * float64(time.Second))
	// The answers arrive while the query spreads: the link is the
	// bottleneck only when it takes longer than the spread.
	t.Last = max(t.Spread+half, t.Link+half)
	t.Timeout = s.GossipInterval * time.Duration(s.QueryTimeoutMult) * time.Duration(math.Ceil(math.Log10(x+1)))
	return t
}
