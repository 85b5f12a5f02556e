package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/peerq/peerq/peer"
	"math"

	"github.com/peerq/peerq/internal/wire"
)

// MsgKind is the kind of an exchange message.
type MsgKind uint8

// The kinds of message.
const (
	Request MsgKind = iota + 1
	Reply
)

// GroupKey announces a group: its hash and its encoded key.
type GroupKey struct {
	Hash uint64
	Key  []byte
}

// HLLRegs is a distinct-count sketch in a slot.
type HLLRegs struct {
	Slot uint64
	Regs []byte
}

// Message is one exchange message of the aggregation protocol.
type Message struct {
	Kind   MsgKind
	Scheme Scheme
	Seq    uint32 // the link (initiator's exchange number)
	// Flow is, for Flow Updating, the sender's flow on the link; for
	// push-pull, the request's state or the reply's state before the
	// exchange.
	Flow Vec
	// Est is the sender's estimate, in Flow Updating requests.
	Est    Vec
	Groups []GroupKey
	Ext    []Extreme
	HLL    []HLLRegs
}

// Wire format, version 2, little-endian, varints from encoding/binary:
//
//	version(1) kind|scheme<<4 (1) seq(uvarint)
//	flow: n(uvarint) then n × (key delta(uvarint), value(float64 bits, 8))
//	est:  likewise
//	groups: n, then n × (hash(uvarint), len(uvarint), bytes)
//	ext:    n, then n × (slot(uvarint), witness(uvarint), flag(1), float64 bits(8) | len, bytes,
//	        node(len, bytes), proof(len, bytes))
//	hll:    n, then n × (slot(uvarint), HLLRegisters bytes)
const (
	// WireVersion is the first byte of every message.
	WireVersion = 3
	// MaxMessageBytes is the largest message a peer accepts.
	MaxMessageBytes = 1 << 20
	// MaxVecSlots bounds each vector of a message.
	MaxVecSlots = 1 << 16
	// MaxKeyBytes bounds a group key and a string extreme.
	MaxKeyBytes   = 1 << 12
	maxWireGroups = 1024
	// MaxProofBytes bounds an extreme's proof (an ed25519 signature is 64).
	MaxProofBytes = 128
)

// ErrMalformed wraps every reason Decode refuses a message.
var ErrMalformed = errors.New("aggregate: malformed message")

// Encode appends the wire form of m to b.
func (m *Message) Encode(b []byte) []byte {
	if b == nil {
		b = make([]byte, 0, m.Size())
	}
	b = append(b, WireVersion, byte(m.Kind)|byte(m.Scheme)<<4)
	b = binary.AppendUvarint(b, uint64(m.Seq))
	b = appendVec(b, &m.Flow)
	b = appendVec(b, &m.Est)
	b = binary.AppendUvarint(b, uint64(len(m.Groups)))
	for _, g := range m.Groups {
		b = binary.AppendUvarint(b, g.Hash)
		b = binary.AppendUvarint(b, uint64(len(g.Key)))
		b = append(b, g.Key...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Ext)))
	for _, e := range m.Ext {
		b = binary.AppendUvarint(b, e.Slot)
		b = binary.AppendUvarint(b, uint64(e.Witness))
		if e.IsStr {
			b = append(b, 1)
			b = binary.AppendUvarint(b, uint64(len(e.Str)))
			b = append(b, e.Str...)
		} else {
			b = append(b, 0)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.Num))
		}
		b = binary.AppendUvarint(b, uint64(len(e.Node)))
		b = append(b, e.Node...)
		b = binary.AppendUvarint(b, uint64(len(e.Proof)))
		b = append(b, e.Proof...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.HLL)))
	for _, h := range m.HLL {
		b = binary.AppendUvarint(b, h.Slot)
		b = append(b, h.Regs...)
	}
	return b
}

func appendVec(b []byte, v *Vec) []byte {
	b = binary.AppendUvarint(b, uint64(len(v.Keys)))
	prev := uint64(0)
	for i, k := range v.Keys {
		b = binary.AppendUvarint(b, k-prev)
		prev = k
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Vals[i]))
	}
	return b
}

// Size is len(m.Encode(nil)), computed without encoding.
func (m *Message) Size() int {
	n := 2 + wire.UvarintLen(uint64(m.Seq)) + vecSize(&m.Flow) + vecSize(&m.Est)
	n += wire.UvarintLen(uint64(len(m.Groups)))
	for _, g := range m.Groups {
		n += wire.UvarintLen(g.Hash) + wire.UvarintLen(uint64(len(g.Key))) + len(g.Key)
	}
	n += wire.UvarintLen(uint64(len(m.Ext)))
	for _, e := range m.Ext {
		n += wire.UvarintLen(e.Slot) + wire.UvarintLen(uint64(e.Witness)) + 1 +
			wire.UvarintLen(uint64(len(e.Node))) + len(e.Node) + wire.UvarintLen(uint64(len(e.Proof))) + len(e.Proof)
		if e.IsStr {
			n += wire.UvarintLen(uint64(len(e.Str))) + len(e.Str)
		} else {
			n += 8
		}
	}
	n += wire.UvarintLen(uint64(len(m.HLL)))
	for _, h := range m.HLL {
		n += wire.UvarintLen(h.Slot) + len(h.Regs)
	}
	return n
}

func vecSize(v *Vec) int {
	n := wire.UvarintLen(uint64(len(v.Keys))) + 8*len(v.Keys)
	prev := uint64(0)
	for _, k := range v.Keys {
		n += wire.UvarintLen(k - prev)
		prev = k
	}
	return n
}

// Decode reads a message. It refuses oversized or malformed input with an
// error wrapping ErrMalformed, and never panics.
func Decode(b []byte) (*Message, error) {
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), MaxMessageBytes)
	}
	d := wire.NewReader(b, ErrMalformed)
	if v := d.Byte(); v != WireVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, WireVersion)
	}
	ks := d.Byte()
	m := &Message{Kind: MsgKind(ks & 0xf), Scheme: Scheme(ks >> 4)}
	if m.Kind != Request && m.Kind != Reply || m.Scheme != FlowUpdating && m.Scheme != PushPull {
		return nil, fmt.Errorf("%w: kind %d scheme %d", ErrMalformed, m.Kind, m.Scheme)
	}
	seq := d.Uvarint()
	if seq > math.MaxUint32 {
		d.Fail("sequence out of range")
	}
	m.Seq = uint32(seq)
	readVec(d, &m.Flow)
	readVec(d, &m.Est)
	n := d.Count(maxWireGroups)
	for i := 0; i < n && d.Err() == nil; i++ {
		g := GroupKey{Hash: d.Uvarint()}
		g.Key = d.Field(MaxKeyBytes)
		if g.Hash == 0 || g.Hash >= 1<<40 {
			d.Fail("group hash out of range")
		}
		m.Groups = append(m.Groups, g)
	}
	n = d.Count(MaxVecSlots)
	for i := 0; i < n && d.Err() == nil; i++ {
		e := Extreme{Slot: d.Uvarint()}
		e.Witness = peer.ID(d.Uvarint())
		switch d.Byte() {
		case 0:
			e.Num = math.Float64frombits(d.Uint64())
			if math.IsNaN(e.Num) || math.IsInf(e.Num, 0) {
				d.Fail("extreme not finite")
			}
		case 1:
			e.IsStr = true
			e.Str = string(d.Field(MaxKeyBytes))
		default:
			d.Fail("bad extreme flag")
		}
		e.Node = string(d.Field(MaxKeyBytes))
		if proof := d.Field(MaxProofBytes); len(proof) > 0 {
			e.Proof = append([]byte(nil), proof...) // the input may be reused
		}
		m.Ext = append(m.Ext, e)
	}
	n = d.Count(maxWireGroups)
	for i := 0; i < n && d.Err() == nil; i++ {
		h := HLLRegs{Slot: d.Uvarint()}
		h.Regs = d.Bytes(HLLRegisters)
		m.HLL = append(m.HLL, h)
	}
	if err := d.Done(); err != nil {
		return nil, err
	}
	return m, nil
}

// vec reads a sparse vector: keys strictly increasing, values finite.
func readVec(d *wire.Reader, v *Vec) {
	n := d.Count(MaxVecSlots)
	prev := uint64(0)
	for i := 0; i < n && d.Err() == nil; i++ {
		delta := d.Uvarint()
		if i > 0 && delta == 0 || delta > math.MaxUint64-prev {
			d.Fail("slot keys not increasing")
			return
		}
		k := prev + delta
		prev = k
		x := math.Float64frombits(d.Uint64())
		if math.IsNaN(x) || math.IsInf(x, 0) {
			d.Fail("mass not finite")
			return
		}
		v.Keys = append(v.Keys, k)
		v.Vals = append(v.Vals, x)
	}
}
