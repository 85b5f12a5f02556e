package aggregate

import (
	"math"
	"math/bits"
)

// Slot keys: a 40-bit group hash, a 6-bit component index and an 18-bit
// bucket. Group hash 0 is reserved for the origin slot. With at most 256
// groups, two groups share a hash with probability below 3·10⁻⁸.
const (
	compBits   = 6
	bucketBits = 18
	groupShift = compBits + bucketBits
	// MaxComps is the most components one Spec may have.
	MaxComps   = 1<<compBits - 1
	originSlot = uint64(MaxComps) << bucketBits
)

func slotKey(g uint64, comp int, bucket int) uint64 {
	return g<<groupShift | uint64(comp)<<bucketBits | uint64(bucket)
}

func slotGroup(k uint64) uint64 { return k >> groupShift }
func slotComp(k uint64) int     { return int(k>>bucketBits) & MaxComps }
func slotBucket(k uint64) int   { return int(k & (1<<bucketBits - 1)) }

// GroupHash is the 40-bit FNV-1a hash of a group key; never 0.
func GroupHash(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h &= 1<<40 - 1
	if h == 0 {
		h = 1
	}
	return h
}

// HistAlpha is the relative accuracy of the histogram mapping: a quantile
// read from a bucket is within HistAlpha of some value in that bucket.
const HistAlpha = 0.01

var (
	histGamma    = (1 + HistAlpha) / (1 - HistAlpha)
	histLogGamma = math.Log(histGamma)
)

// Histogram buckets: 0 holds values near zero, then 2·histRange buckets for
// positive values and as many for negative ones, covering magnitudes from
// histMin to about 10^35; beyond, values are clamped to the end buckets.
const (
	histRange = 4096
	histMin   = 1e-9
)

// HistBucket maps a value to its bucket.
func HistBucket(x float64) int {
	ax := math.Abs(x)
	if ax < histMin || math.IsNaN(x) {
		return 0
	}
	i := int(math.Ceil(math.Log(ax) / histLogGamma))
	i = max(-histRange, min(histRange-1, i))
	b := 1 + i + histRange // 1 .. 2·histRange
	if x < 0 {
		b += 2 * histRange
	}
	return b
}

// HistValue is the representative value of a bucket: the point with the
// least relative error to every value the bucket holds. It is read from a
// table of every bucket's value, made once: a peer checks each bucket it
// receives against the catalog's bounds (run's receipt checks), and
// computing math.Pow there was most of a percentile's CPU.
func HistValue(b int) float64 {
	if b >= 0 && b < len(histValues) {
		return histValues[b]
	}
	return histValue(b)
}

// histValues is histValue of every bucket, 0 .. 4·histRange.
var histValues = func() []float64 {
	v := make([]float64, 4*histRange+1)
	for b := range v {
		v[b] = histValue(b)
	}
	return v
}()

func histValue(b int) float64 {
	if b <= 0 {
		return 0
	}
	neg := b > 2*histRange
	if neg {
		b -= 2 * histRange
	}
	i := b - 1 - histRange
	v := 2 * math.Pow(histGamma, float64(i)) / (histGamma + 1)
	if neg {
		return -v
	}
	return v
}

// histOrder sorts buckets by the values they stand for.
func histOrder(b int) float64 { return HistValue(b) }

// HLL parameters: 2^10 registers, standard error 1.04/32 ≈ 3.3%.
const (
	hllP = 10
	// HLLRegisters is the number of HyperLogLog registers per sketch.
	HLLRegisters = 1 << hllP
	// hllMaxRank is the largest rank hllAdd stores: the hash's bits past
	// the index, with one set at the end.
	hllMaxRank = 64 - hllP + 1
)

// hllAdd adds a 64-bit hash to registers.
func hllAdd(reg []byte, h uint64) {
	idx := h >> (64 - hllP)
	rest := h<<hllP | 1<<(hllP-1) // guarantee a set bit
	rank := byte(bits.LeadingZeros64(rest) + 1)
	if rank > reg[idx] {
		reg[idx] = rank
	}
}

// hllMerge sets dst to the register-wise maximum of dst and src.
func hllMerge(dst, src []byte) bool {
	changed := false
	for i, r := range src {
		if r > dst[i] {
			dst[i] = r
			changed = true
		}
	}
	return changed
}

// HLLEstimate is the HyperLogLog cardinality estimate of registers, with the
// small-range (linear counting) correction.
func HLLEstimate(reg []byte) float64 {
	m := float64(len(reg))
	if m == 0 {
		return 0
	}
	sum, zeros := 0.0, 0
	for _, r := range reg {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	alpha := 0.7213 / (1 + 1.079/m)
	e := alpha * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		return m * math.Log(m/float64(zeros))
	}
	return e
}

// Hash64 is a 64-bit mixing hash (FNV-1a followed by a finalizer) for
// distinct-count inputs.
func Hash64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	// splitmix64 finalizer: FNV's low bits alone are too regular for HLL.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// SlotComp is the component a vector's key is a slot of, false for the
// originator's mass (a driver that models a liar rewrites flows by it).
func SlotComp(key uint64) (int, bool) {
	if key == originSlot {
		return 0, false
	}
	return slotComp(key), true
}
