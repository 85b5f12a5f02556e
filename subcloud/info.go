package subcloud

import (
	"fmt"
	"time"
)

// Info is an owner's account of one of its subclouds, for an agent that
// asks (OpInfo: SHOW SUBCLOUDS at an agent that does not own it): exact,
// and as old as the exchange that brought it, where the members' tags
// would be as old as Serf's gossip of them.
type Info struct {
	Subcloud string `cbor:"1,keyasint"`
	Owner    string `cbor:"2,keyasint"`
	Target   int    `cbor:"3,keyasint,omitempty"`
	Repairs  int    `cbor:"4,keyasint,omitempty"`
	// LastRepair is how long ago the last repair was (0: none).
	LastRepair time.Duration `cbor:"5,keyasint,omitempty"`
	// Expiry is how long the earliest lease among the members has left.
	Expiry    time.Duration `cbor:"6,keyasint,omitempty"`
	PeerHours float64       `cbor:"7,keyasint,omitempty"`
	// Members are the members, best first.
	Members []string `cbor:"8,keyasint,omitempty"`
}

// MaxInfoBytes bounds an encoded Info: a thousand members of long names.
const MaxInfoBytes = 256 << 10

// Encode is the Info's wire form (version byte, CBOR).
func (i Info) Encode() []byte { return encode(i) }

// DecodeInfo reads an owner's Info, bounded and checked.
func DecodeInfo(b []byte) (Info, error) {
	var i Info
	if len(b) > MaxInfoBytes {
		return Info{}, fmt.Errorf("%w: info of %d bytes", ErrMalformed, len(b))
	}
	if len(b) < 1 || b[0] != msgVersion {
		return Info{}, fmt.Errorf("%w: version", ErrMalformed)
	}
	if err := infoDecMode.Unmarshal(b[1:], &i); err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case i.Subcloud == "" || len(i.Subcloud) > MaxNameBytes || len(i.Owner) > MaxNameBytes:
		return Info{}, fmt.Errorf("%w: info names", ErrMalformed)
	case i.Target < 0 || i.Repairs < 0 || i.LastRepair < 0 || i.Expiry < 0 || i.PeerHours < 0 || i.PeerHours != i.PeerHours:
		return Info{}, fmt.Errorf("%w: info figures", ErrMalformed)
	}
	for _, m := range i.Members {
		if m == "" || len(m) > MaxNameBytes {
			return Info{}, fmt.Errorf("%w: a member name", ErrMalformed)
		}
	}
	return i, nil
}
