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

// DecodeSortKey reads a sort key another peer sent: the ORDER BY values it
// encodes, one per key, NULL where the key says so, numbers of their key's
// kind. It refuses (with an error) a key SortKey could not have written: a
// marker other than 1 or 2, a value cut short, a number that is not finite
// or is -0 (SortKey writes 0), a bool other than 0 or 1, a string escape
// other than 0x00 0xFF, a value for a key of no sortable kind, trailing
// bytes. So one list of values has one key, and the values are what the
// entry is ordered by.
func (p *Plan) DecodeSortKey(key []byte) ([]Value, error) {
	vals := make([]Value, len(p.Order))
	b := key
	for i, k := range p.Order {
		if len(b) == 0 {
			return nil, fmt.Errorf("query: sort key cut short at key %d", i+1)
		}
		marker := b[0]
		b = b[1:]
		if marker == 2 {
			continue // NULL
		}
		if marker != 1 {
			return nil, fmt.Errorf("query: sort key marker %d", marker)
		}
		inv := byte(0)
		if k.Desc {
			inv = 0xff
		}
		var err error
		switch kind := k.Expr.Kind; {
		case kind.Numeric():
			if len(b) < 8 {
				return nil, fmt.Errorf("query: sort key number cut short")
			}
			bits := binary.BigEndian.Uint64(b)
			if k.Desc {
				bits = ^bits
			}
			if bits>>63 == 1 {
				bits &^= 1 << 63
			} else {
				bits = ^bits
			}
			x := math.Float64frombits(bits)
			if !finite(x) || x == 0 && math.Signbit(x) {
				return nil, fmt.Errorf("query: sort key number %v", x)
			}
			vals[i], b = Num(kind, x), b[8:]
		case kind == KindString:
			vals[i], b, err = decodeOrderedString(b, inv)
		case kind == KindBool:
			if len(b) == 0 || b[0]^inv > 1 {
				return nil, fmt.Errorf("query: sort key bool malformed")
			}
			vals[i], b = Bool(b[0]^inv == 1), b[1:]
		default:
			return nil, fmt.Errorf("query: sort key value for a key of kind %s", kind)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("query: %d bytes after the sort key", len(b))
	}
	return vals, nil
}

// decodeOrderedString reads a string appendOrdered wrote (bytes xored with
// inv), and returns the rest.
func decodeOrderedString(b []byte, inv byte) (Value, []byte, error) {
	var s []byte
	for {
		if len(b) == 0 {
			return Null, nil, fmt.Errorf("query: sort key string not terminated")
		}
		if c := b[0] ^ inv; c != 0 {
			s, b = append(s, c), b[1:]
			continue
		}
		if len(b) < 2 {
			return Null, nil, fmt.Errorf("query: sort key string not terminated")
		}
		switch b[1] ^ inv {
		case 0:
			return Str(string(s)), b[2:], nil
		case 0xff:
			s, b = append(s, 0), b[2:]
		default:
			return Null, nil, fmt.Errorf("query: sort key string escape %#x", b[1]^inv)
		}
	}
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
		if !v.Kind.Valid() || !finite(v.Num) {
			return nil, fmt.Errorf("query: malformed row value")
		}
	}
	return vals, nil
}
