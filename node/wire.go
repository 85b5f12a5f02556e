package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/peerq/peerq/internal/wire"
	"github.com/peerq/peerq/run"
)

// QueryID names one query across the cluster: random, chosen by the
// originator.
type QueryID [16]byte

func (q QueryID) String() string { return fmt.Sprintf("%x", q[:6]) }

// protoKind is what an entry carries.
type protoKind uint8

const (
	protoAggregate protoKind = iota + 1
	protoTopK
	protoLease  // a claim, renewal or release of a subcloud lease
	protoEnd    // the query is over: drop it (spreads as a rumor)
	protoRefuse // the sender will not join the query (sent to its asker)
	// protoProbe asks the receiver to ping the member named in Asker (an
	// indirect probe, SWIM's: the sender could not reach it); the answer
	// is the same kind, Round 1 if the receiver reached it.
	protoProbe
	// protoSample asks the receiver, one of the members an aggregate's
	// asker sampled, for the attributes the plan (in Plan) reads, signed
	// (sample.go); the answer is the same kind, its Msg the row and the
	// signature.
	protoSample
	// protoPool carries the pools role's requests between an asker and a
	// gateway of its pool (pools.go); the answer is the same kind.
	protoPool
	protoEnd_
)

// entry is one query's message within an exchange.
type entry struct {
	ID    QueryID
	Kind  protoKind
	Round uint32 // the sender's round in this query, for progress
	Plan  []byte // requests only: the encoded plan, so that a peer can join
	// Origin is, in requests, the asker's network coordinate (opaque,
	// from the overlay), from which a peer computes its rtt; Asker its
	// name, to which a peer that refuses to join says so.
	Origin []byte
	Asker  string
	// Coverage is, in requests, the size of a top-k's coverage filter,
	// chosen by the asker (run.CoverageFor).
	Coverage uint32
	Msg      []byte // the core's encoded message (received)
	// msg is, in an entry to send, the core's message, encoded straight
	// into the batch (run.Instance.Messages): under the lock that
	// guards the core, since it holds the core's buffers.
	msg run.Message
	// Excluded are the members left out of the query so far, as the
	// sender knows them (a grow-only set, at most MaxExcluded): each
	// receiver merges them and leaves them out too.
	Excluded []string
}

// announces says whether the entry is an announcement (runtime.announce):
// a query's plan without a message of its core, which a core never
// sends (every encoded message has at least its version byte).
func (e entry) announces() bool { return e.msg == nil && len(e.Msg) == 0 && len(e.Plan) > 0 }

// holds says whether the entry is the reply of a peer that held a query
// already to an announcement of it: the query's kind, no plan and no
// message of its core.
func (e entry) holds() bool {
	return (e.Kind == protoAggregate || e.Kind == protoTopK) && e.msg == nil && len(e.Msg) == 0 && len(e.Plan) == 0
}

// hint is a peer the sender failed to reach AgeMillis ago: a suspicion an
// asking peer checks for itself before it trusts an answer (suspect.go).
type hint struct {
	Name      string
	AgeMillis uint32
}

// batch is one exchange's request or response.
type batch struct {
	Hints   []hint
	Entries []entry
}

// Batch wire format, version 3 (encoding/binary varints):
//
//	version(1)
//	hints(uvarint), then per hint: name(len uvarint, bytes) age-ms(uvarint)
//	count(uvarint), then per entry:
//	id(16) kind(1) round(uvarint) plan(len uvarint, bytes)
//	origin(len uvarint, bytes) asker(len uvarint, bytes) coverage(uvarint)
//	msg(len uvarint, bytes) excluded(uvarint), then per name (len uvarint, bytes)
const (
	batchVersion = 3
	// maxOrigin bounds the asker's coordinate; maxName a node name.
	maxOrigin = 256
	maxName   = 512
	// maxCoverage bounds a coverage filter's size in bits (topk checks it
	// exactly).
	maxCoverage = 1 << 16
	// MaxBatchEntries bounds the queries one exchange carries.
	MaxBatchEntries = 4096
	// MaxHints bounds the suspicions one exchange carries.
	MaxHints = 16
	// MaxExcluded bounds the members a query's peers tell each other
	// they left out; beyond, a lost member is left out only by the peers
	// that found it, and the answer is partial if those could move it
	// past the accuracy (run.Blocking). 64 made 92% of the answers
	// partial at 10^4 peers with sessions of 10 minutes (~190 members
	// that Serf still lists are dead at any time: peerq sim --session
	// 10m); 256 makes them all converged, at ~3 KB a message while that
	// many are left out.
	MaxExcluded = 256
	// maxField bounds a plan or message inside a batch.
	maxField = 4 << 20
)

// ErrMalformed wraps every reason decodeBatch refuses an exchange.
var ErrMalformed = errors.New("node: malformed exchange")

func encodeBatch(b batch) []byte {
	size := 1 + 2*binary.MaxVarintLen64
	for _, h := range b.Hints {
		size += 2*binary.MaxVarintLen64 + len(h.Name)
	}
	for _, e := range b.Entries {
		size += len(e.ID) + 1 + 7*binary.MaxVarintLen64 + len(e.Plan) + len(e.Origin) + len(e.Asker) + len(e.Msg)
		if e.msg != nil {
			size += e.msg.Size()
		}
		for _, x := range e.Excluded {
			size += binary.MaxVarintLen64 + len(x)
		}
	}
	out := make([]byte, 1, size)
	out[0] = batchVersion
	out = binary.AppendUvarint(out, uint64(len(b.Hints)))
	for _, h := range b.Hints {
		out = binary.AppendUvarint(out, uint64(len(h.Name)))
		out = append(out, h.Name...)
		out = binary.AppendUvarint(out, uint64(h.AgeMillis))
	}
	out = binary.AppendUvarint(out, uint64(len(b.Entries)))
	for _, e := range b.Entries {
		out = append(out, e.ID[:]...)
		out = append(out, byte(e.Kind))
		out = binary.AppendUvarint(out, uint64(e.Round))
		for _, f := range [][]byte{e.Plan, e.Origin, []byte(e.Asker)} {
			out = binary.AppendUvarint(out, uint64(len(f)))
			out = append(out, f...)
		}
		out = binary.AppendUvarint(out, uint64(e.Coverage))
		if e.msg != nil {
			out = binary.AppendUvarint(out, uint64(e.msg.Size()))
			out = e.msg.Encode(out)
		} else {
			out = binary.AppendUvarint(out, uint64(len(e.Msg)))
			out = append(out, e.Msg...)
		}
		out = binary.AppendUvarint(out, uint64(len(e.Excluded)))
		for _, x := range e.Excluded {
			out = binary.AppendUvarint(out, uint64(len(x)))
			out = append(out, x...)
		}
	}
	return out
}

func decodeBatch(in []byte) (batch, error) {
	var b batch
	d := wire.NewReader(in, ErrMalformed)
	if v := d.Byte(); v != batchVersion {
		d.Fail(fmt.Sprintf("version %d, want %d", v, batchVersion))
	}
	nh := d.Count(MaxHints)
	for i := 0; i < nh && d.Err() == nil; i++ {
		h := hint{Name: string(d.Next(d.Count(maxName)))}
		if age := d.Uvarint(); age > 1<<31 {
			d.Fail("bad hint age")
		} else {
			h.AgeMillis = uint32(age)
		}
		if h.Name == "" {
			d.Fail("hint without a name")
		}
		b.Hints = append(b.Hints, h)
	}
	n := d.Count(MaxBatchEntries)
	if d.Err() == nil {
		b.Entries = make([]entry, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		var e entry
		copy(e.ID[:], d.Next(len(e.ID)))
		if e.Kind = protoKind(d.Byte()); e.Kind == 0 || e.Kind >= protoEnd_ {
			d.Fail("unknown protocol")
		}
		r := d.Uvarint()
		if r > 1<<31 {
			d.Fail("bad round")
		}
		e.Round = uint32(r)
		// Plan and Msg alias the input, which the exchange hands over for
		// good (network.Handler); the plan bytes are kept for forwarding.
		e.Plan = d.Next(d.Count(maxField))
		e.Origin = d.Next(d.Count(maxOrigin))
		e.Asker = string(d.Next(d.Count(maxName)))
		if c := d.Uvarint(); c > maxCoverage {
			d.Fail("bad coverage")
		} else {
			e.Coverage = uint32(c)
		}
		e.Msg = d.Next(d.Count(maxField))
		nx := d.Count(MaxExcluded)
		for j := 0; j < nx && d.Err() == nil; j++ {
			x := string(d.Next(d.Count(maxName)))
			if x == "" {
				d.Fail("an excluded member without a name")
			}
			e.Excluded = append(e.Excluded, x)
		}
		b.Entries = append(b.Entries, e)
	}
	if err := d.Done(); err != nil {
		return batch{}, err
	}
	return b, nil
}
