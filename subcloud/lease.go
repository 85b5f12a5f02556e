package subcloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/peerq/peerq/identity"
)

// Lease is a peer's grant of itself to a subcloud.
type Lease struct {
	Subcloud string `json:"subcloud"`
	Owner    string `json:"owner"` // the node that reserved
	// OwnerKey is the owner's identity when it claimed: only a request it
	// signed renews, releases or checks the lease.
	OwnerKey identity.Public `json:"owner_key,omitzero"`
	Token    string          `json:"token"` // chosen by the owner, secret to it
	Key      string          `json:"key,omitempty"`
	Granted  time.Time       `json:"granted"`
	Expires  time.Time       `json:"expires"`
	// Since is when the owner created the subcloud (its first RESERVE):
	// the same on every member, replacements included, so that the
	// subcloud's age is known from any member. It settles which owner a
	// name belongs to if two ever hold leases under it (the older).
	Since time.Time `json:"since,omitzero"`
}

// Claim asks a peer for a lease.
type Claim struct {
	Subcloud string
	Owner    string
	OwnerKey identity.Public
	Token    string
	// Key is the RESERVE's idempotency key, if any.
	Key string
	// For is how long the lease lasts before it must be renewed.
	For time.Duration
	// Since is the subcloud's creation (Lease.Since); zero means now.
	Since time.Time
}

// Limits on claims.
const (
	MaxNameBytes  = 1024
	MaxTokenBytes = 128
	MinLease      = 10 * time.Second
	MaxLease      = 30 * 24 * time.Hour
)

// Errors a Table returns; callers compare with errors.Is.
var (
	// ErrHeld: the peer holds a live lease for another claim.
	ErrHeld = errors.New("subcloud: peer already reserved")
	// ErrNoLease: no live lease of that subcloud to renew or release.
	ErrNoLease = errors.New("subcloud: no such lease")
	// ErrToken: the token does not match the lease's.
	ErrToken = errors.New("subcloud: wrong lease token")
	// ErrBadClaim: the claim is malformed.
	ErrBadClaim = errors.New("subcloud: malformed claim")
)

// Table is one peer's lease table: at most one lease at a time.
type Table struct {
	lease *Lease
}

// Current returns the live lease, if any. A lease whose expiry has passed
// is gone.
func (t *Table) Current(now time.Time) (Lease, bool) {
	if t.lease == nil || !now.Before(t.lease.Expires) {
		return Lease{}, false
	}
	return *t.lease, true
}

func (c Claim) valid() error {
	switch {
	case c.Subcloud == "" || len(c.Subcloud) > MaxNameBytes || c.Owner == "" || len(c.Owner) > MaxNameBytes:
		return fmt.Errorf("%w: name or owner", ErrBadClaim)
	case len(c.Token) < 16 || len(c.Token) > MaxTokenBytes:
		return fmt.Errorf("%w: token of %d bytes", ErrBadClaim, len(c.Token))
	case c.For < MinLease || c.For > MaxLease:
		return fmt.Errorf("%w: lease of %v outside %v..%v", ErrBadClaim, c.For, MinLease, MaxLease)
	case len(c.Key) > MaxTokenBytes:
		return fmt.Errorf("%w: key too long", ErrBadClaim)
	}
	return nil
}

// Claim grants the peer to the claim if it is free (or its lease has
// expired). The same claim again — same subcloud and token, as a retried
// RESERVE with its idempotency key sends — gets the same lease back,
// unchanged. Any other claim on a held peer fails with ErrHeld.
func (t *Table) Claim(now time.Time, c Claim) (Lease, error) {
	if err := c.valid(); err != nil {
		return Lease{}, err
	}
	if cur, ok := t.Current(now); ok {
		if cur.Subcloud == c.Subcloud && cur.Token == c.Token {
			return cur, nil
		}
		return Lease{}, &heldError{cur.Subcloud}
	}
	since := c.Since
	if since.IsZero() || since.After(now) {
		since = now
	}
	t.lease = &Lease{Subcloud: c.Subcloud, Owner: c.Owner, OwnerKey: c.OwnerKey, Token: c.Token, Key: c.Key,
		Granted: now, Expires: now.Add(c.For), Since: since}
	return *t.lease, nil
}

// holder returns the live lease of subcloud if token holds it.
func (t *Table) holder(now time.Time, subcloud, token string) (*Lease, error) {
	cur, ok := t.Current(now)
	if !ok || cur.Subcloud != subcloud {
		return nil, ErrNoLease
	}
	if cur.Token != token {
		return nil, ErrToken
	}
	return t.lease, nil
}

// Renew extends the lease to now+d; only the token's holder may.
func (t *Table) Renew(now time.Time, subcloud, token string, d time.Duration) (Lease, error) {
	if d < MinLease || d > MaxLease {
		return Lease{}, fmt.Errorf("%w: lease of %v", ErrBadClaim, d)
	}
	l, err := t.holder(now, subcloud, token)
	if err != nil {
		return Lease{}, err
	}
	l.Expires = now.Add(d)
	return *l, nil
}

// Release frees the peer at once; only the token's holder may.
func (t *Table) Release(now time.Time, subcloud, token string) error {
	if _, err := t.holder(now, subcloud, token); err != nil {
		return err
	}
	t.lease = nil
	return nil
}

// Marshal is the Table's durable form (JSON).
func (t *Table) Marshal() ([]byte, error) { return json.Marshal(t.lease) }

// Unmarshal restores a Table from Marshal's bytes; it refuses anything
// malformed rather than guess.
func Unmarshal(b []byte) (*Table, error) {
	var l *Lease
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("subcloud: lease table: %w", err)
	}
	if l != nil && (l.Subcloud == "" || l.Token == "" || l.Expires.Before(l.Granted)) {
		return nil, errors.New("subcloud: lease table: malformed lease")
	}
	return &Table{lease: l}, nil
}

// Self is what a peer knows to check a request made to it: its name and
// incarnation, and the identities its membership shows.
type Self struct {
	Name string
	Boot uint64
	// KeyOf is the identity the membership shows for a member (pinned at
	// first sight); ok is false for a stranger or a member without one.
	KeyOf func(name string) (identity.Public, bool)
	// NameHolder is who the keepers of a subcloud's name say holds it,
	// asked before a claim is granted: known is false when none of them
	// answered. A claim under a name they hold for another key is refused,
	// and a claim's Since is never earlier than when they first granted
	// the name to its signer (now, if they do not know it), so that no
	// member can make its subcloud look older than it is. Nil: not asked
	// (only tests of the table alone).
	NameHolder func(name string) (h NameHolder, known bool)
}

// NameHolder is who a name's keepers say holds it: Owner "" for nobody.
type NameHolder struct {
	Owner string
	Key   identity.Public
	// Since is when they first granted the name to that key.
	Since time.Time
}

// authenticate checks that r is for this peer in its present life, came
// from signer and is signed by key. 0 is authentic.
func authenticate(self Self, from, signer string, key identity.Public, r Request) Refusal {
	switch {
	case r.Target != self.Name:
		return RefusedMalformed // meant for another peer
	case r.Boot != self.Boot:
		return RefusedIncarnation
	case from != signer || key.IsZero() || !r.SignedBy(key):
		return RefusedForged
	}
	return 0
}

// Apply carries out a request from an owner — received from the peer named
// from — and returns the reply. A claim must be signed by the owner it
// names, with the key the membership shows for it; a renewal, release or
// check by the owner the lease names, with the key it claimed with; every
// request must be for this peer in its present incarnation. The change is
// made on a copy, handed to persist (which must store it durably: Marshal,
// write, fsync, rename, fsync the directory), and becomes the Table only
// when persist succeeds: a peer never answers "granted" for a lease it
// would forget on restart, and never keeps a lease it answered "refused"
// for. persist is not called when nothing changed (a refused request, or a
// retried claim).
func (t *Table) Apply(now time.Time, self Self, from string, r Request, persist func(*Table) error) Reply {
	next := &Table{}
	if t.lease != nil {
		l := *t.lease
		next.lease = &l
	}
	var l Lease
	var err error
	// Who must have signed it.
	signer, key := r.Owner, identity.Public{}
	if r.Op == OpClaim {
		if self.KeyOf != nil {
			key, _ = self.KeyOf(r.Owner)
		}
	} else if cur, ok := t.Current(now); ok && cur.Subcloud == r.Subcloud {
		signer, key = cur.Owner, cur.OwnerKey
	} else if r.Op == OpRenew || r.Op == OpRelease || r.Op == OpCheck {
		return replyOf(ErrNoLease, now)
	}
	if ref := authenticate(self, from, signer, key, r); ref != 0 {
		rep := Reply{Refusal: ref, Now: now.UnixNano()}
		if ref == RefusedIncarnation {
			rep.Boot = self.Boot
		}
		return rep
	}
	switch r.Op {
	case OpClaim:
		c := Claim{Subcloud: r.Subcloud, Owner: r.Owner, OwnerKey: key, Token: r.Token, Key: r.Key, For: r.For}
		if r.Since > 0 {
			c.Since = time.Unix(0, r.Since)
		}
		if self.NameHolder != nil {
			if _, held := t.Current(now); !held {
				h, known := self.NameHolder(r.Subcloud)
				switch {
				case known && h.Owner != "" && h.Key != key:
					return Reply{Refusal: RefusedHeld, Holder: h.Owner, Now: now.UnixNano()}
				case known && h.Owner != "" && c.Since.Before(h.Since):
					c.Since = h.Since
				case !known || h.Owner == "":
					c.Since = now
				}
			}
		}
		l, err = next.Claim(now, c)
	case OpRenew:
		l, err = next.Renew(now, r.Subcloud, r.Token, r.For)
	case OpRelease:
		err = next.Release(now, r.Subcloud, r.Token)
	case OpCheck:
		var cur *Lease
		if cur, err = next.holder(now, r.Subcloud, r.Token); err == nil {
			l = *cur
		}
	default:
		err = ErrBadClaim
	}
	if err != nil {
		return replyOf(err, now)
	}
	rep := Reply{OK: true, Now: now.UnixNano()}
	if !next.equal(t) {
		if perr := persist(next); perr != nil {
			if r.Op != OpRelease {
				return Reply{Refusal: RefusedStorage, Now: now.UnixNano()}
			}
			// A release frees the peer even when its disk cannot record
			// it: freeing promises nothing to anybody. After a restart the
			// lease is back from the disk, and the peer asks its owner
			// (OpAsk), which answers that it released it.
			rep.Volatile = true
		}
		t.lease = next.lease
	}
	if r.Op != OpRelease {
		rep.Expires = l.Expires.UnixNano()
	}
	return rep
}

// Drop frees the peer from its lease of subcloud with token without an
// owner's request: the owner answered, signed, that it no longer holds it
// (OpAsk). Like a release, it takes effect even if persist fails; the
// error then says the disk does not know it yet.
func (t *Table) Drop(now time.Time, subcloud, token string, persist func(*Table) error) error {
	if _, err := t.holder(now, subcloud, token); err != nil {
		return err
	}
	t.lease = nil
	return persist(&Table{})
}

func (t *Table) equal(o *Table) bool {
	if t.lease == nil || o.lease == nil {
		return t.lease == nil && o.lease == nil
	}
	a, b := *t.lease, *o.lease
	return a.Subcloud == b.Subcloud && a.Owner == b.Owner && a.OwnerKey == b.OwnerKey && a.Token == b.Token && a.Key == b.Key &&
		a.Granted.Equal(b.Granted) && a.Expires.Equal(b.Expires) && a.Since.Equal(b.Since)
}

// replyOf is a refusal as a reply.
func replyOf(err error, now time.Time) Reply {
	r := Reply{Now: now.UnixNano()}
	switch {
	case errors.Is(err, ErrHeld):
		r.Refusal = RefusedHeld
		var h *heldError
		if errors.As(err, &h) {
			r.Holder = h.subcloud
		}
	case errors.Is(err, ErrNoLease):
		r.Refusal = RefusedNoLease
	case errors.Is(err, ErrToken):
		r.Refusal = RefusedToken
	default:
		r.Refusal = RefusedMalformed
	}
	return r
}

// heldError is ErrHeld with the subcloud that holds the peer.
type heldError struct{ subcloud string }

func (h *heldError) Error() string { return fmt.Sprintf("%v (to %s)", ErrHeld, h.subcloud) }
func (h *heldError) Unwrap() error { return ErrHeld }
