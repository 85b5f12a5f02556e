package node

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/subcloud"
)

// One name, one owner (subcloud/names.go): an owner registers a
// subcloud's name with its keepers before it claims a peer, holds it while
// a majority of them grant it, renews it with its leases, and gives it up
// with RELEASE. Who owns a name is asked of its keepers, never read from a
// creation time that any member could write on its claims.

// nameKeepers is this peer asking the keepers of subcloud names: it
// registers a name for a RESERVE (hold) or the owner role (register),
// gives names up (release), and asks who owns one (whoOwns, ownerOf) for
// SHOW SUBCLOUDS, FROM SUBCLOUD and the lease keeper's dated claims. The
// keepers' side — the names this peer keeps — is the lease keeper's
// (lease.go). Its one state is the random source of hold's back-off,
// guarded by mu because RESERVEs run at once; no lock is held across a
// request (the calls go out in parallel, each on its own goroutine).
type nameKeepers struct {
	self    string          // this peer's name
	members func() []string // the live members' names, this peer's included
	call    leaseCaller
	round   time.Duration // hold's back-off is 1–5 rounds
	// ctx ends when the node closes: a release in flight gives up.
	ctx context.Context

	mu sync.Mutex
	r  *mrand.Rand
}

// leaseCaller sends one lease request from this peer to a peer and returns
// its reply: callLease signs it as this peer's own, for the peer's present
// incarnation; callRaw sends it as it is (an ask). Both answer this peer's
// own requests without an exchange, and must be safe for concurrent use.
type leaseCaller interface {
	callLease(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error)
	callRaw(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error)
}

// nameVote is what the keepers of a name said to one registration.
type nameVote struct {
	keepers []string
	granted []string
	// rival is the other owner that keepers said holds the name, and
	// rivals how many said so.
	rival  string
	rivals int
	// silent are the keepers that did not answer (or could not store).
	silent []string
}

func (v nameVote) held() bool { return len(v.granted) >= subcloud.Majority(len(v.keepers)) }

func (v nameVote) lost() bool { return v.rivals >= subcloud.Majority(len(v.keepers)) }

// keepersOf are the keepers of name as this peer sees the membership.
func (k *nameKeepers) keepersOf(name string) []string {
	return subcloud.Keepers(name, k.members())
}

// register asks name's keepers to grant it to this peer for lease.
func (k *nameKeepers) register(ctx context.Context, name string, lease time.Duration) nameVote {
	v := nameVote{keepers: k.keepersOf(name)}
	byRival := map[string]int{}
	for _, r := range k.callAll(ctx, v.keepers, subcloud.Request{Op: subcloud.OpName, Subcloud: name, For: lease}) {
		switch {
		case r.err == nil && r.rep.OK:
			v.granted = append(v.granted, r.peer)
		case r.err == nil && r.rep.Refusal == subcloud.RefusedHeld && r.rep.Holder != "" && r.rep.Holder != k.self:
			byRival[r.rep.Holder]++
		default:
			v.silent = append(v.silent, r.peer)
		}
	}
	for owner, k := range byRival {
		if k > v.rivals || k == v.rivals && owner < v.rival {
			v.rival, v.rivals = owner, k
		}
	}
	sort.Strings(v.granted)
	return v
}

// release gives name up at keepers (every one it may be registered
// with) and waits for their answers, so that the next question to the
// keepers finds the name free (read your writes). A release that is lost
// leaves a record that lapses at its expiry, and that the majority rule
// outvotes meanwhile.
func (k *nameKeepers) release(name string, keepers []string) {
	if len(keepers) > 0 {
		k.callAll(k.ctx, keepers, subcloud.Request{Op: subcloud.OpNameRelease, Subcloud: name})
	}
}

// nameTries is how many times RESERVE asks a name's keepers when neither
// owner got a majority (two RESERVEs at once, a keeper cut off).
const nameTries = 4

// hold registers name for a RESERVE: it returns once a majority of the
// name's keepers granted it, or an error that says who holds it, or that
// its keepers could not be reached. It backs off and tries again when a
// rival holds some keepers and nobody a majority (two RESERVEs of one name
// at once), so that exactly one of them goes on.
func (k *nameKeepers) hold(ctx context.Context, name string, lease time.Duration) (nameVote, error) {
	var v nameVote
	for try := 1; ; try++ {
		v = k.register(ctx, name, lease)
		if v.held() {
			return v, nil
		}
		k.release(name, v.granted)
		switch {
		case v.lost() || v.rival != "" && try >= nameTries:
			return v, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf(
				"name %s taken by %s (%d of its %d keepers hold it for %s): choose another name, or RELEASE it at %s",
				name, v.rival, v.rivals, len(v.keepers), v.rival, v.rival)}
		case try >= nameTries:
			return v, fmt.Errorf("could not register the name %s: %d of its %d keepers answered (%s did not)",
				name, len(v.keepers)-len(v.silent), len(v.keepers), strings.Join(v.silent, ", "))
		}
		k.mu.Lock()
		wait := time.Duration(k.r.Int64N(int64(4*k.round))) + k.round
		k.mu.Unlock()
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return v, ctx.Err()
		}
	}
}

func mergeNames(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// nameOwner is who a name's keepers say owns it.
type nameOwner struct {
	owner string
	key   identity.Public
	// since is when the keepers first granted the name to that key (the
	// median of theirs: one lying keeper cannot move it).
	since time.Time
}

// whoOwns asks name's keepers who owns it: the owner a majority of the
// keepers that answered name, or ok false when none holds it.
func (k *nameKeepers) whoOwns(ctx context.Context, name string) (owner string, ok bool, err error) {
	o, ok, err := k.ownerOf(ctx, name)
	return o.owner, ok, err
}

// ownerOf asks name's keepers who owns it, with the key it registered
// with and since when: the owner (and key) a majority of the keepers that
// answered name, or ok false when none holds it.
func (k *nameKeepers) ownerOf(ctx context.Context, name string) (nameOwner, bool, error) {
	keepers := k.keepersOf(name)
	type vote struct {
		owner string
		key   identity.Public
	}
	votes := map[vote][]time.Time{}
	answered := 0
	for _, r := range k.callAll(ctx, keepers, subcloud.Request{Op: subcloud.OpWho, Subcloud: name}) {
		if r.err != nil {
			continue
		}
		answered++
		if r.rep.OK && r.rep.Holder != "" {
			key, err := identity.PublicOf(r.rep.OwnerKey)
			if err != nil {
				continue // a keeper's malformed answer counts as none
			}
			v := vote{r.rep.Holder, key}
			votes[v] = append(votes[v], time.Unix(0, r.rep.Since))
		}
	}
	if answered == 0 && len(keepers) > 0 {
		return nameOwner{}, false, errors.New("none of the name's keepers answered")
	}
	var best vote
	most := 0
	for v, at := range votes {
		if len(at) > most || len(at) == most && v.owner < best.owner {
			best, most = v, len(at)
		}
	}
	if most == 0 || most*2 <= answered {
		return nameOwner{}, false, nil
	}
	at := votes[best]
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	return nameOwner{owner: best.owner, key: best.key, since: at[len(at)/2]}, true, nil
}

// leaseReply is one keeper's reply to callAll, or why there is none.
type leaseReply struct {
	peer string
	rep  subcloud.Reply
	err  error
}

// callAll sends the same request, signed as this peer's, to peers in
// parallel within ctx and returns their replies.
func (k *nameKeepers) callAll(ctx context.Context, peers []string, req subcloud.Request) []leaseReply {
	out := make([]leaseReply, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := k.call.callLease(ctx, p, req)
			out[i] = leaseReply{p, rep, err}
		}()
	}
	wg.Wait()
	return out
}
