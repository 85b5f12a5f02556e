package owner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/peerq/peerq/subcloud"
)

// The owner's table on disk is subcloud.EncodeOwned's: a version byte and
// CBOR. Agents before it wrote JSON (versions 1 to 3, an object that
// starts with '{'): DecodeTable reads those too, so that an agent upgraded
// on its data dir still renews, repairs and releases what it owned. The
// next write is in the new form.

// EncodeTable is the owner's table on disk.
func EncodeTable(states []subcloud.OwnerState) []byte {
	sort.Slice(states, func(i, j int) bool { return states[i].Subcloud < states[j].Subcloud })
	return subcloud.EncodeOwned(states)
}

// DecodeTable reads the owner's table, in either form, bounded and
// checked.
func DecodeTable(b []byte) ([]subcloud.OwnerState, error) {
	if len(b) > 0 && b[0] == '{' {
		return decodeJSON(b)
	}
	return subcloud.DecodeOwned(b)
}

// jsonSubcloud is an owned subcloud in the JSON table.
type jsonSubcloud struct {
	Name    string               `json:"name"`
	Token   string               `json:"token"`
	Key     string               `json:"key,omitempty"`
	Lease   time.Duration        `json:"lease"`
	Members map[string]time.Time `json:"members"`
	// Version 2 on.
	Order      []string                `json:"order,omitempty"`
	Plan       []byte                  `json:"plan,omitempty"`
	Target     int                     `json:"target,omitempty"`
	NoRepair   bool                    `json:"no_repair,omitempty"`
	Since      time.Time               `json:"since,omitzero"`
	Repairs    int                     `json:"repairs,omitempty"`
	LastRepair time.Time               `json:"last_repair,omitzero"`
	Dropped    map[string]time.Time    `json:"dropped,omitempty"`
	Episodes   map[string][2]time.Time `json:"episodes,omitempty"`
	Metered    time.Duration           `json:"metered,omitempty"`
	// Version 3 on.
	Keepers []string `json:"keepers,omitempty"`
}

type jsonTable struct {
	Version   int            `json:"version"`
	Subclouds []jsonSubcloud `json:"subclouds"`
}

// decodeJSON reads a JSON table. A version 1 table has no plan: its
// subclouds keep their size but are neither repaired nor grown.
func decodeJSON(b []byte) ([]subcloud.OwnerState, error) {
	if len(b) > subcloud.MaxOwnedBytes {
		return nil, fmt.Errorf("%w: %d bytes", subcloud.ErrMalformedOwned, len(b))
	}
	var t jsonTable
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %w", subcloud.ErrMalformedOwned, err)
	}
	if t.Version < 1 || t.Version > 3 {
		return nil, fmt.Errorf("%w: JSON version %d, want 1 to 3", subcloud.ErrMalformedOwned, t.Version)
	}
	if len(t.Subclouds) > subcloud.MaxOwnedSubclouds {
		return nil, fmt.Errorf("%w: %d subclouds", subcloud.ErrMalformedOwned, len(t.Subclouds))
	}
	out := make([]subcloud.OwnerState, 0, len(t.Subclouds))
	seen := map[string]bool{}
	for _, j := range t.Subclouds {
		if seen[j.Name] {
			return nil, fmt.Errorf("%w: subcloud %q twice", subcloud.ErrMalformedOwned, j.Name)
		}
		seen[j.Name] = true
		st := subcloud.OwnerState{Subcloud: j.Name, Token: j.Token, Key: j.Key, Lease: j.Lease, Members: j.Members,
			Order: j.Order, Target: j.Target, Since: j.Since, Repairs: j.Repairs, LastRepair: j.LastRepair,
			Dropped: j.Dropped, Metered: j.Metered, Keepers: j.Keepers, Episodes: map[string]subcloud.Span{}}
		if len(j.Plan) > 0 {
			st.Plan = j.Plan // none (version 1): neither repaired nor grown
		}
		st.NoRepair = j.NoRepair
		for m, sp := range j.Episodes {
			st.Episodes[m] = subcloud.Span{Start: sp[0], Until: sp[1]}
		}
		if st.Target == 0 {
			st.Target = len(st.Members)
		}
		// The machine's own bounds (subcloud.Restore checks them again).
		if _, err := subcloud.DecodeOwned(subcloud.EncodeOwned([]subcloud.OwnerState{st})); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}
