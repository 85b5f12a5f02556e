package subcloud

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/peerq/peerq/identity"
)

// A receipt is what an owner signed when it claimed, renewed or released
// a lease: the request, with the digest of the lease's token in place of
// the token (the token stays secret to the owner and the member). The
// member keeps the grant's receipt and the latest renewal's (or the
// release's) in its ledger, and shows them to whoever checks its
// metering: hours no owner signed for cannot be billed, because a member
// can only show an owner's signature it was given (P2PCS's metering of
// service, with both sides' word: the owner signs the times, the member
// the rows).

// Receipt is a signed request as a third party can check it.
type Receipt struct {
	body receiptBody
	Sig  []byte
}

// receiptBody is what the owner's signature covers (Request.Sign): the
// request without its token (Token "", Sig nil) and with the token's
// SHA-256 instead.
type receiptBody struct {
	Request
	TokenSum []byte `cbor:"13,keyasint,omitempty"`
}

func (b receiptBody) bytes() []byte { return encode(b) }

// receiptWire is a receipt on the wire and on disk.
type receiptWire struct {
	Body receiptBody `cbor:"1,keyasint"`
	Sig  []byte      `cbor:"2,keyasint"`
}

// Receipt is the request's receipt.
func (r Request) Receipt() Receipt {
	c := Receipt{Sig: r.Sig, body: receiptBody{Request: r}}
	c.body.Token, c.body.Sig = "", nil
	if r.Token != "" {
		s := sha256.Sum256([]byte(r.Token))
		c.body.TokenSum = s[:]
	}
	return c
}

// SignedBy reports whether pub signed the receipt.
func (c Receipt) SignedBy(pub identity.Public) bool {
	return !pub.IsZero() && identity.Verify(pub, identity.DomainLease, c.body.bytes(), c.Sig)
}

// Op, Subcloud, Owner, Target and At are the receipt's request's.
func (c Receipt) Op() Op           { return c.body.Op }
func (c Receipt) Subcloud() string { return c.body.Subcloud }
func (c Receipt) Owner() string    { return c.body.Owner }
func (c Receipt) Target() string   { return c.body.Target }
func (c Receipt) At() time.Time    { return time.Unix(0, c.body.At) }

// IsZero reports whether c is no receipt.
func (c Receipt) IsZero() bool { return c.Sig == nil && c.body.Op == 0 }

// Encode is the receipt's wire (and disk) form.
func (c Receipt) Encode() []byte { return encode(receiptWire{Body: c.body, Sig: c.Sig}) }

// DecodeReceipt reads a receipt from another peer or from disk, bounded
// and checked as a request is.
func DecodeReceipt(b []byte) (Receipt, error) {
	var w receiptWire
	if err := decode(b, &w); err != nil {
		return Receipt{}, err
	}
	r := w.Body
	if err := r.check(); err != nil {
		return Receipt{}, err
	}
	switch {
	case r.Token != "" || r.Sig != nil:
		return Receipt{}, fmt.Errorf("%w: a receipt with a token or an inner signature", ErrMalformed)
	case r.TokenSum != nil && len(r.TokenSum) != sha256.Size:
		return Receipt{}, fmt.Errorf("%w: a token digest of %d bytes", ErrMalformed, len(r.TokenSum))
	case len(w.Sig) != identity.SignatureSize:
		return Receipt{}, fmt.Errorf("%w: a receipt signature of %d bytes", ErrMalformed, len(w.Sig))
	}
	return Receipt{body: r, Sig: w.Sig}, nil
}

// ErrReceipt is a lease's receipts that do not account for the hours
// billed: not signed by the owner, not for the member that shows them, or
// not of one lease.
var ErrReceipt = errors.New("subcloud: receipts do not back the lease")

// Metered is the span a member served a lease, on the owner's clock, as
// the owner's receipts show it: from the grant (a claim) to the last
// renewal or the release (last; zero: none yet, and the span is empty).
// Both must be signed by key (the owner's identity), name member as their
// target, and be of one lease: the same subcloud, owner and token. A
// member cannot bill a lease with another member's receipts, nor one no
// owner granted it.
func Metered(member string, key identity.Public, grant, last Receipt) (start, end time.Time, err error) {
	g := grant.body
	switch {
	case g.Op != OpClaim:
		return start, end, fmt.Errorf("%w: the grant is a %s", ErrReceipt, g.Op)
	case g.Target != member:
		return start, end, fmt.Errorf("%w: the grant is for %q", ErrReceipt, g.Target)
	case g.At <= 0:
		return start, end, fmt.Errorf("%w: the grant has no time", ErrReceipt)
	case !grant.SignedBy(key):
		return start, end, fmt.Errorf("%w: the grant is not signed by %s's key", ErrReceipt, g.Owner)
	}
	start = time.Unix(0, g.At)
	if last.IsZero() {
		return start, start, nil
	}
	l := last.body
	switch {
	case l.Op != OpRenew && l.Op != OpRelease:
		return start, end, fmt.Errorf("%w: the last receipt is a %s", ErrReceipt, l.Op)
	case l.Target != member || l.Subcloud != g.Subcloud || l.Owner != g.Owner || string(l.TokenSum) != string(g.TokenSum):
		return start, end, fmt.Errorf("%w: the last receipt is of another lease", ErrReceipt)
	case l.At < g.At:
		return start, end, fmt.Errorf("%w: the last receipt is older than the grant", ErrReceipt)
	case !last.SignedBy(key):
		return start, end, fmt.Errorf("%w: the last receipt is not signed by %s's key", ErrReceipt, g.Owner)
	}
	return start, time.Unix(0, l.At), nil
}
