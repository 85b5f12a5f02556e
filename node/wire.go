package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/peerq/peerq/internal/wire"
)

// QueryID names one query across the cluster: random, chosen by the
// originator.
type QueryID [16]byte

func (q QueryID) String() string { return fmt.Sprintf("%x", q[:6]) }

// protoKind is the core an entry belongs to.
type protoKind uint8

const (
	protoAggregate protoKind = iota + 1
	protoTopK
	protoLease // a claim, renewal or release of a subcloud lease
)

// entry is one query's message within an exchange.
type entry struct {
	ID    QueryID
	Kind  protoKind
	Round uint32 // the sender's round in this query, for progress
	Plan  []byte // requests only: the encoded plan, so that a peer can join
	// Origin is, in requests, the asker's network coordinate (opaque,
	// from the overlay), from which a peer computes its rtt.
	Origin []byte
	// Coverage is, in requests, the size of a top-k's coverage filter,
	// chosen by the asker (run.CoverageFor).
	Coverage uint32
	Msg      []byte // the core's encoded message
}

// Batch wire format, version 2 (encoding/binary varints):
//
//	version(1) count(uvarint), then per entry:
//	id(16) kind(1) round(uvarint) plan(len uvarint, bytes)
//	origin(len uvarint, bytes) coverage(uvarint) msg(len uvarint, bytes)
const (
	batchVersion = 2
	// maxOrigin bounds the asker's coordinate.
	maxOrigin = 256
	// maxCoverage bounds a coverage filter's size in bits (topk checks it
	// exactly).
	maxCoverage = 1 << 16
	// MaxBatchEntries bounds the queries one exchange carries.
	MaxBatchEntries = 256
	// maxField bounds a plan or message inside a batch.
	maxField = 4 << 20
)

// ErrMalformed wraps every reason decodeBatch refuses an exchange.
var ErrMalformed = errors.New("node: malformed exchange")

func encodeBatch(es []entry) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, e := range es {
		size += len(e.ID) + 1 + 4*binary.MaxVarintLen64 + len(e.Plan) + len(e.Origin) + len(e.Msg)
	}
	b := make([]byte, 1, size)
	b[0] = batchVersion
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = append(b, e.ID[:]...)
		b = append(b, byte(e.Kind))
		b = binary.AppendUvarint(b, uint64(e.Round))
		b = binary.AppendUvarint(b, uint64(len(e.Plan)))
		b = append(b, e.Plan...)
		b = binary.AppendUvarint(b, uint64(len(e.Origin)))
		b = append(b, e.Origin...)
		b = binary.AppendUvarint(b, uint64(e.Coverage))
		b = binary.AppendUvarint(b, uint64(len(e.Msg)))
		b = append(b, e.Msg...)
	}
	return b
}

func decodeBatch(b []byte) ([]entry, error) {
	d := wire.NewReader(b, ErrMalformed)
	if v := d.Byte(); v != batchVersion {
		d.Fail(fmt.Sprintf("version %d, want %d", v, batchVersion))
	}
	n := d.Count(MaxBatchEntries)
	es := make([]entry, 0, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		var e entry
		copy(e.ID[:], d.Next(len(e.ID)))
		if e.Kind = protoKind(d.Byte()); e.Kind != protoAggregate && e.Kind != protoTopK && e.Kind != protoLease {
			d.Fail("unknown protocol")
		}
		r := d.Uvarint()
		if r > 1<<31 {
			d.Fail("bad round")
		}
		e.Round = uint32(r)
		// Plan and Msg alias b, which the exchange hands over for good
		// (overlay.Handler); the plan bytes are kept for forwarding.
		e.Plan = d.Next(d.Count(maxField))
		e.Origin = d.Next(d.Count(maxOrigin))
		if c := d.Uvarint(); c > maxCoverage {
			d.Fail("bad coverage")
		} else {
			e.Coverage = uint32(c)
		}
		e.Msg = d.Next(d.Count(maxField))
		es = append(es, e)
	}
	if err := d.Done(); err != nil {
		return nil, err
	}
	return es, nil
}
