package wire

import (
	"encoding/binary"
	"fmt"
)

// Reader reads a message field by field. The first failure sticks: every
// later read returns zero, and Err reports the first reason, wrapped in the
// decoding package's sentinel with the byte offset. That keeps decoders
// flat — they read everything, then check Err once — and is what the
// aggregate, top-k, exchange-batch and frame decoders share.
type Reader struct {
	b   []byte
	i   int
	err error
	bad error // the package's sentinel, e.g. aggregate.ErrMalformed
}

// NewReader reads b; failures wrap bad.
func NewReader(b []byte, bad error) *Reader { return &Reader{b: b, bad: bad} }

// Fail records why the input is refused, unless a reason is already known.
func (r *Reader) Fail(why string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d", r.bad, why, r.i)
	}
}

// Err is the first failure, or nil.
func (r *Reader) Err() error { return r.err }

// Len is the number of bytes not yet read.
func (r *Reader) Len() int { return len(r.b) - r.i }

// Done fails the input if bytes are left over, and returns Err.
func (r *Reader) Done() error {
	if r.err == nil && r.i != len(r.b) {
		r.Fail("trailing bytes")
	}
	return r.err
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil || r.i >= len(r.b) {
		r.Fail("truncated")
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

// Uvarint reads a varint in its shortest form.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, n := Uvarint(r.b[r.i:])
	if n <= 0 {
		r.Fail("bad varint") // malformed, or not in its shortest form
		return 0
	}
	r.i += n
	return x
}

// Uint64 reads eight bytes, little-endian.
func (r *Reader) Uint64() uint64 {
	if r.err != nil || r.Len() < 8 {
		r.Fail("truncated")
		return 0
	}
	x := binary.LittleEndian.Uint64(r.b[r.i:])
	r.i += 8
	return x
}

// Count reads a length and checks it against limit and the bytes left, so
// that no hostile length makes a decoder allocate or loop beyond its input.
func (r *Reader) Count(limit int) int {
	x := r.Uvarint()
	if x > uint64(limit) || x > uint64(r.Len()) {
		r.Fail("length out of range")
		return 0
	}
	return int(x)
}

// Next returns the next n bytes without copying: the result aliases the
// input, so it is for callers that own the buffer.
func (r *Reader) Next(n int) []byte {
	if r.err != nil || r.Len() < n {
		r.Fail("truncated")
		return nil
	}
	r.i += n
	return r.b[r.i-n : r.i : r.i]
}

// Bytes returns a copy of the next n bytes.
func (r *Reader) Bytes(n int) []byte {
	if b := r.Next(n); b != nil {
		return append([]byte(nil), b...)
	}
	return nil
}

// Field reads a length-prefixed field of at most limit bytes, copied.
func (r *Reader) Field(limit int) []byte { return r.Bytes(r.Count(limit)) }

// Rest returns the bytes not yet read, without copying, and reads them.
func (r *Reader) Rest() []byte { return r.Next(r.Len()) }

// Uint64Big reads eight bytes, big-endian.
func (r *Reader) Uint64Big() uint64 {
	if r.err != nil || r.Len() < 8 {
		r.Fail("truncated")
		return 0
	}
	x := binary.BigEndian.Uint64(r.b[r.i:])
	r.i += 8
	return x
}
