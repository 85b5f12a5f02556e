package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// The ledger: every peer keeps, durably, the leases it served — the
// subcloud, its owner, when the lease was granted and when the owner last
// renewed it (or released it) — and contributes them to FROM leases, so
// that use is metered cloud-wide by gossip, with no central collector
// (P2PCS's metering of service). A lease is metered from its grant to the
// last renewal the peer answered, or its release: what the owner can
// account for too (ownedSubcloud.account), so that the two agree.

// ledgerEntry is one lease a peer served.
type ledgerEntry struct {
	Subcloud string    `json:"subcloud"`
	Owner    string    `json:"owner"`
	Start    time.Time `json:"start"`
	Until    time.Time `json:"until"` // the last renewal answered, or the release
	Open     bool      `json:"open,omitempty"`
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
		out = append(out, ledgerEntry{Subcloud: l.Subcloud, Owner: l.Owner, Start: now, Until: now, Open: true})
		if len(out) > query.MaxLedgerRows {
			out = append(out[:0], out[len(out)-query.MaxLedgerRows:]...)
		}
	case subcloud.OpRenew:
		if open {
			out[last].Until = now
		}
	case subcloud.OpRelease:
		if open {
			out[last].Until, out[last].Open = now, false
		}
	}
	return out
}
