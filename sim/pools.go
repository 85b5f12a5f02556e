package sim

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// CloudRounds is what the cloud level adds to a statement in a cloud of
// pools, in rounds: query.CloudExchanges, each counted as a round. The
// coordinator's one exchange per gateway (3 a pool) is not gossip, and
// BytesPerPeerRound leaves it out (PoolsResult.CloudBytes has it).
const CloudRounds = query.CloudExchanges

// PoolsResult is a statement over a cloud of pools (RunPools).
type PoolsResult struct {
	Pools int
	// Final is the round at which each pool's asker was final (its rule
	// fired, or the budget ran out: Partial counts those its sample did
	// not answer for).
	Final   []int
	Partial int
	// OutOfRounds counts the pools whose rule never fired, those their
	// sample answered for among them.
	OutOfRounds int
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
	// BytesPerQueryRound divides BytesPerPeer by the asker's rounds
	// (Rounds): a peer's share of each round of the statement, counting
	// the rounds in which its pool was done and the asker still waited
	// on others — as one pool's run counts, in BytesPerPeerRound, the
	// rounds before the statement reached a peer. It is the unit to
	// compare pools with one pool by: BytesPerPeerRound divides each
	// pool's bytes by its own rounds, so pools that finish sooner (the
	// same bytes in fewer rounds) look dearer by it.
	BytesPerQueryRound float64

	// With liars (Config.Liars): each pool's asker makes the sample
	// check its gateways make (node/pools.go, runPool). Contested names
	// the pools whose check contested their answer, and why; Sampled
	// counts those whose sample answered for them (a robust aggregate
	// bent: run.Fallback), its partial standing in for the gossip's, as
	// the runtime's (node/runtime.go, gossipPartial). The merged
	// answer is contested if any pool's is (Answer.Meta). HonestErr is
	// its relative error against the answer over the honest peers
	// alone; for a top-k, Forged counts its rows that are not their
	// node's own and HonestShare the share of the top-k over the honest
	// peers it holds.
	Contested   []string
	Sampled     int
	HonestErr   float64
	Forged      int
	HonestShare float64
}

// RunPools runs plan over cfg.Nodes peers spread evenly over pools pools
// (peer i in pool ⌊i·pools/Nodes⌋), each pool a simulation of its own
// (Config.First keeps their records apart), each until its asker's rule
// calls its answer final; it merges the pools' partials as the asker of a
// cloud of pools does (run.Merge). Loss applies inside each pool, and
// liars (Config.Liars, never a pool's asker: its gateways are honest
// here, and one that lies is outvoted, node/pools.go); crashes, joins and
// churn are not modelled across pools.
func RunPools(plan *query.Plan, cfg Config, pools int) (*PoolsResult, error) {
	if pools < 1 || pools > cfg.Nodes {
		return nil, fmt.Errorf("sim: %d pools for %d peers", pools, cfg.Nodes)
	}
	if cfg.Session > 0 || len(cfg.Crashes) > 0 || len(cfg.Joins) > 0 {
		return nil, errors.New("sim: pools are modelled without churn, crashes or joins")
	}
	res := &PoolsResult{Pools: pools, HonestErr: math.NaN()}
	var parts []*run.Partial
	var bytes, peerRounds, workingRounds float64
	wire, err := plan.Encode()
	if err != nil {
		return nil, err
	}
	for k := range pools {
		lo, hi := k*cfg.Nodes/pools, (k+1)*cfg.Nodes/pools
		pc := cfg
		pc.Nodes, pc.First, pc.Seed, pc.Pool = hi-lo, cfg.First+lo, cfg.Seed, poolName(k, pools)
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
		v, _, checked := s.Check()
		if final == 0 {
			final = s.round
			res.OutOfRounds++
			if !(checked && s.standIn) {
				res.Partial++ // out of rounds; one its sample answered for is sampled, as in the runtime
			}
		}
		part, err := s.origin.Partial(len(s.known))
		if err != nil {
			return nil, fmt.Errorf("sim: pool %d: %w", k, err)
		}
		if checked && s.standIn {
			// The sample answers for its pool, as the runtime's gateway's
			// does (gossipPartial): an exact partial of its records,
			// scaled to the pool's members.
			if part, err = run.ExactPartial(plan, s.judged); err != nil {
				return nil, fmt.Errorf("sim: pool %d: %w", k, err)
			}
			part.Peers = len(s.known)
			res.Sampled++
		} else if checked && v.Contested {
			res.Contested = append(res.Contested, fmt.Sprintf("pool %d: %s", k, v.Reason))
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
	res.BytesPerQueryRound = res.BytesPerPeer / float64(res.Rounds)
	if res.Answer, err = run.Merge(plan, parts); err != nil {
		return nil, err
	}
	if res.Answer.Meta == nil {
		res.Answer.Meta = &answer.Meta{Status: answer.StatusConverged, Converged: true}
		switch {
		case res.Partial > 0:
			res.Answer.Meta.Status, res.Answer.Meta.Converged = answer.StatusPartial, false
			res.Answer.Meta.Reason = fmt.Sprintf("%d pools ran out of rounds", res.Partial)
		case res.Sampled > 0:
			res.Answer.Meta.Status = answer.StatusSampled // as the runtime's asker says it (node/pools.go, combine)
			res.Answer.Meta.Reason = fmt.Sprintf("%d pools answered by their sample", res.Sampled)
		}
	}
	if len(res.Contested) > 0 {
		res.Answer.Contest(strings.Join(res.Contested, "; "))
	}
	exact := query.ExactSeq(plan, pooledSeq(cfg, pools))
	var honest *answer.Answer
	if cfg.Liars > 0 {
		honest = query.ExactSeq(plan, func(yield func(query.Record) bool) {
			for k := range pools {
				lo, hi := k*cfg.Nodes/pools, (k+1)*cfg.Nodes/pools
				for i := lo; i < hi; i++ { // each pool's asker, lo, never lies (Sim.liar)
					if (i == lo || !lies(cfg.Seed, cfg.Liars, cfg.First+i)) && !yield(pooledRecord(cfg, pools, i)) {
						return
					}
				}
			}
		})
	}
	if run.ProtocolOf(plan.Kind) == run.TopK {
		res.Err = 1 - float64(overlap(res.Answer.Nodes, exact.Nodes))/float64(max(len(exact.Nodes), 1))
		if honest != nil {
			res.HonestShare = float64(overlap(res.Answer.Nodes, honest.Nodes)) / float64(max(len(honest.Nodes), 1))
			res.Forged = forgedRows(plan, parts, res.Answer.Nodes, cfg, pools)
		}
		return res, nil
	}
	one := &Sim{plan: plan}
	one.setExact(exact)
	res.Err = one.errOf(res.Answer, nil)
	if honest != nil {
		keys := map[string][]query.Value{}
		for _, row := range honest.Rows {
			keys[rowKey(plan, row)] = row
		}
		res.HonestErr = one.errAgainst(res.Answer, nil, keys)
	}
	return res, nil
}

// forgedRows counts the entries of the pools' partials that the merged
// top-k kept (nodes) and that are not their node's own: written for it by
// another peer, or changed. A liar's own entry, whatever it claims about
// itself, is its own.
func forgedRows(plan *query.Plan, parts []*run.Partial, nodes []string, cfg Config, pools int) int {
	n := 0
	for _, part := range parts {
		for _, e := range part.Top {
			if !slices.Contains(nodes, e.Node) {
				continue
			}
			j, ok := peerIndex(e.Node)
			if !ok || j < cfg.First || j >= cfg.First+cfg.Nodes {
				n++
				continue
			}
			if lies(cfg.Seed, cfg.Liars, j) {
				continue
			}
			own := run.Entry(plan, pooledRecord(cfg, pools, j-cfg.First))
			if own == nil || !bytes.Equal(own.Key, e.Key) || !bytes.Equal(own.Row, e.Row) {
				n++
			}
		}
	}
	return n
}

// poolName is pool k's name among pools: pool0, pool1, … (node.PoolName),
// none when the cloud is one pool.
func poolName(k, pools int) string {
	if pools < 2 {
		return ""
	}
	return fmt.Sprintf("pool%d", k)
}

// pooledRecord is peer i's record (of cfg.Nodes, First on) in a cloud of
// pools pools: with the pool RunPools puts it in, the k of the range
// [k·N/pools, (k+1)·N/pools) that holds i.
func pooledRecord(cfg Config, pools, i int) query.Record {
	k := ((i+1)*pools+cfg.Nodes-1)/cfg.Nodes - 1
	return withPool(query.Synthetic(cfg.Seed, cfg.First+i), poolName(k, pools))
}

// pooledSeq is every peer's record in a cloud of pools pools.
func pooledSeq(cfg Config, pools int) iter.Seq[query.Record] {
	return func(yield func(query.Record) bool) {
		for i := range cfg.Nodes {
			if !yield(pooledRecord(cfg, pools, i)) {
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
