package wire

import "encoding/binary"

// UvarintLen is the length of x's varint encoding.
func UvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// Uvarint reads a varint in its shortest form only, so that a message has
// one encoding; n ≤ 0 when b holds no varint or a padded one.
func Uvarint(b []byte) (x uint64, n int) {
	x, n = binary.Uvarint(b)
	if n > 0 && n != UvarintLen(x) {
		return 0, -1
	}
	return x, n
}
