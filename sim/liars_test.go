package sim

import "testing"

// Liars that write top-k entries for other nodes — unsigned, or under
// the nodes' own signatures — get no entry into any list: their messages
// are refused, and the asker's top-k is the honest one. Mutation: with the
// signatures' model off (newSeal returning nil), all 50 entries of the
// asker's list were forged (peerq sim --nodes 2000 … --liars 0.01).
func TestLiarsCannotForge(t *testing.T) {
	p := plan(t, "SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 50")
	for _, lie := range []Lie{LieForge, LieAlter} {
		t.Run(lie.String(), func(t *testing.T) {
			cfg := DefaultConfig(1000)
			cfg.Liars, cfg.Lie = 0.02, lie
			s, err := New(p, cfg)
			if err != nil {
				t.Fatal(err)
			}
			refused := 0
			var last RoundStats
			for !s.Done() {
				last = s.Step()
				refused += last.LiesRefused
			}
			if n, err := s.Refused(); n > 0 {
				t.Errorf("%d honest messages refused: %v", n, err)
			}
			if refused == 0 {
				t.Error("no lie was refused: the liars did not lie")
			}
			if last.ForgedAccepted != 0 || last.OriginErr != 0 {
				t.Errorf("forged entries in the asker's list: %d; its top-50 exact: %v", last.ForgedAccepted, last.OriginErr == 0)
			}
		})
	}
}
