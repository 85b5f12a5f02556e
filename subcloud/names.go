package subcloud

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/peerq/peerq/identity"
)

// One name, one owner. Two RESERVEs of one name started together at two
// agents must not both say yes, and no member may take a name from its
// owner by writing an earlier creation time on its claims. A subcloud's
// name is registered with the few live peers it is hashed to (its keepers,
// rendezvous hashing over the membership), each of which grants a name to
// one owner's key at a time, like a lease; an owner holds the name once a
// majority of its keepers granted it, and renews it with its leases. Two
// owners racing for one name ask the same keepers (their views of the
// membership agree but for the last seconds of churn), so at most one
// gets a majority.

// KeeperCount is how many keepers a name has (fewer in a smaller cloud):
// odd, so that two owners asking the same keepers cannot tie.
const KeeperCount = 5

// MaxNames bounds the names one keeper holds.
const MaxNames = 4096

// Keepers are the keepers of name among members: the KeeperCount members
// with the highest hash of (name, member), an odd number of them, best
// first.
func Keepers(name string, members []string) []string {
	type scored struct {
		m string
		h uint64
	}
	all := make([]scored, 0, len(members))
	for _, m := range members {
		h := fnv.New64a()
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(m))
		all = append(all, scored{m, mix(h.Sum64())})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].h != all[j].h {
			return all[i].h > all[j].h
		}
		return all[i].m < all[j].m
	})
	k := min(KeeperCount, len(all))
	if k%2 == 0 && k > 0 {
		k--
	}
	out := make([]string, k)
	for i := range out {
		out[i] = all[i].m
	}
	return out
}

// mix is a 64-bit finalizer (SplitMix64's): FNV's low bits alone spread
// names over members unevenly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Majority is how many of k keepers make a name held.
func Majority(k int) int { return k/2 + 1 }

// NameRecord is a keeper's grant of a name to an owner.
type NameRecord struct {
	Name     string          `json:"name"`
	Owner    string          `json:"owner"`
	OwnerKey identity.Public `json:"owner_key"`
	// Since is when this keeper first granted the name to that key: a
	// later registration by the same key keeps it.
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires"`
}

// Names is one keeper's table of names. Not safe for concurrent use.
type Names struct {
	recs map[string]*NameRecord
}

// Who is the live record of name, if any.
func (t *Names) Who(now time.Time, name string) (NameRecord, bool) {
	r := t.recs[name]
	if r == nil || !now.Before(r.Expires) {
		return NameRecord{}, false
	}
	return *r, true
}

// Len is the number of records, expired ones included until the next
// change.
func (t *Names) Len() int { return len(t.recs) }

func (t *Names) clone(now time.Time) *Names {
	next := &Names{recs: make(map[string]*NameRecord, len(t.recs))}
	for k, r := range t.recs {
		if now.Before(r.Expires) {
			c := *r
			next.recs[k] = &c
		}
	}
	return next
}

// Snapshot is the table as it is now, for readers that take no lock: it
// shares the records, which is safe because Apply and Without never change
// a map or a record they have made visible (they change a clone).
func (t *Names) Snapshot() *Names { return &Names{recs: t.recs} }

// Without is the table without the live record of name held for key (its
// owner said it no longer holds it), and whether there was one.
func (t *Names) Without(now time.Time, name string, key identity.Public) (*Names, bool) {
	if r, live := t.Who(now, name); !live || r.OwnerKey != key {
		return t, false
	}
	next := t.clone(now)
	delete(next.recs, name)
	return next, true
}

// Apply carries out a name request (OpName, OpNameRelease, OpWho) from the
// peer named from, as Table.Apply does for leases: a registration must be
// signed by the owner it names with the key the membership shows, a
// release by the owner that holds the name; both must be for this keeper
// in its present incarnation; a change is persisted before it answers.
func (t *Names) Apply(now time.Time, self Self, from string, r Request, persist func(*Names) error) Reply {
	cur, live := t.Who(now, r.Subcloud)
	switch r.Op {
	case OpWho:
		if !live {
			return replyOf(ErrNoLease, now)
		}
		return Reply{OK: true, Holder: cur.Owner, OwnerKey: cur.OwnerKey[:], Since: cur.Since.UnixNano(),
			Expires: cur.Expires.UnixNano(), Now: now.UnixNano()}
	case OpName:
		key := identity.Public{}
		if self.KeyOf != nil {
			key, _ = self.KeyOf(r.Owner)
		}
		if ref := authenticate(self, from, r.Owner, key, r); ref != 0 {
			return Reply{Refusal: ref, Boot: self.Boot, Now: now.UnixNano()}
		}
		if r.Subcloud == "" || len(r.Subcloud) > MaxNameBytes || r.For < MinLease || r.For > MaxLease {
			return replyOf(ErrBadClaim, now)
		}
		if live && cur.OwnerKey != key {
			return Reply{Refusal: RefusedHeld, Holder: cur.Owner, Since: cur.Since.UnixNano(), Now: now.UnixNano()}
		}
		next := t.clone(now)
		rec := next.recs[r.Subcloud]
		if rec == nil {
			if len(next.recs) >= MaxNames {
				return Reply{Refusal: RefusedFull, Now: now.UnixNano()}
			}
			rec = &NameRecord{Name: r.Subcloud, Owner: r.Owner, OwnerKey: key, Since: now}
			next.recs[r.Subcloud] = rec
		}
		rec.Owner, rec.Expires = r.Owner, now.Add(r.For)
		if err := persist(next); err != nil {
			return Reply{Refusal: RefusedStorage, Now: now.UnixNano()}
		}
		t.recs = next.recs
		return Reply{OK: true, Since: rec.Since.UnixNano(), Expires: rec.Expires.UnixNano(), Now: now.UnixNano()}
	case OpNameRelease:
		if !live {
			return replyOf(ErrNoLease, now)
		}
		if ref := authenticate(self, from, cur.Owner, cur.OwnerKey, r); ref != 0 {
			return Reply{Refusal: ref, Boot: self.Boot, Now: now.UnixNano()}
		}
		next := t.clone(now)
		delete(next.recs, r.Subcloud)
		rep := Reply{OK: true, Now: now.UnixNano()}
		if err := persist(next); err != nil {
			rep.Volatile = true // as a lease's release: freeing promises nothing
		}
		t.recs = next.recs
		return rep
	}
	return replyOf(ErrBadClaim, now)
}

type namesDoc struct {
	Version int          `json:"version"`
	Names   []NameRecord `json:"names"`
}

// Marshal is the table's durable form (JSON, versioned), sorted by name.
func (t *Names) Marshal() ([]byte, error) {
	doc := namesDoc{Version: 1, Names: []NameRecord{}}
	for _, r := range t.recs {
		doc.Names = append(doc.Names, *r)
	}
	sort.Slice(doc.Names, func(i, j int) bool { return doc.Names[i].Name < doc.Names[j].Name })
	return json.Marshal(doc)
}

// UnmarshalNames restores a table from Marshal's bytes, refusing anything
// malformed.
func UnmarshalNames(b []byte) (*Names, error) {
	var doc namesDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("subcloud: names: %w", err)
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("subcloud: names: version %d, want 1", doc.Version)
	}
	if len(doc.Names) > MaxNames {
		return nil, fmt.Errorf("subcloud: names: %d, more than %d", len(doc.Names), MaxNames)
	}
	t := &Names{recs: map[string]*NameRecord{}}
	for _, r := range doc.Names {
		if r.Name == "" || len(r.Name) > MaxNameBytes || r.Owner == "" || len(r.Owner) > MaxNameBytes || r.OwnerKey.IsZero() ||
			r.Expires.Before(r.Since) || t.recs[r.Name] != nil {
			return nil, errors.New("subcloud: names: a malformed record")
		}
		c := r
		t.recs[r.Name] = &c
	}
	return t, nil
}
