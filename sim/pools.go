package sim

import (
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// CloudRounds is what the cloud level adds to a statement in a cloud of
// pools, in rounds (node/pools.go): the asker hands it to a gateway of its
// pool, that gateway starts it at every pool's gateways, they report back
// when their pool's answer is final, and the asker polls its gateway —
// four exchanges one after the other. The model counts each as a round;
// the coordinator's one exchange per gateway (3 a pool) is not gossip, and
// BytesPerPeerRound leaves it out (PoolsResult.CloudBytes has it).
const CloudRounds = 4

// PoolsResult is a statement over a cloud of pools (RunPools).
type PoolsResult struct {
	Pools int
	// Final is the round at which each pool's asker was final (its rule
	// fired, or the budget ran out: Partial counts those).
	Final   []int
	Partial int
	// Rounds is the asker's: the slowest pool's plus CloudRounds.
	Rounds int
	// Err is the merged answer's relative error against the exact answer
	// over every pool's peers.
	Err    float64
	Answer *answer.Answer
	// BytesPerPeerRound is the pools' gossip bytes over their peers and
	// the rounds each ran; CloudBytes what the cloud level sends (the
	// plan to and the partials from every gateway, 3 a pool).
	BytesPerPeerRound float64
	CloudBytes        int64
	// BytesPerWorkingRound divides the same bytes by the peer-rounds in
	// which a peer held the query (Step's Working): a peer that has not
	// heard of it yet sends nothing, and a pool of 10^6 has such peers
	// for most of its first twenty rounds, a pool of 10^3 for a few.
	BytesPerWorkingRound float64
	// BytesPerPeer is the pools' gossip bytes over their peers: what a
	// peer sent for the answer, whatever the rounds.
	BytesPerPeer float64
}

// RunPools runs plan over cfg.Nodes peers spread evenly over pools pools
// (peer i in pool ⌊i·pools/Nodes⌋), each pool a simulation of its own
// (Config.First keeps their records apart), each until its asker's rule
// calls its answer final; it merges the pools' partials as the asker of a
// cloud of pools does (run.Merge). Loss applies inside each pool; crashes,
// joins, churn and liars are not modelled across pools.
func RunPools(plan *query.Plan, cfg Config, pools int) (*PoolsResult, error) {
	if pools < 1 || pools > cfg.Nodes {
		return nil, fmt.Errorf("sim: %d pools for %d peers", pools, cfg.Nodes)
	}
	if cfg.Liars > 0 || cfg.Session > 0 || len(cfg.Crashes) > 0 || len(cfg.Joins) > 0 {
		return nil, errors.New("sim: pools are modelled without liars, churn, crashes or joins")
	}
	res := &PoolsResult{Pools: pools}
	var parts []*run.Partial
	var bytes, peerRounds, workingRounds float64
	wire, err := plan.Encode()
	if err != nil {
		return nil, err
	}
	for k := range pools {
		lo, hi := k*cfg.Nodes/pools, (k+1)*cfg.Nodes/pools
		pc := cfg
		pc.Nodes, pc.First, pc.Seed = hi-lo, cfg.First+lo, cfg.Seed
		s, err := New(plan, pc)
		if err != nil {
			return nil, fmt.Errorf("sim: pool %d: %w", k, err)
		}
		final := 0
		for !s.Done() {
			st := s.Step()
			bytes += float64(st.Bytes)
			peerRounds += float64(st.Alive)
			workingRounds += float64(st.Working)
			if st.RuleConverged {
				final = st.Round
				break
			}
		}
		if final == 0 {
			final = s.round
			res.Partial++
		}
		part, err := s.origin.Partial(len(s.known))
		if err != nil {
			return nil, fmt.Errorf("sim: pool %d: %w", k, err)
		}
		enc, err := part.Encode()
		if err != nil {
			return nil, err
		}
		res.CloudBytes += 3 * int64(len(wire)+len(enc))
		res.Final = append(res.Final, final)
		parts = append(parts, part)
	}
	res.Rounds = slices.Max(res.Final) + CloudRounds
	res.BytesPerPeerRound = bytes / max(peerRounds, 1)
	res.BytesPerWorkingRound = bytes / max(workingRounds, 1)
	res.BytesPerPeer = bytes / float64(cfg.Nodes)
	if res.Answer, err = run.Merge(plan, parts); err != nil {
		return nil, err
	}
	exact := query.ExactSeq(plan, syntheticSeq(cfg.Seed, cfg.First, cfg.Nodes))
	if run.ProtocolOf(plan.Kind) == run.TopK {
		res.Err = 1 - float64(overlap(res.Answer.Nodes, exact.Nodes))/float64(max(len(exact.Nodes), 1))
		return res, nil
	}
	one := &Sim{plan: plan}
	one.setExact(exact)
	res.Err = one.errOf(res.Answer, nil)
	return res, nil
}

// syntheticSeq is the records of peers first … first+n-1.
func syntheticSeq(seed uint64, first, n int) iter.Seq[query.Record] {
	return func(yield func(query.Record) bool) {
		for i := range n {
			if !yield(query.Synthetic(seed, first+i)) {
				return
			}
		}
	}
}

// overlap counts the names of want that got holds.
func overlap(got, want []string) int {
	n := 0
	for _, w := range want {
		if slices.Contains(got, w) {
			n++
		}
	}
	return n
}
