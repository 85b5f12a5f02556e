package owner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/peerq/peerq/subcloud"
)

// ErrClosed is a change cut short because the role stopped (the peer
// shuts down): what it did is on disk or not, as the table says after a
// restart.
var ErrClosed = errors.New("owner: the peer is shutting down")

// ErrBusy is a change refused because one of its kind is running.
var ErrBusy = errors.New("owner: busy")

// ErrNotOwned is a change of a subcloud this peer does not own.
var ErrNotOwned = errors.New("owner: not owned here")

// ---- the user's changes ----

// Reserve runs a RESERVE once the caller holds the name (its keepers in
// spec.Keepers) and returns its report: done only once the subcloud is on
// disk. search is the RESERVE's own search (its progress, its admission);
// repairs and RESIZE search with the plan after. When ctx ends first, the
// claim is aborted and the report still comes, once what it claimed is
// released.
func (r *Role) Reserve(ctx context.Context, spec subcloud.Reserve, search func(context.Context) ([]string, error)) (*subcloud.Report, error) {
	r.mu.Lock()
	if s := r.subs[spec.Subcloud]; s != nil {
		r.mu.Unlock()
		if s.o.Phase() == subcloud.PhaseReserving {
			return nil, fmt.Errorf("a RESERVE of %s is already running at this agent", spec.Subcloud)
		}
		return nil, fmt.Errorf("this agent already owns a subcloud %s; RELEASE it first or choose another name", spec.Subcloud)
	}
	now := r.env.Now()
	o, err := subcloud.NewOwner(r.cfg.Owner, spec, now, newRand(r.rng))
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	s := newSub(r.env, spec.Subcloud, o)
	s.search = search
	r.subs[spec.Subcloud] = s
	delete(r.released, spec.Subcloud)
	wait := make(chan *subcloud.Report, 1)
	s.waits[subcloud.ChangeReserve] = wait
	acts := r.takeLocked(s, now)
	r.mu.Unlock()
	r.do(s, acts)
	poke(r.kick)
	rep, err := r.await(ctx, s, wait)
	r.mu.Lock()
	plan := o.Plan()
	s.search = func(ctx context.Context) ([]string, error) { return r.env.Search(ctx, plan) }
	r.mu.Unlock()
	return rep, err
}

// Resize is ALTER SUBCLOUD name RESIZE TO size.
func (r *Role) Resize(ctx context.Context, name string, size int) (*subcloud.Report, error) {
	return r.change(ctx, name, subcloud.ChangeResize, func(o *subcloud.Owner, now time.Time) { o.Resize(now, size) })
}

// Extend is ALTER SUBCLOUD name EXTEND FOR d.
func (r *Role) Extend(ctx context.Context, name string, d time.Duration) (*subcloud.Report, error) {
	return r.change(ctx, name, subcloud.ChangeExtend, func(o *subcloud.Owner, now time.Time) { o.Extend(now, d) })
}

// Release is RELEASE name.
func (r *Role) Release(ctx context.Context, name string) (*subcloud.Report, error) {
	return r.change(ctx, name, subcloud.ChangeRelease, func(o *subcloud.Owner, now time.Time) { o.Release(now) })
}

// change asks name's machine for a change and waits for its report. One
// change of a kind at a time: the machine refuses a second one at once,
// and so does the role before it (its report would have nowhere to go).
func (r *Role) change(ctx context.Context, name string, c subcloud.Change, f func(*subcloud.Owner, time.Time)) (*subcloud.Report, error) {
	r.mu.Lock()
	s := r.subs[name]
	if s == nil {
		r.mu.Unlock()
		return nil, ErrNotOwned
	}
	if s.waits[c] != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: a %v of subcloud %s is already running; try again in a moment", ErrBusy, c, name)
	}
	now := r.env.Now()
	wait := make(chan *subcloud.Report, 1)
	s.waits[c] = wait
	f(s.o, now)
	acts := r.takeLocked(s, now)
	r.mu.Unlock()
	r.do(s, acts)
	poke(r.kick)
	return r.await(ctx, s, wait)
}

// await waits for a change's report. When ctx ends first, the machine is
// told (a RESERVE's claim is aborted, a RESIZE waiting for repairs answers
// now; other changes run to their end) and the report still awaited.
func (r *Role) await(ctx context.Context, s *sub, wait chan *subcloud.Report) (*subcloud.Report, error) {
	select {
	case rep := <-wait:
		return rep, nil
	case <-r.ctx.Done():
		return nil, ErrClosed
	case <-ctx.Done():
		err := ctx.Err()
		r.step(s, func(o *subcloud.Owner, now time.Time) { o.Cancel(now, err) })
	}
	select {
	case rep := <-wait:
		return rep, nil
	case <-r.ctx.Done():
		return nil, ErrClosed
	}
}

// ---- what the peer asks of the role ----

// Member is a member of a subcloud and the expiry it last confirmed.
type Member struct {
	Name    string
	Expires time.Time
}

// View is what the role shows of one subcloud it owns.
type View struct {
	Subcloud, Token, Key string
	Lease                time.Duration
	// Since is the subcloud's creation.
	Since time.Time
	// Members, best first.
	Members []Member
	// Dropped are the former members that may still hold the lease, until
	// when.
	Dropped map[string]time.Time
	Info    subcloud.Info
	// RepairTimes are how long the last repairs took from loss to
	// replacement (the churn benchmark).
	RepairTimes []time.Duration
}

// Held is every subcloud this peer holds (not those a RESERVE is still
// claiming), by name.
func (r *Role) Held() map[string]View {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.env.Now()
	out := make(map[string]View, len(r.subs))
	for name, s := range r.subs {
		if s.o.Phase() == subcloud.PhaseHeld {
			out[name] = viewOf(s.o, now)
		}
	}
	return out
}

// Lookup is the subcloud name if this peer holds it.
func (r *Role) Lookup(name string) (View, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.subs[name]
	if s == nil || s.o.Phase() != subcloud.PhaseHeld {
		return View{}, false
	}
	return viewOf(s.o, r.env.Now()), true
}

func viewOf(o *subcloud.Owner, now time.Time) View {
	st := o.State()
	v := View{Subcloud: st.Subcloud, Token: st.Token, Key: st.Key, Lease: st.Lease, Since: st.Since, Dropped: st.Dropped,
		Info: o.Info(now), RepairTimes: o.RepairTimes()}
	for _, m := range o.Members() {
		exp, _ := o.Expiry(m)
		v.Members = append(v.Members, Member{Name: m, Expires: exp})
	}
	return v
}

// Owns reports whether this peer owns or is reserving any subcloud.
func (r *Role) Owns() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs) > 0
}

// ByKey is the subcloud a RESERVE with key reserved or is reserving.
func (r *Role) ByKey(key string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, s := range r.subs {
		if key != "" && s.o.Key() == key {
			return name, true
		}
	}
	return "", false
}

// Holds is the owner's answer to an OpAsk: a member asking about its
// lease (token set) is held while it is a member, a former one not yet
// settled, or while a claim runs; a keeper asking about the name (no
// token) is held while this peer owns or reserves it.
func (r *Role) Holds(name, token, from string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.subs[name]
	switch {
	case s == nil:
		return false
	case token == "":
		return true
	case token != s.o.Token():
		return false
	}
	return s.o.Holds(from)
}

// WasMember reports whether any of peers is a former member of a subcloud
// this peer owns that may still hold its lease.
func (r *Role) WasMember(peers []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.subs {
		for _, d := range s.o.Dropped() {
			for _, p := range peers {
				if p == d {
					return true
				}
			}
		}
	}
	return false
}

// Released are the subclouds given up lately (released, yielded, or a
// RESERVE that failed), by when; those older than keep are forgotten.
func (r *Role) Released(keep time.Duration) map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.env.Now()
	out := make(map[string]time.Time, len(r.released))
	for name, at := range r.released {
		if now.Sub(at) > keep {
			delete(r.released, name)
			continue
		}
		out[name] = at
	}
	return out
}

// ForgetReleased forgets that name was given up: the members' tags no
// longer show it.
func (r *Role) ForgetReleased(name string) {
	r.mu.Lock()
	delete(r.released, name)
	r.mu.Unlock()
}
