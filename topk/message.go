package topk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/peerq/peerq/internal/wire"
)

// Wire format, version 4, varints from encoding/binary:
//
//	version(1) kind(1) flags(1) digest(uvarint, 0: none) n(uvarint) then
//	n × (node, key, row, proof), each as len(uvarint) and bytes; then the
//	coverage filter: words(uvarint) and, dense, that many 64-bit words,
//	little-endian, or, with FlagSparse, pairs(uvarint) and that many
//	(gap(uvarint), word(8)): the index of each word past the last, and
//	the word, never zero.
const (
	// WireVersion is the first byte of every message.
	WireVersion = 4
	// MaxEntries is the most entries a message may carry.
	MaxEntries = 4096
	// MaxFieldBytes bounds a node name, a key and a row.
	MaxFieldBytes = 4096
	// MaxProofBytes bounds an entry's proof (an ed25519 signature is 64).
	MaxProofBytes = 128
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
	b = append(b, WireVersion, byte(m.Kind), m.flags())
	b = binary.AppendUvarint(b, m.Digest)
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for _, e := range m.Entries {
		for _, f := range [][]byte{[]byte(e.Node), e.Key, e.Row, e.Proof} {
			b = binary.AppendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(m.Seen)))
	if !m.Sparse || len(m.Seen) == 0 {
		for _, w := range m.Seen {
			b = binary.LittleEndian.AppendUint64(b, w)
		}
		return b
	}
	b = binary.AppendUvarint(b, uint64(nonzero(m.Seen)))
	last := -1
	for i, w := range m.Seen {
		if w != 0 {
			b = binary.AppendUvarint(b, uint64(i-last-1))
			b = binary.LittleEndian.AppendUint64(b, w)
			last = i
		}
	}
	return b
}

// The flag bits.
const (
	// FlagNoSeen: the requester wants no filter in the reply.
	FlagNoSeen = 1 << iota
	// FlagSparse: the filter is sent as its nonzero words.
	FlagSparse
)

func (m *Message) flags() byte {
	var f byte
	if m.NoSeen {
		f |= FlagNoSeen
	}
	if m.Sparse && len(m.Seen) > 0 {
		f |= FlagSparse
	}
	return f
}

func nonzero(f []uint64) int {
	c := 0
	for _, w := range f {
		if w != 0 {
			c++
		}
	}
	return c
}

// Size is len(m.Encode(nil)), computed without encoding.
func (m *Message) Size() int {
	n := 3 + wire.UvarintLen(m.Digest) + wire.UvarintLen(uint64(len(m.Entries)))
	for _, e := range m.Entries {
		n += EntrySize(e)
	}
	n += wire.UvarintLen(uint64(len(m.Seen)))
	if !m.Sparse || len(m.Seen) == 0 {
		return n + 8*len(m.Seen)
	}
	n += wire.UvarintLen(uint64(nonzero(m.Seen)))
	last := -1
	for i, w := range m.Seen {
		if w != 0 {
			n += wire.UvarintLen(uint64(i-last-1)) + 8
			last = i
		}
	}
	return n
}

// EntrySize is the encoded size of one entry.
func EntrySize(e *Entry) int {
	return wire.UvarintLen(uint64(len(e.Node))) + len(e.Node) + wire.UvarintLen(uint64(len(e.Key))) + len(e.Key) + wire.UvarintLen(uint64(len(e.Row))) + len(e.Row) +
		wire.UvarintLen(uint64(len(e.Proof))) + len(e.Proof)
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
	f := d.Byte()
	if f&^(FlagNoSeen|FlagSparse) != 0 {
		d.Fail(fmt.Sprintf("flags %#x", f))
	}
	m.NoSeen, m.Sparse = f&FlagNoSeen != 0, f&FlagSparse != 0
	m.Digest = d.Uvarint()
	n := d.Count(MaxEntries)
	for i := 0; i < n && d.Err() == nil; i++ {
		e := &Entry{Node: string(d.Next(d.Count(MaxFieldBytes))), Key: d.Next(d.Count(MaxFieldBytes)), Row: d.Next(d.Count(MaxFieldBytes)),
			Proof: d.Next(d.Count(MaxProofBytes))}
		if e.Node == "" {
			d.Fail("entry without a node")
		}
		m.Entries = append(m.Entries, e)
	}
	// The filter's size is bounded before it is allocated; a dense
	// filter must be present in full, a sparse one names each word once,
	// in order, never zero (one encoding per filter).
	w := d.Uvarint()
	switch {
	case w > MaxCoverageBits/64 || !m.Sparse && w*8 > uint64(d.Len()):
		d.Fail("filter length out of range")
	case w == 0 && m.Sparse:
		d.Fail("a sparse filter of no words")
	case w > 0 && d.Err() == nil:
		m.Seen = make([]uint64, w)
		if !m.Sparse {
			for i := range m.Seen {
				m.Seen[i] = d.Uint64()
			}
			break
		}
		pairs, at := d.Count(int(w)), -1
		for p := 0; p < pairs && d.Err() == nil; p++ {
			at += 1 + int(min(d.Uvarint(), w))
			word := d.Uint64()
			if at >= int(w) || word == 0 {
				d.Fail("sparse filter out of range")
				break
			}
			m.Seen[at] = word
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
