package overlay

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/hashicorp/serf/coordinate"
)

// Network coordinates (Serf's Vivaldi) cross the overlay's boundary as
// opaque bytes, so that nothing above it imports Serf: the asking peer
// sends its Coordinate beside a query, and every peer computes its rtt
// attribute with RTT.
//
// Encoding: the count of float64s (one byte), then error, adjustment,
// height and the vector, little-endian.
const maxCoordDims = 16

// Coordinate is this peer's network coordinate, encoded; nil when Serf has
// none yet.
func (o *Overlay) Coordinate() []byte {
	c, err := o.serf.GetCoordinate()
	if err != nil || c == nil {
		return nil
	}
	return encodeCoordinate(c)
}

// RTT estimates the round-trip time from this peer to the peer whose
// encoded coordinate is coord. ok is false when either coordinate is
// unknown, malformed or incompatible.
func (o *Overlay) RTT(coord []byte) (time.Duration, bool) {
	other, ok := decodeCoordinate(coord)
	if !ok {
		return 0, false
	}
	mine, err := o.serf.GetCoordinate()
	if err != nil || mine == nil || !mine.IsCompatibleWith(other) {
		return 0, false
	}
	return mine.DistanceTo(other), true
}

func encodeCoordinate(c *coordinate.Coordinate) []byte {
	vals := append([]float64{c.Error, c.Adjustment, c.Height}, c.Vec...)
	if len(c.Vec) > maxCoordDims {
		return nil
	}
	b := []byte{byte(len(vals))}
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// decodeCoordinate reads an encoded coordinate from another peer: bounded,
// finite, valid.
func decodeCoordinate(b []byte) (*coordinate.Coordinate, bool) {
	if len(b) < 1 {
		return nil, false
	}
	n := int(b[0])
	if n < 4 || n > 3+maxCoordDims || len(b) != 1+8*n {
		return nil, false
	}
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[1+8*i:]))
	}
	c := &coordinate.Coordinate{Error: vals[0], Adjustment: vals[1], Height: vals[2], Vec: vals[3:]}
	return c, c.IsValid()
}
