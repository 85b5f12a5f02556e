package aggregate

import "sort"

// Vec is a sparse vector of masses: Keys sorted ascending, one value each.
// Slot keys pack a group hash, a component and a bucket (see slotKey).
type Vec struct {
	Keys []uint64
	Vals []float64
}

// Len is the number of slots.
func (v *Vec) Len() int { return len(v.Keys) }

// Get returns the value at key k, or 0.
func (v *Vec) Get(k uint64) float64 {
	i := sort.Search(len(v.Keys), func(i int) bool { return v.Keys[i] >= k })
	if i < len(v.Keys) && v.Keys[i] == k {
		return v.Vals[i]
	}
	return 0
}

// clone returns a deep copy of v.
func (v *Vec) clone() Vec {
	return Vec{Keys: append([]uint64(nil), v.Keys...), Vals: append([]float64(nil), v.Vals...)}
}

// sameKeys reports whether a and b have the same slots.
func sameKeys(a, b *Vec) bool {
	if len(a.Keys) != len(b.Keys) {
		return false
	}
	for i, k := range a.Keys {
		if b.Keys[i] != k {
			return false
		}
	}
	return true
}

// axpy sets dst = dst + a·x, adding the slots of x that dst lacks. It
// allocates only when x has slots dst lacks.
func axpy(dst *Vec, a float64, x *Vec) {
	if sameKeys(dst, x) {
		for i := range dst.Vals {
			dst.Vals[i] += a * x.Vals[i]
		}
		return
	}
	// Merge the two sorted key lists.
	keys := make([]uint64, 0, len(dst.Keys)+len(x.Keys))
	vals := make([]float64, 0, len(dst.Keys)+len(x.Keys))
	i, j := 0, 0
	for i < len(dst.Keys) || j < len(x.Keys) {
		switch {
		case j == len(x.Keys) || i < len(dst.Keys) && dst.Keys[i] < x.Keys[j]:
			keys, vals = append(keys, dst.Keys[i]), append(vals, dst.Vals[i])
			i++
		case i == len(dst.Keys) || x.Keys[j] < dst.Keys[i]:
			keys, vals = append(keys, x.Keys[j]), append(vals, a*x.Vals[j])
			j++
		default:
			keys, vals = append(keys, dst.Keys[i]), append(vals, dst.Vals[i]+a*x.Vals[j])
			i++
			j++
		}
	}
	dst.Keys, dst.Vals = keys, vals
}

// set makes dst a copy of a·x, reusing dst's storage.
func set(dst *Vec, a float64, x *Vec) {
	dst.Keys = append(dst.Keys[:0], x.Keys...)
	dst.Vals = dst.Vals[:0]
	for _, v := range x.Vals {
		dst.Vals = append(dst.Vals, a*v)
	}
}

// filter drops the slots for which keep is false, in place.
func (v *Vec) filter(keep func(uint64) bool) {
	n := 0
	for i, k := range v.Keys {
		if keep(k) {
			v.Keys[n], v.Vals[n] = k, v.Vals[i]
			n++
		}
	}
	v.Keys, v.Vals = v.Keys[:n], v.Vals[:n]
}

// sum returns the total of all values (for conservation checks).
func (v *Vec) sum() float64 {
	s := 0.0
	for _, x := range v.Vals {
		s += x
	}
	return s
}
