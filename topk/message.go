package topk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/peerq/peerq/internal/wire"
)

// Wire format, version 2, varints from encoding/binary:
//
//	version(1) kind(1) digest(uvarint, 0: none) n(uvarint) then n ×
//	(node, key, row), each as len(uvarint) and bytes; then the coverage
//	filter: words(uvarint) and that many 64-bit words, little-endian.
const (
	// WireVersion is the first byte of every message.
	WireVersion = 2
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
	if b == nil {
		b = make([]byte, 0, m.Size())
	}
	b = append(b, WireVersion, byte(m.Kind))
	b = binary.AppendUvarint(b, m.Digest)
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for _, e := range m.Entries {
		for _, f := range [][]byte{[]byte(e.Node), e.Key, e.Row} {
			b = binary.AppendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(m.Seen)))
	for _, w := range m.Seen {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return b
}

// Size is len(m.Encode(nil)), computed without encoding.
func (m *Message) Size() int {
	n := 2 + wire.UvarintLen(m.Digest) + wire.UvarintLen(uint64(len(m.Entries)))
	for _, e := range m.Entries {
		n += EntrySize(e)
	}
	return n + wire.UvarintLen(uint64(len(m.Seen))) + 8*len(m.Seen)
}

// EntrySize is the encoded size of one entry.
func EntrySize(e *Entry) int {
	return wire.UvarintLen(uint64(len(e.Node))) + len(e.Node) + wire.UvarintLen(uint64(len(e.Key))) + len(e.Key) + wire.UvarintLen(uint64(len(e.Row))) + len(e.Row)
}

// Decode reads a message. It refuses oversized, malformed or unsorted input
// with an error wrapping ErrMalformed, and never panics.
func Decode(b []byte) (*Message, error) {
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), MaxMessageBytes)
	}
	// One copy of the whole message; the entries alias it (they are
	// immutable), rather than three allocations per entry.
	d := wire.NewReader(bytes.Clone(b), ErrMalformed)
	if v := d.Byte(); v != WireVersion {
		d.Fail(fmt.Sprintf("version %d, want %d", v, WireVersion))
	}
	m := &Message{Kind: MsgKind(d.Byte())}
	if m.Kind != Request && m.Kind != Reply {
		d.Fail(fmt.Sprintf("kind %d", m.Kind))
	}
	m.Digest = d.Uvarint()
	n := d.Count(MaxEntries)
	for i := 0; i < n && d.Err() == nil; i++ {
		e := &Entry{Node: string(d.Next(d.Count(MaxFieldBytes))), Key: d.Next(d.Count(MaxFieldBytes)), Row: d.Next(d.Count(MaxFieldBytes))}
		if e.Node == "" {
			d.Fail("entry without a node")
		}
		m.Entries = append(m.Entries, e)
	}
	if w := d.Count(MaxCoverageBits / 64); w > 0 {
		m.Seen = make([]uint64, w)
		for i := range m.Seen {
			m.Seen[i] = d.Uint64()
		}
	}
	if err := d.Done(); err != nil {
		return nil, err
	}
	if !sorted(m.Entries) {
		return nil, fmt.Errorf("%w: entries not in order", ErrMalformed)
	}
	return m, nil
}
