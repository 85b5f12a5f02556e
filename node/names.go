package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
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
func (n *Node) keepersOf(name string) []string {
	return subcloud.Keepers(name, n.memberNames())
}

// registerName asks name's keepers to grant it to this peer for lease.
func (n *Node) registerName(ctx context.Context, name string, lease time.Duration) nameVote {
	v := nameVote{keepers: n.keepersOf(name)}
	byRival := map[string]int{}
	for _, r := range n.calls.leasesCtx(ctx, v.keepers, subcloud.Request{Op: subcloud.OpName, Subcloud: name, For: lease}) {
		switch {
		case r.err == nil && r.rep.OK:
			v.granted = append(v.granted, r.peer)
		case r.err == nil && r.rep.Refusal == subcloud.RefusedHeld && r.rep.Holder != "" && r.rep.Holder != n.Name():
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

// releaseName gives name up at keepers (every one it may be registered
// with) and waits for their answers, so that the next question to the
// keepers finds the name free (read your writes). A release that is lost
// leaves a record that lapses at its expiry, and that the majority rule
// outvotes meanwhile.
func (n *Node) releaseName(name string, keepers []string) {
	if len(keepers) > 0 {
		n.calls.leases(keepers, subcloud.Request{Op: subcloud.OpNameRelease, Subcloud: name})
	}
}

// nameTries is how many times RESERVE asks a name's keepers when neither
// owner got a majority (two RESERVEs at once, a keeper cut off).
const nameTries = 4

// holdName registers name for a RESERVE: it returns once a majority of the
// name's keepers granted it, or an error that says who holds it, or that
// its keepers could not be reached. It backs off and tries again when a
// rival holds some keepers and nobody a majority (two RESERVEs of one name
// at once), so that exactly one of them goes on.
func (n *Node) holdName(ctx context.Context, name string, lease time.Duration) (nameVote, error) {
	var v nameVote
	for try := 1; ; try++ {
		v = n.registerName(ctx, name, lease)
		if v.held() {
			return v, nil
		}
		n.releaseName(name, v.granted)
		switch {
		case v.lost() || v.rival != "" && try >= nameTries:
			return v, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf(
				"name %s taken by %s (%d of its %d keepers hold it for %s): choose another name, or RELEASE it at %s",
				name, v.rival, v.rivals, len(v.keepers), v.rival, v.rival)}
		case try >= nameTries:
			return v, fmt.Errorf("could not register the name %s: %d of its %d keepers answered (%s did not)",
				name, len(v.keepers)-len(v.silent), len(v.keepers), strings.Join(v.silent, ", "))
		}
		n.mu.Lock()
		wait := time.Duration(n.r.Int64N(int64(4*n.cfg.Round))) + n.cfg.Round
		n.mu.Unlock()
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

// clearStaleName runs at a keeper before it answers a registration of a
// name it holds for another owner: it asks that owner whether it still
// holds the name, and drops the record if the owner answers, signed, that
// it does not (it restarted without its records, or a RESERVE that failed
// could not give the name back). A name nobody holds is then free at once,
// not at its record's expiry.
func (n *Node) clearStaleName(req subcloud.Request) {
	now := n.now()
	rec, live := n.keeper.who(now, req.Subcloud)
	if !live || rec.Owner == req.Owner {
		return
	}
	if _, alive := n.net.Member(rec.Owner); !alive {
		return // cannot ask: the majority rule, or the record's expiry
	}
	var b [8]byte
	rand.Read(b[:])
	ask := subcloud.Request{Op: subcloud.OpAsk, Subcloud: req.Subcloud, Target: rec.Owner, Nonce: binary.BigEndian.Uint64(b[:])}
	rep, err := n.calls.raw(n.ctx, rec.Owner, ask)
	if err != nil || !rep.OK || rep.Held {
		return
	}
	a := subcloud.AskAnswer{Subcloud: req.Subcloud, Member: n.Name(), Nonce: ask.Nonce}
	if !subcloud.VerifyAsk(rec.OwnerKey, a, rep.Sig) {
		return
	}
	if n.keeper.dropName(now, req.Subcloud, rec.OwnerKey) {
		n.logf("name %s: %s no longer holds it (it says so, signed): its record here is dropped", req.Subcloud, rec.Owner)
	}
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
func (n *Node) whoOwns(ctx context.Context, name string) (owner string, ok bool, err error) {
	o, ok, err := n.nameOwnerOf(ctx, name)
	return o.owner, ok, err
}

// nameOwnerOf asks name's keepers who owns it, with the key it registered
// with and since when: the owner (and key) a majority of the keepers that
// answered name, or ok false when none holds it.
func (n *Node) nameOwnerOf(ctx context.Context, name string) (nameOwner, bool, error) {
	keepers := n.keepersOf(name)
	type vote struct {
		owner string
		key   identity.Public
	}
	votes := map[vote][]time.Time{}
	answered := 0
	for _, r := range n.calls.leasesCtx(ctx, keepers, subcloud.Request{Op: subcloud.OpWho, Subcloud: name}) {
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
