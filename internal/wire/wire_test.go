package wire

import (
	"encoding/binary"
	"testing"
)

func TestUvarint(t *testing.T) {
	for _, x := range []uint64{0, 1, 127, 128, 300, 1 << 40, ^uint64(0)} {
		b := binary.AppendUvarint(nil, x)
		if UvarintLen(x) != len(b) {
			t.Errorf("UvarintLen(%d) = %d, encoded %d", x, UvarintLen(x), len(b))
		}
		if got, n := Uvarint(b); got != x || n != len(b) {
			t.Errorf("Uvarint(%d) = %d, %d", x, got, n)
		}
	}
	if _, n := Uvarint([]byte{0x80, 0x00}); n > 0 {
		t.Error("a padded zero was accepted")
	}
	if _, n := Uvarint(nil); n > 0 {
		t.Error("nothing was accepted")
	}
}
