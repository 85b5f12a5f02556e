package subcloud

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// The owner's table on disk: every subcloud a peer owns (OwnerState), as a
// version byte and then a CBOR map (core deterministic encoding), like the
// lease messages (codec.go). The decoder refuses other versions, unknown
// fields, duplicate keys, oversized input and out-of-range values rather
// than guess: a restarted owner renews what it reads.
const (
	// ownedVersion is the table's version; a change of its fields is a
	// new version, and DecodeOwned reads the old ones it knows.
	ownedVersion = 1
	// MaxOwnedBytes bounds an encoded table.
	MaxOwnedBytes = 64 << 20
	// MaxOwnedSubclouds bounds the subclouds in one table.
	MaxOwnedSubclouds = 4096
	// MaxPlanBytes bounds a subcloud's encoded plan.
	MaxPlanBytes = 64 << 10
)

// ErrMalformedOwned wraps every reason an owner's table is refused.
var ErrMalformedOwned = errors.New("subcloud: malformed owner's table")

// ownedWire is one OwnerState on disk: times in Unix nanoseconds (0: none),
// durations in nanoseconds.
type ownedWire struct {
	Subcloud   string              `cbor:"1,keyasint"`
	Token      string              `cbor:"2,keyasint"`
	Key        string              `cbor:"3,keyasint,omitempty"`
	Lease      int64               `cbor:"4,keyasint"`
	Members    map[string]int64    `cbor:"5,keyasint,omitempty"`
	Order      []string            `cbor:"6,keyasint,omitempty"`
	Plan       []byte              `cbor:"7,keyasint,omitempty"`
	Target     int                 `cbor:"8,keyasint,omitempty"`
	NoRepair   bool                `cbor:"9,keyasint,omitempty"`
	Since      int64               `cbor:"10,keyasint,omitempty"`
	Repairs    int                 `cbor:"11,keyasint,omitempty"`
	LastRepair int64               `cbor:"12,keyasint,omitempty"`
	Dropped    map[string]int64    `cbor:"13,keyasint,omitempty"`
	Episodes   map[string][2]int64 `cbor:"14,keyasint,omitempty"`
	Metered    int64               `cbor:"15,keyasint,omitempty"`
	Keepers    []string            `cbor:"16,keyasint,omitempty"`
}

type ownedTable struct {
	Subclouds []ownedWire `cbor:"1,keyasint"`
}

var ownedDecMode cbor.DecMode

func init() {
	var err error
	if ownedDecMode, err = (cbor.DecOptions{
		MaxArrayElements: max(MaxOwnedSubclouds, 2*MaxOwnerMembers), MaxMapPairs: 4 * MaxOwnerMembers, MaxNestedLevels: 6,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
	}).DecMode(); err != nil {
		panic(err)
	}
}

// EncodeOwned is the owner's table on disk, sorted by subcloud.
func EncodeOwned(states []OwnerState) []byte {
	t := ownedTable{Subclouds: make([]ownedWire, 0, len(states))}
	for _, s := range states {
		w := ownedWire{Subcloud: s.Subcloud, Token: s.Token, Key: s.Key, Lease: int64(s.Lease), Members: nanosOf(s.Members),
			Order: s.Order, Plan: s.Plan, Target: s.Target, NoRepair: s.NoRepair, Since: unixNano(s.Since), Repairs: s.Repairs,
			LastRepair: unixNano(s.LastRepair), Dropped: nanosOf(s.Dropped), Metered: int64(s.Metered), Keepers: s.Keepers}
		if len(s.Episodes) > 0 {
			w.Episodes = make(map[string][2]int64, len(s.Episodes))
			for m, sp := range s.Episodes {
				w.Episodes[m] = [2]int64{unixNano(sp.Start), unixNano(sp.Until)}
			}
		}
		t.Subclouds = append(t.Subclouds, w)
	}
	sort.Slice(t.Subclouds, func(i, j int) bool { return t.Subclouds[i].Subcloud < t.Subclouds[j].Subcloud })
	b, err := encMode.Marshal(t)
	if err != nil {
		panic(err) // plain structs of strings, bytes and integers always encode
	}
	return append([]byte{ownedVersion}, b...)
}

// DecodeOwned reads an owner's table, bounded and checked.
func DecodeOwned(b []byte) ([]OwnerState, error) {
	switch {
	case len(b) > MaxOwnedBytes:
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformedOwned, len(b))
	case len(b) < 1 || b[0] != ownedVersion:
		return nil, fmt.Errorf("%w: version", ErrMalformedOwned)
	}
	var t ownedTable
	if err := ownedDecMode.Unmarshal(b[1:], &t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedOwned, err)
	}
	if len(t.Subclouds) > MaxOwnedSubclouds {
		return nil, fmt.Errorf("%w: %d subclouds", ErrMalformedOwned, len(t.Subclouds))
	}
	out := make([]OwnerState, 0, len(t.Subclouds))
	seen := map[string]bool{}
	for _, w := range t.Subclouds {
		if seen[w.Subcloud] {
			return nil, fmt.Errorf("%w: subcloud %q twice", ErrMalformedOwned, w.Subcloud)
		}
		seen[w.Subcloud] = true
		if w.Lease < 0 || w.Since < 0 || w.LastRepair < 0 || w.Metered < 0 {
			return nil, fmt.Errorf("%w: subcloud %q: a negative time", ErrMalformedOwned, w.Subcloud)
		}
		s := OwnerState{Subcloud: w.Subcloud, Token: w.Token, Key: w.Key, Lease: time.Duration(w.Lease), Order: w.Order,
			Plan: w.Plan, Target: w.Target, NoRepair: w.NoRepair, Since: timeOf(w.Since), Repairs: w.Repairs,
			LastRepair: timeOf(w.LastRepair), Metered: time.Duration(w.Metered), Keepers: w.Keepers,
			Episodes: make(map[string]Span, len(w.Episodes))}
		var err error
		if s.Members, err = timesOf(w.Members); err != nil {
			return nil, fmt.Errorf("%w: subcloud %q: %v", ErrMalformedOwned, w.Subcloud, err)
		}
		if s.Dropped, err = timesOf(w.Dropped); err != nil {
			return nil, fmt.Errorf("%w: subcloud %q: %v", ErrMalformedOwned, w.Subcloud, err)
		}
		for m, sp := range w.Episodes {
			if sp[0] < 0 || sp[1] < 0 {
				return nil, fmt.Errorf("%w: subcloud %q: a negative time", ErrMalformedOwned, w.Subcloud)
			}
			s.Episodes[m] = Span{Start: timeOf(sp[0]), Until: timeOf(sp[1])}
		}
		if err := s.check(); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func nanosOf(m map[string]time.Time) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, t := range m {
		out[k] = unixNano(t)
	}
	return out
}

func timesOf(m map[string]int64) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(m))
	for k, n := range m {
		if n < 0 {
			return nil, errors.New("a negative time")
		}
		out[k] = timeOf(n)
	}
	return out, nil
}

// timeOf is a time from the disk: 0 is none.
func timeOf(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
