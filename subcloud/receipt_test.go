package subcloud

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// receipt is r from owner to member, signed at at, as its receipt.
func receipt(owner, member string, at time.Time, r Request) Receipt {
	r.Owner, r.Target, r.Boot, r.At = owner, member, 1, at.UnixNano()
	r.Sign(keyOf(owner))
	return r.Receipt()
}

// Metered accounts for the span an owner signed for, and for nothing a
// member could make up: another owner's signature, another member's
// receipts, another lease's, an altered time, a renewal before its grant.
func TestMetered(t *testing.T) {
	grant := receipt("o", "m", t0, Request{Op: OpClaim, Subcloud: "s", Token: tokA, For: time.Minute})
	renew := receipt("o", "m", t0.Add(90*time.Minute), Request{Op: OpRenew, Subcloud: "s", Token: tokA, For: time.Minute})
	release := receipt("o", "m", t0.Add(2*time.Hour), Request{Op: OpRelease, Subcloud: "s", Token: tokA})
	altered := renew
	altered.body.At += int64(time.Hour)
	forgedReq := Request{Op: OpClaim, Subcloud: "s", Owner: "o", Token: tokA, For: time.Minute, Target: "m", Boot: 1, At: t0.UnixNano()}
	forgedReq.Sign(keyOf("m"))
	forged := forgedReq.Receipt()
	otherToken := receipt("o", "m", t0.Add(time.Hour), Request{Op: OpRenew, Subcloud: "s", Token: tokB, For: time.Minute})
	cases := []struct {
		name        string
		member      string
		signer      string
		grant, last Receipt
		hours       float64
		err         bool
	}{
		{"a grant alone", "m", "o", grant, Receipt{}, 0, false},
		{"a renewal", "m", "o", grant, renew, 1.5, false},
		{"a release", "m", "o", grant, release, 2, false},
		{"another member's receipts", "x", "o", grant, renew, 0, true},
		{"checked with another owner's key", "m", "x", grant, renew, 0, true},
		{"a grant the member signed for the owner", "m", "o", forged, Receipt{}, 0, true},
		{"an altered time", "m", "o", grant, altered, 0, true},
		{"another lease's renewal", "m", "o", grant, otherToken, 0, true},
		{"a renewal as the grant", "m", "o", renew, Receipt{}, 0, true},
		{"a renewal before its grant", "m", "o", receipt("o", "m", t0.Add(time.Hour), Request{Op: OpClaim, Subcloud: "s", Token: tokA, For: time.Minute}),
			receipt("o", "m", t0, Request{Op: OpRenew, Subcloud: "s", Token: tokA, For: time.Minute}), 0, true},
		{"a grant with no time", "m", "o", receipt("o", "m", time.Unix(0, 0), Request{Op: OpClaim, Subcloud: "s", Token: tokA, For: time.Minute}), Receipt{}, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start, end, err := Metered(c.member, keyOf(c.signer).Public(), c.grant, c.last)
			if c.err {
				if !errors.Is(err, ErrReceipt) {
					t.Fatalf("Metered = %v..%v, %v; want ErrReceipt", start, end, err)
				}
				return
			}
			if err != nil || end.Sub(start).Hours() != c.hours {
				t.Fatalf("Metered = %v, %v; want %v hours", end.Sub(start), err, c.hours)
			}
		})
	}
}

// A receipt does not show the lease's token, and the request it came from
// verifies as the receipt does.
func TestReceiptHidesToken(t *testing.T) {
	r := signed("o", "m", Request{Op: OpClaim, Subcloud: "s", Token: tokA, For: time.Minute, At: t0.UnixNano()})
	enc := r.Receipt().Encode()
	if contains(enc, []byte(tokA)) {
		t.Fatal("the receipt holds the token")
	}
	back, err := DecodeReceipt(enc)
	if err != nil || !back.SignedBy(keyOf("o").Public()) || !r.SignedBy(keyOf("o").Public()) {
		t.Fatalf("receipt %v, %v: not signed by its owner", back, err)
	}
	r.Token = tokB
	if r.SignedBy(keyOf("o").Public()) {
		t.Fatal("a request with another token verifies")
	}
}

func contains(b, sub []byte) bool {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return true
		}
	}
	return false
}

func FuzzDecodeReceipt(f *testing.F) {
	f.Add(receipt("o", "m", t0, Request{Op: OpClaim, Subcloud: "s", Token: tokA, For: time.Minute}).Encode())
	f.Add(receipt("o", "m", t0, Request{Op: OpRelease, Subcloud: "s"}).Encode())
	f.Add(Request{Op: OpClaim}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReceipt(b)
		if err != nil {
			return
		}
		again, err := DecodeReceipt(r.Encode())
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("receipt %+v re-decodes as %+v, %v", r, again, err)
		}
		Metered("m", keyOf("o").Public(), r, r)
	})
}
