package shell

import (
	"strings"
	"testing"

	"github.com/peerq/peerq/answer"
)

// The footer says, as psql's does, how many rows; and always the status:
// exact, converged, sampled, partial or contested.
func TestFooter(t *testing.T) {
	for _, c := range []struct {
		rows int
		m    answer.Meta
		want string
	}{
		{1, answer.Meta{Status: answer.StatusConverged, Protocol: answer.ProtocolAggregate, Peers: 200, Rounds: 12, Elapsed: 0.2104, ErrEstimate: 1, Converged: true},
			"(1 row) · converged · 200 peers · 12 rounds · 210 ms · error ±100% (estimated)"},
		{3, answer.Meta{Status: answer.StatusExact, Peers: 200, Elapsed: 0.0004, FromTags: true, Converged: true},
			"(3 rows) · exact · 200 peers · from membership tags, no gossip · 0 ms"},
		{0, answer.Meta{Status: answer.StatusPartial, Protocol: answer.ProtocolTopK, Peers: 8, Rounds: 3, Elapsed: 1.5, Reason: "the statement's timeout ended it"},
			"(0 rows) · partial · 8 peers · 3 rounds · 1.50 s · PARTIAL: the statement's timeout ended it"},
		// A status left to Converged (an older agent's answer) is still said.
		{2, answer.Meta{Peers: 8, Rounds: 3, Elapsed: 0.05, Converged: false},
			"(2 rows) · partial · 8 peers · 3 rounds · 50 ms · PARTIAL"},
		{1, answer.Meta{Status: answer.StatusContested, Protocol: answer.ProtocolAggregate, Peers: 8, Rounds: 3, Elapsed: 0.05, ErrEstimate: 0.001, Reason: "bent",
			Check: &answer.Check{Sampled: 8, Verdict: answer.CheckContested, Text: [][]string{{"5"}}}},
			"(1 row) · contested · 8 peers · 3 rounds · 50 ms · error ±0.1% (estimated) · CONTESTED: bent · the 8 sampled members alone say: 5"},
		{1, answer.Meta{Status: answer.StatusSampled, Protocol: answer.ProtocolAggregate, Peers: 9000, Rounds: 40, Elapsed: 2.5, ErrEstimate: 0.024, Reason: "the gossip was bent (x); this is the answer of 4096 sampled members' signed records alone",
			Check: &answer.Check{Sampled: 4096, Verdict: answer.CheckContested, Text: [][]string{{"5"}}}},
			"(1 row) · sampled · 9000 peers · 40 rounds · 2.50 s · error ±2.4% (95%, the sample's) · SAMPLED: the gossip was bent (x); this is the answer of 4096 sampled members' signed records alone"},
		{1, answer.Meta{Status: answer.StatusExact, Protocol: answer.ProtocolReserve, Peers: 1, Rounds: 1, Elapsed: 0.01},
			"(1 row) · exact · 1 peer · 1 round · 10 ms"},
	} {
		if got := Footer(c.rows, &c.m); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

// Percentages are written out, never with an exponent (progress printed
// ±1e+02%).
func TestPercentWithoutExponent(t *testing.T) {
	for ratio, want := range map[float64]string{1: "100%", 0.975: "97.5%", 1234: "123400%", 0.00001234: "0.001234%", 0.0000001234: "0.00001234%", 0: "0%"} {
		if got := answer.FormatPercent(ratio); got != want || strings.Contains(got, "e") {
			t.Errorf("FormatPercent(%v) = %s, want %s", ratio, got, want)
		}
	}
}
