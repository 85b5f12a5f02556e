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
// with an error wrapping ErrMalformed, and never panics. It does not keep
// b.
func Decode(b []byte) (*Message, error) { return DecodeKnown(b, nil) }

// DecodeKnown is Decode for a peer that holds known, a list in order (its
// own): an entry of the message equal in all its fields to one of known
// is that entry, and only the others are made. A peer's list goes to
// peers that hold most of it already, and making those entries again —
// their bytes, with a 64-byte signature each — and checking them again
// as they entered the list was most of what a top-k allocated and half
// of what its defence cost.
func DecodeKnown(b []byte, known []*Entry) (*Message, error) {
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), MaxMessageBytes)
	}
	d := wire.NewReader(b, ErrMalformed)
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
	// Two passes: the first finds the entries this peer holds and
	// measures the others, the second makes those in one block of
	// entries and one of bytes (they are immutable, and share them).
	start := *d
	fresh, size := 0, 0
	held := matcher{known: known}
	for i := 0; i < n && d.Err() == nil; i++ {
		node, key, row, proof := readEntry(d)
		if held.find(node, key, row) == nil {
			fresh++
			size += len(key) + len(row) + len(proof)
		}
	}
	if d.Err() == nil && n > 0 {
		*d, held = start, matcher{known: known}
		m.Entries = make([]*Entry, 0, n)
		made, buf := make([]Entry, fresh), make([]byte, 0, size)
		field := func(f []byte) []byte {
			if len(f) == 0 {
				return nil
			}
			buf = append(buf, f...)
			return buf[len(buf)-len(f) : len(buf) : len(buf)]
		}
		for i := 0; i < n && d.Err() == nil; i++ {
			node, key, row, proof := readEntry(d)
			if len(node) == 0 {
				d.Fail("entry without a node")
				break
			}
			if e := held.find(node, key, row); e != nil {
				m.Entries = append(m.Entries, e)
				continue
			}
			e := &made[0]
			made = made[1:]
			e.Node, e.Key, e.Row, e.Proof = string(node), field(key), field(row), field(proof)
			m.Entries = append(m.Entries, e)
		}
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

// readEntry reads an entry's fields, aliasing the input.
func readEntry(d *wire.Reader) (node, key, row, proof []byte) {
	return d.Next(d.Count(MaxFieldBytes)), d.Next(d.Count(MaxFieldBytes)), d.Next(d.Count(MaxFieldBytes)), d.Next(d.Count(MaxProofBytes))
}

// matcher finds a message's entries, in order, in a list in the same
// order: one walk for the whole message.
type matcher struct {
	known []*Entry
	j     int
}

// find returns the held entry that says what (node, key, row) says, or
// nil. Its proof is not compared: a held entry was checked as it entered
// the list (or is the peer's own), and one that says the same is that
// record whatever proof it carries — the held one, with its own proof, is
// what the peer keeps and passes on. (Made apart, it would be dropped
// as the held entry's duplicate in merge, unchecked.)
func (m *matcher) find(node, key, row []byte) *Entry {
	for m.j < len(m.known) && compareRaw(m.known[m.j], key, node) < 0 {
		m.j++
	}
	if m.j == len(m.known) {
		return nil
	}
	e := m.known[m.j]
	if compareRaw(e, key, node) != 0 || !bytes.Equal(e.Row, row) {
		return nil
	}
	m.j++
	return e
}

// compareRaw orders e against an entry's raw key and node as Less does.
func compareRaw(e *Entry, key, node []byte) int {
	if c := bytes.Compare(e.Key, key); c != 0 {
		return c
	}
	switch {
	case e.Node < string(node):
		return -1
	case e.Node > string(node):
		return 1
	}
	return 0
}
