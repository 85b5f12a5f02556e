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
	Msg   []byte // the core's encoded message
}

// Batch wire format, version 1 (encoding/binary varints):
//
//	version(1) count(uvarint), then per entry:
//	id(16) kind(1) round(uvarint) plan(len uvarint, bytes) msg(len uvarint, bytes)
const (
	batchVersion = 1
	// MaxBatchEntries bounds the queries one exchange carries.
	MaxBatchEntries = 256
	// maxField bounds a plan or message inside a batch.
	maxField = 4 << 20
)

// ErrMalformed wraps every reason decodeBatch refuses an exchange.
var ErrMalformed = errors.New("node: malformed exchange")

func encodeBatch(es []entry) []byte {
	b := []byte{batchVersion}
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = append(b, e.ID[:]...)
		b = append(b, byte(e.Kind))
		b = binary.AppendUvarint(b, uint64(e.Round))
		b = binary.AppendUvarint(b, uint64(len(e.Plan)))
		b = append(b, e.Plan...)
		b = binary.AppendUvarint(b, uint64(len(e.Msg)))
		b = append(b, e.Msg...)
	}
	return b
}

func decodeBatch(b []byte) ([]entry, error) {
	fail := func(why string) ([]entry, error) { return nil, fmt.Errorf("%w: %s", ErrMalformed, why) }
	if len(b) < 2 || b[0] != batchVersion {
		return fail("bad version")
	}
	b = b[1:]
	n, k := wire.Uvarint(b)
	if k <= 0 || n > MaxBatchEntries || n > uint64(len(b)) {
		return fail("bad count")
	}
	b = b[k:]
	field := func() ([]byte, bool) {
		l, k := wire.Uvarint(b)
		if k <= 0 || l > maxField || l > uint64(len(b)-k) {
			return nil, false
		}
		f := b[k : k+int(l)]
		b = b[k+int(l):]
		return f, true
	}
	es := make([]entry, 0, n)
	for i := uint64(0); i < n; i++ {
		if len(b) < 17 {
			return fail("truncated entry")
		}
		var e entry
		copy(e.ID[:], b)
		e.Kind = protoKind(b[16])
		b = b[17:]
		if e.Kind != protoAggregate && e.Kind != protoTopK && e.Kind != protoLease {
			return fail("unknown protocol")
		}
		r, k := wire.Uvarint(b)
		if k <= 0 || r > 1<<31 {
			return fail("bad round")
		}
		e.Round = uint32(r)
		b = b[k:]
		var ok1, ok2 bool
		e.Plan, ok1 = field()
		e.Msg, ok2 = field()
		if !ok1 || !ok2 {
			return fail("bad field")
		}
		es = append(es, e)
	}
	if len(b) != 0 {
		return fail("trailing bytes")
	}
	return es, nil
}
