package topk

// Coverage is a Bloom filter of the peers whose entries a list has
// absorbed: every peer that takes part sets its own name, the filter
// travels with the list and is merged by OR as lists are. The entries and
// the filter move together, so once the asker's filter holds every live
// member, its list has absorbed every peer's entry — or better ones: a list
// drops only entries beyond its K + Reserve best. That makes "every peer
// has been heard" checkable at the asker, which stability alone is not: a
// list can stay still for rounds while the last peer's entry is on its way.
//
// The filter has CoverageBits bits and CoverageHashes probes per name
// (Kirsch–Mitzenmacher double hashing of FNV-1a). A missing peer passes
// for present with probability about (1 − e^{−hn/m})^h; at m = 16 bits a
// peer and h = 8 that is 6·10⁻⁴.
// The size of a query's filter is the runtime's choice, for the cluster
// it runs on (query.CoverageBits: 16 bits a peer).
const (
	CoverageHashes = 8
	// MaxCoverageBits bounds a filter: 64 Kibit, 8 KiB on the wire.
	MaxCoverageBits = 1 << 16
)

func fnv64(s string, seed uint64) uint64 {
	h := uint64(14695981039346656037) ^ seed
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// coverageAdd sets name's bits in the filter f (len(f) words of 64 bits).
func coverageAdd(f []uint64, name string) {
	m := uint64(len(f) * 64)
	h1, h2 := fnv64(name, 0), fnv64(name, 0x9e3779b97f4a7c15)|1
	for i := uint64(0); i < CoverageHashes; i++ {
		b := (h1 + i*h2) % m
		f[b/64] |= 1 << (b % 64)
	}
}

// coverageHas reports whether name's bits are all set.
func coverageHas(f []uint64, name string) bool {
	if len(f) == 0 {
		return false
	}
	m := uint64(len(f) * 64)
	h1, h2 := fnv64(name, 0), fnv64(name, 0x9e3779b97f4a7c15)|1
	for i := uint64(0); i < CoverageHashes; i++ {
		b := (h1 + i*h2) % m
		if f[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// Covers reports whether the list has absorbed name's contribution (up to
// the filter's false positives); false when the node keeps no filter.
func (n *Node) Covers(name string) bool { return coverageHas(n.seen, name) }

// Coverage says whether the node keeps a coverage filter.
func (n *Node) Coverage() bool { return len(n.seen) > 0 }

// mergeCoverage ORs a received filter into the node's; a filter of
// another size (a peer configured otherwise) is refused.
func (n *Node) mergeCoverage(f []uint64) bool {
	if len(f) == 0 {
		return true
	}
	if len(f) != len(n.seen) {
		return false
	}
	changed := false
	for i, w := range f {
		if n.seen[i]|w != n.seen[i] {
			// The filter shared with sent messages is never modified in
			// place: copy on the first change.
			if !changed {
				n.seen = append([]uint64(nil), n.seen...)
				changed = true
				n.version++
			}
			n.seen[i] |= w
		}
	}
	return true
}
