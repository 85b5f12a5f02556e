package subcloud

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/peerq/peerq/identity"
)

// Test identities: one key per name, from a seeded source, and a
// membership in which every one of them is known.
var (
	keysMu sync.Mutex
	keys   = map[string]*identity.Key{}
)

func keyOf(name string) *identity.Key {
	keysMu.Lock()
	defer keysMu.Unlock()
	k := keys[name]
	if k == nil {
		var seed [32]byte
		copy(seed[:], fmt.Sprintf("test key %s", name))
		var err error
		if k, err = identity.New(rand.NewChaCha8(seed)); err != nil {
			panic(err)
		}
		keys[name] = k
	}
	return k
}

// members is a membership that knows every test identity.
func members(name string) (identity.Public, bool) { return keyOf(name).Public(), true }

// self is peer name as its table sees itself, in incarnation 1.
func self(name string) Self { return Self{Name: name, Boot: 1, KeyOf: members} }

// signed is r from owner to peer to, signed as the runtime sends it.
func signed(owner, to string, r Request) Request {
	r.Owner, r.Target, r.Boot = owner, to, 1
	r.Sign(keyOf(owner))
	return r
}

// apply is a request from owner to peer applied to tb.
func apply(tb *Table, owner, peer string, r Request, persist func(*Table) error) Reply {
	return applyAt(tb, t0, owner, peer, r, persist)
}

func applyAt(tb *Table, now time.Time, owner, peer string, r Request, persist func(*Table) error) Reply {
	if persist == nil {
		persist = func(*Table) error { return nil }
	}
	return tb.Apply(now, self(peer), owner, signed(owner, peer, r), persist)
}

var _ = testing.Short
