package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
	"github.com/peerq/peerq/subcloud"
)

// keeper is a peer's own side of subclouds: the lease it granted (at most
// one), the names it keeps for owners (subcloud.Keepers), and the ledger of
// the leases it served. Every change is on disk (durable.Write: write,
// fsync, keep the previous copy, rename over, fsync the directory) before
// the peer answers. Changes take their turn (turn): one is decided and
// written at a time, in order, with mu released across its write, so that
// nothing waits for a disk but the next change: the lease, the ledger and
// the names are read from atomic snapshots, and what takes mu for a moment
// (due, answered) never waits behind an fsync. An answer, a name lookup
// (OpWho), SHOW SUBCLOUDS or a record never waits for a disk.
type keeper struct {
	fs   durable.FS
	dir  string // "": in memory (the embedded cluster without a data dir)
	logf func(string, ...any)

	mu sync.Mutex
	// turn is the change being decided and written (its cond is on mu).
	turn   turn
	table  *subcloud.Table
	names  *subcloud.Names
	ledger []ledgerEntry
	// ownerBoot is the owner's incarnation when it last claimed or
	// renewed the lease; asked when this peer last asked the owner about
	// it (OpAsk).
	ownerBoot uint64
	asked     time.Time
	// unsigned is the token of the lease whose owner last answered with
	// a signature that did not verify (logged once per lease).
	unsigned string

	lease    atomic.Pointer[subcloud.Lease] // nil: none (may have expired: check Expires)
	ledgerRO atomic.Pointer[[]ledgerEntry]
	namesRO  atomic.Pointer[subcloud.Names]
	// storage is the last failure to write the data dir (nil: it writes).
	storage atomic.Pointer[storageFault]
	// faultChanged, if set, is called when the storage fault comes, goes
	// or changes its reason (the lease keeper shows it in its tags). It must not
	// block; it is set before the keeper is shared.
	faultChanged func()
}

// storageFault is a data dir that could not be written: since when, and
// why in a few words ("disk full", "read-only").
type storageFault struct {
	since  time.Time
	reason string
	err    error
}

// Files in the data dir.
const (
	leaseFile  = "lease.json"    // the lease and the ledger, version 2
	ledgerFile = "ledger.json"   // the ledger of version 1 tables, read once
	namesFile  = "names.json"    // the names this peer keeps
	ownedFile  = "owned.json"    // the subclouds this peer owns (the name from its JSON days: node/owner reads both forms)
	askEvery   = 5 * time.Minute // a member asks its owner about a lease not renewed since
)

// leaseDoc is the lease table and the ledger on disk: one file, so that a
// claim or a renewal costs one fsync.
type leaseDoc struct {
	Version int             `json:"version"`
	Lease   json.RawMessage `json:"lease"`
	Ledger  []ledgerEntry   `json:"ledger"`
}

// openKeeper restores the peer's side from dir ("" for none). notes are
// for the log (a previous copy restored, a table migrated).
func openKeeper(fsys durable.FS, dir string, logf func(string, ...any)) (*keeper, []string, error) {
	k := &keeper{fs: fsys, dir: dir, logf: logf, table: &subcloud.Table{}, names: &subcloud.Names{}}
	k.turn.free.L = &k.mu
	var notes []string
	if dir != "" {
		path := filepath.Join(dir, leaseFile)
		note, found, err := durable.Read(fsys, path, func(b []byte) error {
			t, ledger, err := decodeLeaseDoc(b)
			if err == nil {
				k.table, k.ledger = t, ledger
			}
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("node: lease table: %w", err)
		}
		notes = append(notes, note)
		if found && k.ledger == nil {
			// A version 1 table: the ledger is in its own file.
			lnote, _, err := durable.Read(fsys, filepath.Join(dir, ledgerFile), func(b []byte) error {
				got, err := decodeLedger(b)
				if err == nil {
					k.ledger = got
				}
				return err
			})
			if err != nil {
				return nil, nil, fmt.Errorf("node: lease ledger: %w", err)
			}
			notes = append(notes, lnote)
		}
		nnote, _, err := durable.Read(fsys, filepath.Join(dir, namesFile), func(b []byte) error {
			t, err := subcloud.UnmarshalNames(b)
			if err == nil {
				k.names = t
			}
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("node: names: %w", err)
		}
		notes = append(notes, nnote)
	}
	k.publish()
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return k, out, nil
}

// decodeLeaseDoc reads a lease file: version 2 (lease and ledger), or
// version 1 (the lease alone: the ledger is then nil).
func decodeLeaseDoc(b []byte) (*subcloud.Table, []ledgerEntry, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil || probe["version"] == nil {
		t, err := subcloud.Unmarshal(b) // version 1: the lease, or null
		return t, nil, err
	}
	var doc leaseDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, err
	}
	if doc.Version != 2 {
		return nil, nil, fmt.Errorf("lease table version %d, want 1 or 2", doc.Version)
	}
	t, err := subcloud.Unmarshal(doc.Lease)
	if err != nil {
		return nil, nil, err
	}
	if err := checkLedger(doc.Ledger); err != nil {
		return nil, nil, err
	}
	if doc.Ledger == nil {
		doc.Ledger = []ledgerEntry{}
	}
	return t, doc.Ledger, nil
}

// publish makes the table's lease and the ledger visible to readers.
// Called with k.mu held (or before the keeper is shared).
func (k *keeper) publish() {
	if l, ok := k.table.Current(time.Time{}); ok {
		k.lease.Store(&l)
	} else {
		k.lease.Store(nil)
	}
	ledger := append([]ledgerEntry(nil), k.ledger...)
	k.ledgerRO.Store(&ledger)
	k.namesRO.Store(k.names.Snapshot())
}

// current is the live lease; it takes no lock.
func (k *keeper) current(now time.Time) (subcloud.Lease, bool) {
	l := k.lease.Load()
	if l == nil || !now.Before(l.Expires) {
		return subcloud.Lease{}, false
	}
	return *l, true
}

// write stores the lease and the ledger durably. Called with mu held and
// the turn taken; it releases mu across the write.
func (k *keeper) write(t *subcloud.Table, ledger []ledgerEntry) error {
	if k.dir == "" {
		return nil
	}
	lease, err := t.Marshal()
	if err != nil {
		return err
	}
	if ledger == nil {
		ledger = []ledgerEntry{}
	}
	b, err := json.Marshal(leaseDoc{Version: 2, Lease: lease, Ledger: ledger})
	if err != nil {
		return err
	}
	return k.store(leaseFile, b)
}

// store writes b to file in the data dir durably, with mu released: called
// with mu held and the turn taken, which keeps the writes one at a time and
// in the order their changes were decided (a change waits for the turn,
// so it is decided on the state the last write left).
func (k *keeper) store(file string, b []byte) error {
	k.mu.Unlock()
	defer k.mu.Lock()
	return k.stored(durable.Write(k.fs, filepath.Join(k.dir, file), b))
}

// stored notes the outcome of a write of the data dir: a failure is the
// peer's storage fault until a write succeeds.
func (k *keeper) stored(err error) error {
	if err == nil {
		if f := k.storage.Swap(nil); f != nil {
			k.logf("the data dir %s can be written again (it could not since %s: %s)", k.dir, f.since.Format(time.RFC3339), f.reason)
			k.notifyFault()
		}
		return nil
	}
	reason := durable.Reason(err)
	if reason == "" {
		reason = "write failed"
	}
	if f := k.storage.Load(); f == nil || f.reason != reason {
		k.storage.Store(&storageFault{since: time.Now(), reason: reason, err: err})
		k.logf("the data dir %s cannot be written (%s: %v): this peer grants no lease and owns no new subcloud until it can", k.dir, reason, err)
		k.notifyFault()
	}
	return err
}

// notifyFault says that the storage fault changed.
func (k *keeper) notifyFault() {
	if k.faultChanged != nil {
		k.faultChanged()
	}
}

// fault is the data dir's present failure, or nil.
func (k *keeper) fault() *storageFault { return k.storage.Load() }

// probe checks the data dir can take a write now.
func (k *keeper) probe() {
	if k.dir == "" {
		return
	}
	k.stored(durable.Probe(k.fs, k.dir))
}

// apply carries out a lease or name request from the peer named from.
// self is this peer as the requests must name it. owner is the owner's
// incarnation as the membership shows it now, remembered with a claim or
// renewal (so that the peer asks the owner when the owner restarts).
func (k *keeper) apply(now time.Time, self subcloud.Self, from string, req subcloud.Request, ownerBoot uint64) subcloud.Reply {
	if req.Op == subcloud.OpWho { // a read: from the snapshot, not behind a write's fsync
		return k.namesRO.Load().Apply(now, self, from, req, nil)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if req.Op != subcloud.OpCheck {
		// A change (or a request that may be one) waits for its turn; a
		// check changes nothing and reads the table as the disk has it.
		defer k.turn.take()() // given back before mu is unlocked
	}
	switch req.Op {
	case subcloud.OpName, subcloud.OpNameRelease:
		rep := k.names.Apply(now, self, from, req, k.writeNames)
		k.namesRO.Store(k.names.Snapshot())
		return rep
	}
	var ledger []ledgerEntry
	changed := false
	rep := k.table.Apply(now, self, from, req, func(next *subcloud.Table) error {
		changed = true
		ledger = metered(k.ledger, k.table, next, req, now)
		return k.write(next, ledger)
	})
	if changed && (rep.OK || req.Op == subcloud.OpRelease) {
		if _, held := k.table.Current(now); held || req.Op == subcloud.OpRelease {
			k.ledger = ledger
		}
	}
	if rep.OK && (req.Op == subcloud.OpClaim || req.Op == subcloud.OpRenew) {
		k.ownerBoot = ownerBoot
		k.asked = now
	}
	k.publish()
	return rep
}

// who is the live record of a name this peer keeps.
func (k *keeper) who(now time.Time, name string) (subcloud.NameRecord, bool) {
	return k.namesRO.Load().Who(now, name)
}

// dropName forgets the record of name held for key: its owner said it no
// longer holds it. It reports whether it did.
func (k *keeper) dropName(now time.Time, name string, key identity.Public) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer k.turn.take()()
	next, ok := k.names.Without(now, name, key)
	if !ok {
		return false
	}
	if err := k.writeNames(next); err != nil {
		k.logf("cannot store the names this peer keeps: %v (the dropped record of %s is dropped in memory only)", err, name)
	}
	k.names = next
	k.namesRO.Store(next.Snapshot())
	return true
}

// writeNames stores the names this peer keeps durably. Called with mu held
// and the turn taken; it releases mu across the write.
func (k *keeper) writeNames(t *subcloud.Names) error {
	if k.dir == "" {
		return nil
	}
	b, err := t.Marshal()
	if err != nil {
		return err
	}
	return k.store(namesFile, b)
}

// drop frees the peer from a lease its owner says (signed) it no longer
// holds. It takes effect even if the disk cannot record it.
func (k *keeper) drop(now time.Time, l subcloud.Lease) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer k.turn.take()()
	cur, ok := k.table.Current(now)
	if !ok || cur.Subcloud != l.Subcloud || cur.Token != l.Token {
		return nil // renewed, released or lapsed meanwhile
	}
	ledger := metered(k.ledger, k.table, &subcloud.Table{}, subcloud.Request{Op: subcloud.OpRelease, Subcloud: l.Subcloud}, now)
	err := k.table.Drop(now, l.Subcloud, l.Token, func(next *subcloud.Table) error { return k.write(next, ledger) })
	k.ledger = ledger
	k.publish()
	return err
}

// due says whether the peer should ask its lease's owner whether it still
// holds the lease: the owner restarted since it last renewed it
// (ownerBoot, from the membership, differs), the peer itself restarted
// and has not heard from the owner, or nothing was heard for askEvery.
func (k *keeper) due(now time.Time, ownerBoot uint64) (subcloud.Lease, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.table.Current(now)
	if !ok || ownerBoot == 0 {
		return subcloud.Lease{}, false
	}
	if k.ownerBoot == ownerBoot && now.Sub(k.asked) < askEvery {
		return subcloud.Lease{}, false
	}
	if now.Sub(k.asked) < 5*time.Second {
		return subcloud.Lease{}, false // asked just now: wait for the answer, or the next try
	}
	k.asked = now
	return l, true
}

// unverified records an answer from the owner that its lease's key did
// not sign: the next ask waits askEvery. It reports whether it is the
// first such answer about this lease (for the log).
func (k *keeper) unverified(now time.Time, ownerBoot uint64, l subcloud.Lease) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ownerBoot, k.asked = ownerBoot, now
	first := k.unsigned != l.Token
	k.unsigned = l.Token
	return first
}

// answered records that the owner (at incarnation ownerBoot) said it
// holds the lease.
func (k *keeper) answered(now time.Time, ownerBoot uint64) {
	k.mu.Lock()
	k.ownerBoot, k.asked = ownerBoot, now
	k.mu.Unlock()
}

// closeLapsed closes, and stores, the ledger's open entry of a lease that
// lapsed. The lease loop calls it; readers only see it closed.
func (k *keeper) closeLapsed(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer k.turn.take()()
	last := len(k.ledger) - 1
	if last < 0 || !k.ledger[last].Open || k.stillOpen(now, k.ledger[last]) {
		return
	}
	ledger := append([]ledgerEntry(nil), k.ledger...)
	ledger[last].Open = false
	if err := k.write(k.table, ledger); err != nil {
		k.logf("cannot store the lease ledger: %v (its last entry is closed in memory only)", err)
	}
	k.ledger = ledger
	k.publish()
}

// stillOpen reports whether the ledger entry e is the live lease's.
func (k *keeper) stillOpen(now time.Time, e ledgerEntry) bool {
	l, ok := k.table.Current(now)
	return ok && l.Subcloud == e.Subcloud && l.Owner == e.Owner
}

// rows are the peer's rows of FROM leases; they take no lock.
func (k *keeper) rows(self string, now time.Time) []query.Record {
	return k.rowsOf(*k.ledgerRO.Load(), self, now)
}

// shown is the peer's ledger as it shows it to an asker's sample check
// of p (FROM leases): each row as p reads it, with its receipts. It takes
// no lock.
func (k *keeper) shown(p *query.Plan, self string, now time.Time) []shownRow {
	ledger := *k.ledgerRO.Load()
	rows := k.rowsOf(ledger, self, now)
	out := make([]shownRow, len(rows))
	for i, r := range rows {
		out[i] = shownRow{row: run.SampleRow(p, r), key: ledger[i].OwnerKey, grant: ledger[i].Grant, last: ledger[i].Last}
	}
	return out
}

// rowsOf is ledger's rows of FROM leases, one per entry.
func (k *keeper) rowsOf(ledger []ledgerEntry, self string, now time.Time) []query.Record {
	cur, held := k.current(now)
	rows := make([]query.Record, 0, len(ledger))
	for i, e := range ledger {
		open := e.Open && i == len(ledger)-1 && held && cur.Subcloud == e.Subcloud && cur.Owner == e.Owner
		ended := 0.0
		if !open {
			ended = now.Sub(e.Until).Seconds()
		}
		hours, receipted := e.hours(self)
		rows = append(rows, query.LeasesCatalog().Clamp(query.Record{
			"node": query.Str(self), "subcloud": query.Str(e.Subcloud), "owner": query.Str(e.Owner),
			"peer_hours": query.Num(query.KindNumber, hours), "receipted": query.Bool(receipted),
			"started_ago": query.Num(query.KindDuration, now.Sub(e.Start).Seconds()),
			"ended_ago":   query.Num(query.KindDuration, max(ended, 0)),
			"open":        query.Bool(open),
		}))
	}
	return rows
}

// turn lets the writes of one file happen one at a time, in order, with
// no lock held across them: a writer takes the turn under the lock that
// guards it (waiting on free, which releases that lock), writes with the
// lock released, and gives the turn back under the lock.
type turn struct {
	busy bool
	free sync.Cond // signalled when the turn is given back; its L is the guarding lock
}

// take waits for the turn and takes it; it returns the function that gives
// it back. Both are called with free.L held.
func (t *turn) take() (giveBack func()) {
	for t.busy {
		t.free.Wait()
	}
	t.busy = true
	return func() {
		t.busy = false
		t.free.Signal()
	}
}

// errNoStorage is a grant refused because the data dir cannot be
// written.
var errNoStorage = errors.New("the data dir cannot be written")
