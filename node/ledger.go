package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
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

const ledgerFile = "ledger.json"

// ledgerEntry is one lease a peer served.
type ledgerEntry struct {
	Subcloud string    `json:"subcloud"`
	Owner    string    `json:"owner"`
	Start    time.Time `json:"start"`
	Until    time.Time `json:"until"` // the last renewal answered, or the release
	Open     bool      `json:"open,omitempty"`
}

// openLedger restores the ledger from dataDir ("" keeps it in memory).
func openLedger(dataDir string) (entries []ledgerEntry, note string, err error) {
	if dataDir == "" {
		return nil, "", nil
	}
	note, err = readDurable(filepath.Join(dataDir, ledgerFile), "lease ledger", func(b []byte) error {
		got, err := decodeLedger(b)
		if err == nil {
			entries = got
		}
		return err
	})
	return entries, note, err
}

// decodeLedger reads a ledger, bounded and checked.
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
	if len(doc.Entries) > query.MaxLedgerRows {
		return nil, fmt.Errorf("%d entries, more than %d", len(doc.Entries), query.MaxLedgerRows)
	}
	for _, e := range doc.Entries {
		if e.Subcloud == "" || len(e.Subcloud) > subcloud.MaxNameBytes || len(e.Owner) > subcloud.MaxNameBytes || e.Until.Before(e.Start) {
			return nil, fmt.Errorf("a malformed entry (%q)", e.Subcloud)
		}
	}
	return doc.Entries, nil
}

// meter enters what a request the table granted does to the ledger, and
// persists it. Called with ls.mu held, after Apply answered OK.
func (ls *leaseState) meter(req subcloud.Request, now time.Time, logf func(string, ...any)) {
	last := len(ls.ledger) - 1
	open := last >= 0 && ls.ledger[last].Open && ls.ledger[last].Subcloud == req.Subcloud
	switch req.Op {
	case subcloud.OpClaim:
		l, ok := ls.table.Current(now)
		if !ok || !l.Granted.Equal(now) {
			return // a retried claim: the lease it already holds
		}
		ls.closeLapsed(now)
		ls.ledger = append(ls.ledger, ledgerEntry{Subcloud: l.Subcloud, Owner: l.Owner, Start: now, Until: now, Open: true})
		if len(ls.ledger) > query.MaxLedgerRows {
			ls.ledger = append(ls.ledger[:0], ls.ledger[len(ls.ledger)-query.MaxLedgerRows:]...)
		}
	case subcloud.OpRenew:
		if !open {
			return
		}
		ls.ledger[last].Until = now
	case subcloud.OpRelease:
		if !open {
			return
		}
		ls.ledger[last].Until, ls.ledger[last].Open = now, false
	default:
		return // a check changes nothing
	}
	ls.persistLedger(logf)
}

// closeLapsed closes the open entry of a lease that is no longer held (it
// lapsed): it ends at its last renewal. It reports whether it did.
func (ls *leaseState) closeLapsed(now time.Time) bool {
	last := len(ls.ledger) - 1
	if last < 0 || !ls.ledger[last].Open {
		return false
	}
	if l, ok := ls.table.Current(now); ok && l.Subcloud == ls.ledger[last].Subcloud && l.Owner == ls.ledger[last].Owner {
		return false
	}
	ls.ledger[last].Open = false
	return true
}

func (ls *leaseState) persistLedger(logf func(string, ...any)) {
	if ls.path == "" {
		return
	}
	b, _ := json.Marshal(struct {
		Version int           `json:"version"`
		Entries []ledgerEntry `json:"entries"`
	}{1, ls.ledger})
	if err := writeDurable(filepath.Join(filepath.Dir(ls.path), ledgerFile), b); err != nil {
		logf("cannot persist the lease ledger: %v (the metering of the last change may be lost on a restart)", err)
	}
}

// ledgerRows are the peer's rows of FROM leases.
func (n *Node) ledgerRows() []query.Record {
	now := n.clock.Now()
	n.leases.mu.Lock()
	defer n.leases.mu.Unlock()
	if n.leases.closeLapsed(now) {
		n.leases.persistLedger(n.logf)
	}
	rows := make([]query.Record, 0, len(n.leases.ledger))
	for _, e := range n.leases.ledger {
		ended := 0.0
		if !e.Open {
			ended = now.Sub(e.Until).Seconds()
		}
		rows = append(rows, query.LeasesCatalog().Clamp(query.Record{
			"node": query.Str(n.Name()), "subcloud": query.Str(e.Subcloud), "owner": query.Str(e.Owner),
			"peer_hours":  query.Num(query.KindNumber, e.Until.Sub(e.Start).Hours()),
			"started_ago": query.Num(query.KindDuration, now.Sub(e.Start).Seconds()),
			"ended_ago":   query.Num(query.KindDuration, max(ended, 0)),
			"open":        query.Bool(e.Open),
		}))
	}
	return rows
}
