package node

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/peerq/peerq/internal/wire"
	"github.com/peerq/peerq/run"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// The ledger: every peer keeps, durably, the leases it served — the
// subcloud, its owner, when the lease was granted and when the owner last
// renewed it (or released it) — and contributes them to FROM leases, so
// that use is metered cloud-wide by gossip, with no central collector
// (P2PCS's metering of service). A lease is metered from its grant to the
// last renewal the peer answered, or its release, on the owner's clock as
// the owner's signed receipts show it (subcloud.Metered): what the owner
// accounts for too, so that the two agree, and all a peer can bill.

// ledgerEntry is one lease a peer served.
type ledgerEntry struct {
	Subcloud string    `json:"subcloud"`
	Owner    string    `json:"owner"`
	Start    time.Time `json:"start"`
	Until    time.Time `json:"until"` // the last renewal answered, or the release
	Open     bool      `json:"open,omitempty"`
	// OwnerKey, Grant and Last are the owner's identity and its signed
	// receipts (subcloud.Receipt, encoded) of the claim and of the last
	// renewal or release the peer answered: the lease's hours are what
	// they span, on the owner's clock (subcloud.Metered), and what the
	// peer shows whoever checks its bill (the sample check of FROM
	// leases). An entry written before receipts has none, and no hours.
	OwnerKey identity.Public `json:"owner_key,omitzero"`
	Grant    []byte          `json:"grant,omitempty"`
	Last     []byte          `json:"last,omitempty"`
}

// receipts are the entry's receipts, decoded; ok is false for an entry
// without them (or with ones that do not decode: checkLedger refuses
// those on reading).
func (e ledgerEntry) receipts() (grant, last subcloud.Receipt, ok bool) {
	if e.Grant == nil {
		return grant, last, false
	}
	grant, err := subcloud.DecodeReceipt(e.Grant)
	if err != nil {
		return grant, last, false
	}
	if e.Last != nil {
		if last, err = subcloud.DecodeReceipt(e.Last); err != nil {
			return grant, last, false
		}
	}
	return grant, last, true
}

// hours is what the entry's receipts account for; ok is false for an
// entry they do not back.
func (e ledgerEntry) hours(self string) (h float64, ok bool) {
	grant, last, ok := e.receipts()
	if !ok {
		return 0, false
	}
	start, end, err := subcloud.Metered(self, e.OwnerKey, grant, last)
	if err != nil {
		return 0, false
	}
	return end.Sub(start).Hours(), true
}

// decodeLedger reads a version 1 ledger file (kept beside a version 1
// lease table), bounded and checked.
func decodeLedger(b []byte) ([]ledgerEntry, error) {
	var doc struct {
		Version int           `json:"version"`
		Entries []ledgerEntry `json:"entries"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("version %d, want 1", doc.Version)
	}
	if err := checkLedger(doc.Entries); err != nil {
		return nil, err
	}
	return doc.Entries, nil
}

// checkLedger bounds a ledger read from disk.
func checkLedger(entries []ledgerEntry) error {
	if len(entries) > query.MaxLedgerRows {
		return fmt.Errorf("%d ledger entries, more than %d", len(entries), query.MaxLedgerRows)
	}
	for _, e := range entries {
		if e.Subcloud == "" || len(e.Subcloud) > subcloud.MaxNameBytes || len(e.Owner) > subcloud.MaxNameBytes || e.Until.Before(e.Start) {
			return fmt.Errorf("a malformed ledger entry (%q)", e.Subcloud)
		}
		for _, r := range [][]byte{e.Grant, e.Last} {
			if r == nil {
				continue
			}
			if _, err := subcloud.DecodeReceipt(r); err != nil {
				return fmt.Errorf("ledger entry %q: %w", e.Subcloud, err)
			}
		}
	}
	return nil
}

// metered is the ledger after a request the table carries out (prev → next)
// at now: a new grant opens an entry (closing the last one if its lease
// lapsed), a renewal moves the open entry's end to now, a release closes
// it. It returns a new slice; ledger is not changed.
func metered(ledger []ledgerEntry, prev, next *subcloud.Table, req subcloud.Request, now time.Time) []ledgerEntry {
	out := append([]ledgerEntry(nil), ledger...)
	last := len(out) - 1
	open := last >= 0 && out[last].Open && out[last].Subcloud == req.Subcloud
	switch req.Op {
	case subcloud.OpClaim:
		l, ok := next.Current(now)
		if !ok || !l.Granted.Equal(now) {
			return out // a retried claim: the lease it already holds
		}
		if last >= 0 && out[last].Open {
			if p, held := prev.Current(now); !held || p.Subcloud != out[last].Subcloud || p.Owner != out[last].Owner {
				out[last].Open = false // lapsed: it ended at its last renewal
			}
		}
		out = append(out, ledgerEntry{Subcloud: l.Subcloud, Owner: l.Owner, Start: now, Until: now, Open: true,
			OwnerKey: l.OwnerKey, Grant: receiptOf(req)})
		if len(out) > query.MaxLedgerRows {
			out = append(out[:0], out[len(out)-query.MaxLedgerRows:]...)
		}
	case subcloud.OpRenew:
		if open {
			out[last].Until = now
			out[last].Last = laterReceipt(out[last].Last, req)
		}
	case subcloud.OpRelease:
		if open {
			out[last].Until, out[last].Open = now, false
			out[last].Last = laterReceipt(out[last].Last, req)
		}
	}
	return out
}

// receiptOf is a signed request's receipt, encoded; nil for one this peer
// made itself (a release after the owner said it no longer holds the
// lease: the entry then ends at its last renewal's receipt).
func receiptOf(req subcloud.Request) []byte {
	if req.Sig == nil {
		return nil
	}
	return req.Receipt().Encode()
}

// laterReceipt is req's receipt if it is signed and not older than the
// one kept (an owner's retried request signed before one answered since
// does not shorten the span), else the one kept.
func laterReceipt(kept []byte, req subcloud.Request) []byte {
	r := receiptOf(req)
	if r == nil {
		return kept
	}
	if kept != nil {
		if k, err := subcloud.DecodeReceipt(kept); err == nil && k.At().UnixNano() > req.At {
			return kept
		}
	}
	return r
}

// The sample check of FROM leases (node/sample.go): a sampled member shows
// every row of its ledger as the plan reads it, with the owner's identity
// and receipts it keeps (shownRow), under its own signature. The asker
// takes each row's hours from the receipts (subcloud.Metered), checked
// with the owner's key as the membership shows it: a row that bills hours
// its owner did not sign for is a lie the member told about itself, and
// contests the answer, naming it. An owner that is not a live member here
// cannot be checked: its rows count with their receipts checked against
// the key the member shows (they are of one lease, for that member, in
// time order) and are counted as unverified.

// shownRow is one ledger row as a sampled member shows it.
type shownRow struct {
	row         []byte // run.SampleRow of the row
	key         identity.Public
	grant, last []byte // encoded receipts; nil: none
}

// Bounds of a shown ledger: MaxLedgerRows rows, each a row of the plan's
// attributes (maxSampleRow) and two receipts (subcloud.MaxMessageBytes).
const maxShownBytes = 4 << 20

// encodeShown writes a shown ledger: count(uvarint), then per row
// row, key, grant, last (each a length-prefixed field). Rows that do not
// fit maxShownBytes are left out, oldest first.
func encodeShown(rows []shownRow) []byte {
	size, first := 0, len(rows)
	for first > 0 {
		r := rows[first-1]
		n := len(r.row) + identity.PublicSize + len(r.grant) + len(r.last) + 4*binary.MaxVarintLen64
		if size+n > maxShownBytes-binary.MaxVarintLen64 {
			break
		}
		size += n
		first--
	}
	rows = rows[first:]
	out := binary.AppendUvarint(make([]byte, 0, size+binary.MaxVarintLen64), uint64(len(rows)))
	for _, r := range rows {
		var key []byte
		if !r.key.IsZero() {
			key = r.key[:]
		}
		for _, f := range [][]byte{r.row, key, r.grant, r.last} {
			out = binary.AppendUvarint(out, uint64(len(f)))
			out = append(out, f...)
		}
	}
	return out
}

// decodeShown reads a shown ledger from a sampled member, bounded.
func decodeShown(b []byte) ([]shownRow, error) {
	if len(b) > maxShownBytes {
		return nil, fmt.Errorf("%w: a shown ledger of %d bytes", ErrMalformed, len(b))
	}
	d := wire.NewReader(b, ErrMalformed)
	n := d.Count(query.MaxLedgerRows)
	rows := make([]shownRow, 0, min(n, d.Len()/4))
	for range n {
		r := shownRow{row: d.Field(maxSampleRow)}
		if key := d.Field(identity.PublicSize); len(key) > 0 {
			if len(key) != identity.PublicSize {
				d.Fail("an owner key of the wrong size")
			} else {
				r.key = identity.Public(key)
			}
		}
		r.grant, r.last = d.Field(subcloud.MaxMessageBytes), d.Field(subcloud.MaxMessageBytes)
		if len(r.grant) == 0 {
			r.grant = nil
		}
		if len(r.last) == 0 {
			r.last = nil
		}
		if d.Err() != nil {
			break
		}
		rows = append(rows, r)
	}
	if err := d.Done(); err != nil {
		return nil, err
	}
	return rows, nil
}

// shownLedger is a sampled member's ledger, checked: its rows with their
// receipted hours, how many name an owner not live here (unverified), and
// the first lie found ("" for none).
type shownLedger struct {
	recs       []query.Record
	unverified int
	lie        string
}

// checkShown checks member's shown ledger for plan p. keyOf is the
// identity the membership shows for a live member. An error is a reply
// that is not rows of p's attributes within the catalog's bounds.
func checkShown(p *query.Plan, member string, rows []shownRow, keyOf func(string) (identity.Public, bool)) (shownLedger, error) {
	var out shownLedger
	grants := map[string]bool{}
	lie := func(format string, args ...any) {
		if out.lie == "" {
			out.lie = fmt.Sprintf("sampled member %s ", member) + fmt.Sprintf(format, args...)
		}
	}
	for _, sr := range rows {
		rec, err := run.DecodeSampleRow(p, member, sr.row)
		if err != nil {
			return shownLedger{}, err
		}
		claimed, hasHours := rec["peer_hours"]
		rec["peer_hours"], rec["receipted"] = query.Num(query.KindNumber, 0), query.Bool(false)
		if sr.grant == nil {
			if hasHours && claimed.Num > 0 {
				lie("bills %s peer-hours of %s that no owner signed for", fmtHours(claimed.Num), rec["subcloud"].Str)
			}
			out.recs = append(out.recs, rec)
			continue
		}
		grant, err1 := subcloud.DecodeReceipt(sr.grant)
		var last subcloud.Receipt
		var err2 error
		if sr.last != nil {
			last, err2 = subcloud.DecodeReceipt(sr.last)
		}
		if err := errors.Join(err1, err2); err != nil {
			lie("shows a receipt that does not decode (%v)", err)
			continue
		}
		owner := grant.Owner()
		key, live := keyOf(owner)
		if !live {
			key = sr.key
			out.unverified++
		}
		start, end, err := subcloud.Metered(member, key, grant, last)
		switch {
		case err != nil:
			lie("bills hours of %s that %s's receipts do not back: %v", grant.Subcloud(), owner, err)
			continue
		case grants[string(grant.Sig)]:
			lie("shows one grant of %s twice", grant.Subcloud())
			continue
		case rec["subcloud"].Kind == query.KindString && rec["subcloud"].Str != grant.Subcloud() ||
			rec["owner"].Kind == query.KindString && rec["owner"].Str != owner:
			lie("shows a row of %s under the receipts of %s", rec["subcloud"].Str, grant.Subcloud())
			continue
		}
		grants[string(grant.Sig)] = true
		hours := end.Sub(start).Hours()
		if hasHours && claimed.Num > hours*(1+1e-9)+1e-9 {
			lie("bills %s peer-hours of %s, and %s's receipts show %s", fmtHours(claimed.Num), grant.Subcloud(), owner, fmtHours(hours))
		}
		rec["peer_hours"], rec["receipted"] = query.Num(query.KindNumber, hours), query.Bool(true)
		rec["subcloud"], rec["owner"] = query.Str(grant.Subcloud()), query.Str(owner)
		out.recs = append(out.recs, rec)
	}
	return out, nil
}

func fmtHours(h float64) string { return strconv.FormatFloat(h, 'g', 4, 64) }
