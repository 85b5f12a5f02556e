package subcloud

import (
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Op is what a lease message asks of a peer.
type Op uint8

// The operations.
const (
	OpClaim Op = iota + 1
	OpRenew
	OpRelease
	// OpCheck asks whether the peer still holds the lease: the owner's
	// quick liveness check of its members. It changes nothing.
	OpCheck
	opEnd
)

func (o Op) String() string {
	switch o {
	case OpClaim:
		return "claim"
	case OpRenew:
		return "renew"
	case OpRelease:
		return "release"
	case OpCheck:
		return "check"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Request is a claim, renewal or release on the wire, from an owner to a
// peer.
type Request struct {
	Op       Op     `cbor:"1,keyasint"`
	Subcloud string `cbor:"2,keyasint"`
	Owner    string `cbor:"3,keyasint,omitempty"`
	Token    string `cbor:"4,keyasint"`
	Key      string `cbor:"5,keyasint,omitempty"`
	// For is the lease's length (claim, renew), in nanoseconds.
	For time.Duration `cbor:"6,keyasint,omitempty"`
	// Since is the subcloud's creation (claim), Unix nanoseconds; 0: now.
	Since int64 `cbor:"7,keyasint,omitempty"`
}

// Refusal says why a peer refused a request.
type Refusal uint8

// The refusals; 0 is none.
const (
	RefusedHeld      Refusal = iota + 1 // the peer holds another lease (ErrHeld)
	RefusedNoLease                      // no such lease to renew or release (ErrNoLease)
	RefusedToken                        // wrong token (ErrToken)
	RefusedMalformed                    // a malformed request or claim (ErrBadClaim)
	RefusedStorage                      // the peer could not persist the change; nothing changed
	refusedEnd
)

// Reply is a peer's answer to a Request.
type Reply struct {
	OK      bool    `cbor:"1,keyasint,omitempty"`
	Refusal Refusal `cbor:"2,keyasint,omitempty"`
	// Holder is the subcloud the peer holds, when Refusal is RefusedHeld.
	Holder string `cbor:"3,keyasint,omitempty"`
	// Expires is the lease's expiry after a claim or renewal, Unix
	// nanoseconds.
	Expires int64 `cbor:"4,keyasint,omitempty"`
}

// ErrStorage is a reply's error when the peer could not persist.
var ErrStorage = errors.New("subcloud: the peer could not persist its lease table")

// Err is the reply as an error: nil when OK.
func (r Reply) Err() error {
	if r.OK {
		return nil
	}
	switch r.Refusal {
	case RefusedHeld:
		if r.Holder != "" {
			return fmt.Errorf("%w (to %s)", ErrHeld, r.Holder)
		}
		return ErrHeld
	case RefusedNoLease:
		return ErrNoLease
	case RefusedToken:
		return ErrToken
	case RefusedStorage:
		return ErrStorage
	}
	return ErrBadClaim
}

// Lease-message wire format: a version byte, then the CBOR map of the
// Request or Reply (core deterministic encoding). Decoders refuse other
// versions, unknown fields, oversized input and out-of-range values.
const (
	msgVersion = 1
	// MaxMessageBytes bounds an encoded lease message.
	MaxMessageBytes = 4 << 10
)

// ErrMalformed wraps every reason a lease message is refused.
var ErrMalformed = errors.New("subcloud: malformed lease message")

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = (cbor.DecOptions{
		MaxArrayElements: 16, MaxMapPairs: 16, MaxNestedLevels: 4,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
	}).DecMode(); err != nil {
		panic(err)
	}
}

func encode(v any) []byte {
	b, err := encMode.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and integers always encode
	}
	return append([]byte{msgVersion}, b...)
}

func decode(b []byte, v any) error {
	switch {
	case len(b) > MaxMessageBytes:
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	case len(b) < 1 || b[0] != msgVersion:
		return fmt.Errorf("%w: version", ErrMalformed)
	}
	if err := decMode.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// Encode is the request's wire form.
func (r Request) Encode() []byte { return encode(r) }

// Encode is the reply's wire form.
func (r Reply) Encode() []byte { return encode(r) }

// DecodeRequest reads a request from another peer, bounded and checked.
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if err := decode(b, &r); err != nil {
		return Request{}, err
	}
	switch {
	case r.Op == 0 || r.Op >= opEnd:
		return Request{}, fmt.Errorf("%w: op %d", ErrMalformed, r.Op)
	case len(r.Subcloud) > MaxNameBytes || len(r.Owner) > MaxNameBytes || len(r.Token) > MaxTokenBytes || len(r.Key) > MaxTokenBytes:
		return Request{}, fmt.Errorf("%w: field too long", ErrMalformed)
	case r.For < 0 || r.For > MaxLease:
		return Request{}, fmt.Errorf("%w: lease of %v", ErrMalformed, r.For)
	case r.Since < 0:
		return Request{}, fmt.Errorf("%w: since %d", ErrMalformed, r.Since)
	}
	return r, nil
}

// DecodeReply reads a peer's reply, bounded and checked.
func DecodeReply(b []byte) (Reply, error) {
	var r Reply
	if err := decode(b, &r); err != nil {
		return Reply{}, err
	}
	if r.Refusal >= refusedEnd || r.OK && r.Refusal != 0 || len(r.Holder) > MaxNameBytes {
		return Reply{}, fmt.Errorf("%w: reply", ErrMalformed)
	}
	return r, nil
}
