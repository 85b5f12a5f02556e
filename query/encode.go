package query

import (
	"encoding/binary"
	"fmt"
	"math"
)

// SortKey encodes a peer's ORDER BY values into bytes whose lexicographic
// order is the plan's order (smaller is better), for the top-k core: each
// key is a marker byte (1 for a value, 2 for NULL, so NULLs come last in
// either direction) and the value's order-preserving encoding, with every
// byte inverted for DESC.
func (p *Plan) SortKey(r Record) []byte {
	var b []byte
	for _, k := range p.Order {
		v := Eval(k.Expr, r)
		if v.IsNull() {
			b = append(b, 2)
			continue
		}
		b = append(b, 1)
		start := len(b)
		b = appendOrdered(b, v)
		if k.Desc {
			for i := start; i < len(b); i++ {
				b[i] = ^b[i]
			}
		}
	}
	return b
}

// appendOrdered appends an encoding of v whose byte order is Compare's.
func appendOrdered(b []byte, v Value) []byte {
	switch {
	case v.Kind.Numeric():
		// IEEE 754 bits with the sign flipped (and all bits for negatives)
		// sort as the numbers do.
		bits := math.Float64bits(v.Num + 0) // +0 turns -0 into 0
		if bits>>63 == 1 {
			bits = ^bits
		} else {
			bits |= 1 << 63
		}
		return binary.BigEndian.AppendUint64(b, bits)
	case v.Kind == KindString:
		// 0x00 is escaped as 0x00 0xFF and the string ends with 0x00 0x00,
		// so that a prefix sorts first.
		for i := 0; i < len(v.Str); i++ {
			if v.Str[i] == 0 {
				b = append(b, 0, 0xff)
			} else {
				b = append(b, v.Str[i])
			}
		}
		return append(b, 0, 0)
	case v.Kind == KindBool:
		if v.Bool {
			return append(b, 1)
		}
		return append(b, 0)
	}
	return b
}

// EncodeRow encodes values (a projected row, or a GROUP BY key) for the
// wire; equal values encode to equal bytes.
func EncodeRow(vals []Value) []byte {
	b, err := encMode.Marshal(vals)
	if err != nil {
		// Values are plain data; CBOR cannot fail on them.
		panic(fmt.Sprintf("query: encode row: %v", err))
	}
	return b
}

// DecodeRow reads values written by EncodeRow.
func DecodeRow(b []byte) ([]Value, error) {
	var vals []Value
	if err := decMode.Unmarshal(b, &vals); err != nil {
		return nil, fmt.Errorf("query: malformed row: %w", err)
	}
	for _, v := range vals {
		if v.Kind >= kindEnd || !finite(v.Num) {
			return nil, fmt.Errorf("query: malformed row value")
		}
	}
	return vals, nil
}
