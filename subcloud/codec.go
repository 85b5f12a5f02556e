package subcloud

import (
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/peerq/peerq/identity"
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
	// OpName registers (or renews) a subcloud's name with one of the
	// peers it is hashed to (its keepers, Keepers): one owner per name.
	OpName
	// OpNameRelease gives a name up at a keeper.
	OpNameRelease
	// OpWho asks a keeper who holds a name (unsigned: anyone may ask).
	OpWho
	// OpAsk is a member asking the owner of its lease whether it still
	// holds it (the member's lease has not been renewed lately, or the
	// member restarted): the owner's signed answer lets it free itself of
	// a lease nobody would ever renew or release.
	OpAsk
	// OpInfo asks an owner for its account of a subcloud (Info).
	OpInfo
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
	case OpName:
		return "name"
	case OpNameRelease:
		return "name-release"
	case OpWho:
		return "who"
	case OpAsk:
		return "ask"
	case OpInfo:
		return "info"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Request is a claim, renewal, release or check on the wire, from an owner
// to a peer; a name's registration or release, from an owner to a keeper;
// a question to a keeper (who) or to an owner (ask).
//
// Every request from an owner is signed by it (Sign) and names the peer it
// is for and that peer's incarnation (Target, Boot): a peer refuses one
// signed by anybody but the owner the membership shows (a claim) or the
// owner its lease names (the rest), one meant for another peer, and one
// made for an earlier life of itself (a replay after a restart).
type Request struct {
	Op       Op     `cbor:"1,keyasint"`
	Subcloud string `cbor:"2,keyasint"`
	Owner    string `cbor:"3,keyasint,omitempty"`
	Token    string `cbor:"4,keyasint,omitempty"`
	Key      string `cbor:"5,keyasint,omitempty"`
	// For is the lease's length (claim, renew, name), in nanoseconds.
	For time.Duration `cbor:"6,keyasint,omitempty"`
	// Since is the subcloud's creation (claim), Unix nanoseconds; 0: now.
	// It decides nothing (the name's keepers do): it is the age shown.
	Since int64 `cbor:"7,keyasint,omitempty"`
	// Target is the peer the request is for; Boot its incarnation as the
	// sender saw it in the membership.
	Target string `cbor:"8,keyasint,omitempty"`
	Boot   uint64 `cbor:"9,keyasint,omitempty"`
	// Nonce is an ask's: the owner's answer must name it (no replayed
	// answer frees a member).
	Nonce uint64 `cbor:"10,keyasint,omitempty"`
	// Sig is the sender's signature of the request's receipt
	// (Receipt: the request with its token's digest in place of the
	// token), identity.DomainLease.
	Sig []byte `cbor:"11,keyasint,omitempty"`
	// At is the sender's clock when it signed (claim, renew, release),
	// Unix nanoseconds: a peer meters a lease from its grant's At to its
	// last renewal's (or release's), on the owner's clock and under the
	// owner's signature (Metered).
	At int64 `cbor:"12,keyasint,omitempty"`
}

// Refusal says why a peer refused a request.
type Refusal uint8

// The refusals; 0 is none.
const (
	RefusedHeld        Refusal = iota + 1 // the peer holds another lease (ErrHeld)
	RefusedNoLease                        // no such lease to renew or release (ErrNoLease)
	RefusedToken                          // wrong token (ErrToken)
	RefusedMalformed                      // a malformed request or claim (ErrBadClaim)
	RefusedStorage                        // the peer could not persist the change; nothing changed
	RefusedForged                         // not signed by the owner the peer knows (ErrForged)
	RefusedIncarnation                    // made for another life of the peer (ErrIncarnation); Boot is its present one
	RefusedFull                           // a keeper holds as many names as it may
	refusedEnd
)

// Reply is a peer's answer to a Request.
type Reply struct {
	OK      bool    `cbor:"1,keyasint,omitempty"`
	Refusal Refusal `cbor:"2,keyasint,omitempty"`
	// Holder is, when Refusal is RefusedHeld, the subcloud the peer holds
	// (a lease), or the owner that holds the name (a keeper); after a who,
	// the owner that holds the name.
	Holder string `cbor:"3,keyasint,omitempty"`
	// Expires is the lease's (or name's) expiry after a claim, renewal or
	// registration, Unix nanoseconds of the peer's clock; Now is that
	// clock when it answered, so that the owner reads the expiry on its
	// own clock (Reply.ExpiresAt).
	Expires int64 `cbor:"4,keyasint,omitempty"`
	Now     int64 `cbor:"5,keyasint,omitempty"`
	// Boot is the peer's incarnation, when Refusal is RefusedIncarnation.
	Boot uint64 `cbor:"6,keyasint,omitempty"`
	// Since is a name's registration at the keeper (name, who), Unix
	// nanoseconds; OwnerKey the key that holds it (who).
	Since    int64  `cbor:"7,keyasint,omitempty"`
	OwnerKey []byte `cbor:"8,keyasint,omitempty"`
	// Held is an owner's answer to an ask, signed (Sig) over an
	// AskAnswer.
	Held bool   `cbor:"9,keyasint,omitempty"`
	Sig  []byte `cbor:"10,keyasint,omitempty"`
	// Volatile: a release took effect, but the peer's disk could not
	// record it (it asks the owner again after a restart).
	Volatile bool `cbor:"11,keyasint,omitempty"`
}

// ExpiresAt is the reply's expiry on the clock of the one who reads it
// (now), from the peer's expiry and clock: the two clocks need not agree.
func (r Reply) ExpiresAt(now time.Time) time.Time {
	if r.Now == 0 {
		return time.Unix(0, r.Expires)
	}
	return now.Add(time.Duration(r.Expires - r.Now))
}

// Errors of replies; callers compare with errors.Is.
var (
	// ErrStorage: the peer could not persist.
	ErrStorage = errors.New("subcloud: the peer could not persist its lease table")
	// ErrForged: the request was not signed by the owner it names (or the
	// lease's owner), or came from another peer than its signer.
	ErrForged = errors.New("subcloud: not signed by the owner")
	// ErrIncarnation: the request was made for an earlier life of the
	// peer (it restarted since the sender looked).
	ErrIncarnation = errors.New("subcloud: made for another incarnation of the peer")
	// ErrFull: a keeper holds as many names as it may.
	ErrFull = errors.New("subcloud: the keeper holds as many names as it may")
)

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
	case RefusedForged:
		return ErrForged
	case RefusedIncarnation:
		return ErrIncarnation
	case RefusedFull:
		return ErrFull
	}
	return ErrBadClaim
}

// Lease-message wire format: a version byte, then the CBOR map of the
// Request or Reply (core deterministic encoding). Decoders refuse other
// versions, unknown fields, oversized input and out-of-range values.
const (
	msgVersion = 2
	// MaxMessageBytes bounds an encoded lease message.
	MaxMessageBytes = 4 << 10
)

// ErrMalformed wraps every reason a lease message is refused.
var ErrMalformed = errors.New("subcloud: malformed lease message")

var (
	encMode     cbor.EncMode
	decMode     cbor.DecMode
	infoDecMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = decOptions(16).DecMode(); err != nil {
		panic(err)
	}
	if infoDecMode, err = decOptions(4096).DecMode(); err != nil {
		panic(err)
	}
}

// decOptions are the decoders' bounds: arrays of at most maxArray items,
// no unknown fields, duplicate keys, indefinite lengths or tags.
func decOptions(maxArray int) cbor.DecOptions {
	return cbor.DecOptions{
		MaxArrayElements: maxArray, MaxMapPairs: 16, MaxNestedLevels: 4,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
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
	if err := r.check(); err != nil {
		return Request{}, err
	}
	return r, nil
}

// check bounds a request's fields (a received one, or a receipt's).
func (r Request) check() error {
	switch {
	case r.Op == 0 || r.Op >= opEnd:
		return fmt.Errorf("%w: op %d", ErrMalformed, r.Op)
	case len(r.Subcloud) > MaxNameBytes || len(r.Owner) > MaxNameBytes || len(r.Token) > MaxTokenBytes || len(r.Key) > MaxTokenBytes ||
		len(r.Target) > MaxNameBytes:
		return fmt.Errorf("%w: field too long", ErrMalformed)
	case r.Sig != nil && len(r.Sig) != identity.SignatureSize:
		return fmt.Errorf("%w: a signature of %d bytes", ErrMalformed, len(r.Sig))
	case r.For < 0 || r.For > MaxLease:
		return fmt.Errorf("%w: lease of %v", ErrMalformed, r.For)
	case r.Since < 0:
		return fmt.Errorf("%w: since %d", ErrMalformed, r.Since)
	case r.At < 0:
		return fmt.Errorf("%w: at %d", ErrMalformed, r.At)
	}
	return nil
}

// DecodeReply reads a peer's reply, bounded and checked.
func DecodeReply(b []byte) (Reply, error) {
	var r Reply
	if err := decode(b, &r); err != nil {
		return Reply{}, err
	}
	if r.Refusal >= refusedEnd || r.OK && r.Refusal != 0 || len(r.Holder) > MaxNameBytes ||
		r.OwnerKey != nil && len(r.OwnerKey) != identity.PublicSize || r.Sig != nil && len(r.Sig) != identity.SignatureSize {
		return Reply{}, fmt.Errorf("%w: reply", ErrMalformed)
	}
	return r, nil
}

// Sign signs the request with the sender's key: its signature covers the
// request's Receipt, so that the receipt can be shown to others without
// the lease's token.
func (r *Request) Sign(k *identity.Key) {
	r.Sig = k.Sign(identity.DomainLease, r.Receipt().body.bytes())
}

// SignedBy reports whether pub signed the request.
func (r Request) SignedBy(pub identity.Public) bool {
	return r.Receipt().SignedBy(pub)
}

// AskAnswer is what an owner signs when a member asks about its lease:
// whether it holds the lease (subcloud, token) on that member, in answer
// to that ask (Nonce), at the owner's time At.
type AskAnswer struct {
	Subcloud string `cbor:"1,keyasint"`
	Token    string `cbor:"2,keyasint"`
	Member   string `cbor:"3,keyasint"`
	Nonce    uint64 `cbor:"4,keyasint"`
	Held     bool   `cbor:"5,keyasint,omitempty"`
}

func (a AskAnswer) bytes() []byte { return encode(a) }

// SignAsk signs an owner's answer.
func SignAsk(k *identity.Key, a AskAnswer) []byte { return k.Sign(identity.DomainOwner, a.bytes()) }

// VerifyAsk reports whether pub signed the answer.
func VerifyAsk(pub identity.Public, a AskAnswer, sig []byte) bool {
	return identity.Verify(pub, identity.DomainOwner, a.bytes(), sig)
}
