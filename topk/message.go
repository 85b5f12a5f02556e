package topk

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/peerq/peerq/internal/wire"
)

// Wire format, version 1, varints from encoding/binary:
//
//	version(1) kind(1) n(uvarint) then n × (node, key, row), each
//	as len(uvarint) and bytes.
const (
	// WireVersion is the first byte of every message.
	WireVersion = 1
	// MaxEntries is the most entries a message may carry.
	MaxEntries = 4096
	// MaxFieldBytes bounds a node name, a key and a row.
	MaxFieldBytes = 4096
	// MaxMessageBytes is the largest message a peer accepts.
	MaxMessageBytes = 4 << 20
)

// ErrMalformed wraps every reason Decode refuses a message.
var ErrMalformed = errors.New("topk: malformed message")

// Encode appends the wire form of m to b.
func (m *Message) Encode(b []byte) []byte {
	b = append(b, WireVersion, byte(m.Kind))
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for _, e := range m.Entries {
		for _, f := range [][]byte{[]byte(e.Node), e.Key, e.Row} {
			b = binary.AppendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
	}
	return b
}

// Size is len(m.Encode(nil)), computed without encoding.
func (m *Message) Size() int {
	n := 2 + wire.UvarintLen(uint64(len(m.Entries)))
	for _, e := range m.Entries {
		n += EntrySize(e)
	}
	return n
}

// EntrySize is the encoded size of one entry.
func EntrySize(e *Entry) int {
	return wire.UvarintLen(uint64(len(e.Node))) + len(e.Node) + wire.UvarintLen(uint64(len(e.Key))) + len(e.Key) + wire.UvarintLen(uint64(len(e.Row))) + len(e.Row)
}

// Decode reads a message. It refuses oversized, malformed or unsorted input
// with an error wrapping ErrMalformed, and never panics.
func Decode(b []byte) (*Message, error) {
	fail := func(why string) (*Message, error) { return nil, fmt.Errorf("%w: %s", ErrMalformed, why) }
	if len(b) > MaxMessageBytes {
		return fail(fmt.Sprintf("%d bytes, more than %d", len(b), MaxMessageBytes))
	}
	if len(b) < 2 || b[0] != WireVersion {
		return fail("bad version")
	}
	m := &Message{Kind: MsgKind(b[1])}
	if m.Kind != Request && m.Kind != Reply {
		return fail(fmt.Sprintf("kind %d", b[1]))
	}
	b = b[2:]
	count, k := wire.Uvarint(b)
	if k <= 0 || count > MaxEntries || count > uint64(len(b)) {
		return fail("bad entry count")
	}
	b = b[k:]
	field := func() ([]byte, bool) {
		l, k := wire.Uvarint(b)
		if k <= 0 || l > MaxFieldBytes || l > uint64(len(b)-k) {
			return nil, false
		}
		f := append([]byte(nil), b[k:k+int(l)]...)
		b = b[k+int(l):]
		return f, true
	}
	for i := uint64(0); i < count; i++ {
		node, ok1 := field()
		key, ok2 := field()
		row, ok3 := field()
		if !ok1 || !ok2 || !ok3 || len(node) == 0 {
			return fail("bad entry")
		}
		m.Entries = append(m.Entries, &Entry{Node: string(node), Key: key, Row: row})
	}
	if len(b) != 0 {
		return fail("trailing bytes")
	}
	if !sorted(m.Entries) {
		return fail("entries not in order")
	}
	return m, nil
}
