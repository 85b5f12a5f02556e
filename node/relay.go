package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// Leases across pools (docs/PROTOCOLS.md, "Subclouds across pools"). A
// subcloud's owner claims members of any pool. Another pool's member is
// named pool/name (a node name holds no "/": overlay.New; a pool's name
// neither: Config.Pool), and is reached through gateways: the owner's
// request goes to a gateway of its own pool (opRelay, over the pool's
// exchanges), which hands it to a gateway of the member's pool (over the
// cloud pool), which delivers it to the member (opDeliver). Every hop is
// a stranger, so nothing rests on one's word:
//
//   - The request is signed by the owner, as in one pool, under its name
//     in the cloud, pool/name: the member's lease names it so, and its
//     renewals, releases and asks find it again. The member checks the
//     signature with the owner's key as a majority of the member's own
//     pool's gateways vouch for it (vouch), each of which believes a key
//     only when a majority of the owner's pool's gateways, each signing,
//     show it in their membership (vouchFor).
//   - The member's reply is signed by the member over the request it
//     answers (relayDomain); the owner checks it with the member's key,
//     vouched for the same way at its own end. A relay can drop or delay a
//     request; it cannot grant, refuse or forge one.
//   - That a member cannot be reached is a gateway's word about another
//     peer: the owner's gateway says so only when a majority of the
//     member's pool's gateways do, and the owner believes it only when a
//     majority of its own gateways say so; one lying gateway cannot make
//     an owner drop a live member, only fail to reach it.
//
// A member of another pool that fails is found by the owner's checks of
// its members (subcloud.OwnerConfig.CheckEvery), relayed like the rest:
// the owner sees only its own pool's membership.

// The role's operations across pools (pools.go has the others).
const (
	opVouch   = iota + 5 // which keys do these members of a pool show?
	opRelay              // hand this lease request to a member of another pool
	opDeliver            // a lease request relayed from another pool
	opLearn              // which pools and cloud addresses does the cloud pool hold? (pools.learn)
)

// vouchDomain and relayDomain separate a vouch's and a relayed reply's
// signatures from the identity's others.
const (
	vouchDomain = "peerq pool vouch v1"
	relayDomain = "peerq relayed reply v1"
)

// maxVouch bounds the names one vouch asks about.
const maxVouch = 64

// vouchTTL is how long a vouched key is believed before it is asked for
// again: a member that restarts with a new data dir has a new key.
const vouchTTL = 30 * time.Second

// vouchBody is what a gateway signs about members' keys: for each of
// Names, the key and incarnation its membership shows (Keys[i] empty: no
// live member of that name), in pool Pool. By is the gateway's name in
// its pool; At when it signed, so that a vouch is not replayed for long.
type vouchBody struct {
	Pool  string   `cbor:"1,keyasint"`
	By    string   `cbor:"2,keyasint"`
	Names []string `cbor:"3,keyasint"`
	Keys  [][]byte `cbor:"4,keyasint"`
	Boots []uint64 `cbor:"5,keyasint"`
	At    int64    `cbor:"6,keyasint"`
}

// qualify names a member of pool in the cloud: pool/name.
func qualify(pool, name string) string { return pool + "/" + name }

// nameIn is q, a member's name in the cloud (pool/name), as pool knows
// it: name for one of its own, pool/name for another's.
func nameIn(q, pool string) string {
	if p, name, ok := remoteName(q); ok && p == pool {
		return name
	}
	return q
}

// remoteName splits a member's name in the cloud, pool/name; ok is false
// for a plain name (a member of the asker's own pool).
func remoteName(s string) (pool, name string, ok bool) {
	pool, name, ok = strings.Cut(s, "/")
	return pool, name, ok && pool != "" && name != ""
}

// vouched is a key believed for a member of another pool.
type vouched struct {
	key  identity.Public
	boot uint64
	at   time.Time
}

// keyring holds the keys believed for other pools' members, by pool/name,
// with the lookups in flight (one per pool and set of names, whoever
// waits for it). Its lock is held across no I/O.
type keyring struct {
	mu     sync.Mutex
	keys   map[string]vouched
	flying map[string]chan struct{}
}

func (k *keyring) get(q string, now time.Time) (vouched, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.keys[q]
	return v, ok && now.Sub(v.at) < vouchTTL
}

func (k *keyring) put(q string, v vouched) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]vouched{}
	}
	if len(k.keys) > 1<<16 {
		clear(k.keys) // bounded: what is dropped is asked for again
	}
	k.keys[q] = v
}

// missing are the names of pool not believed now.
func (k *keyring) missing(pool string, names []string, now time.Time) []string {
	var out []string
	for _, n := range names {
		if _, ok := k.get(qualify(pool, n), now); !ok && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// once runs look for key unless a run for it is in flight, which it then
// waits for (or ctx).
func (k *keyring) once(ctx context.Context, key string, look func()) {
	k.mu.Lock()
	if k.flying == nil {
		k.flying = map[string]chan struct{}{}
	}
	if ch, ok := k.flying[key]; ok {
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	ch := make(chan struct{})
	k.flying[key] = ch
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		delete(k.flying, key)
		k.mu.Unlock()
		close(ch)
	}()
	look()
}

// believe counts, for each name asked, the vouches that agree on its key
// and incarnation, and believes those that need of them give.
func believe(pool string, names []string, bodies []vouchBody, need int, now time.Time, into *keyring) {
	for _, n := range names {
		byKey, best, _ := vouchTally(n, bodies)
		for key, c := range byKey {
			if c >= need {
				into.put(qualify(pool, n), vouched{key: key, boot: best[key].boot, at: now})
			}
		}
	}
}

// keyBoot is a key and incarnation a gateway vouches for.
type keyBoot struct {
	key  identity.Public
	boot uint64
}

// vouchTally counts the gateways' vouches for member n by key, with the
// incarnation most of them give for each key: a restart between two
// gateways' views splits the incarnation, not the key, so the key a
// majority gives is believed with the incarnation most of them give (a
// stale one costs one retry: RefusedIncarnation carries the new one).
func vouchTally(n string, bodies []vouchBody) (byKey map[identity.Public]int, best map[identity.Public]keyBoot, votes map[keyBoot]int) {
	votes = map[keyBoot]int{}
	for _, b := range bodies {
		i := slices.Index(b.Names, n)
		if i < 0 || i >= len(b.Keys) || i >= len(b.Boots) || len(b.Keys[i]) == 0 {
			continue
		}
		key, err := identity.PublicOf(b.Keys[i])
		if err != nil || key.IsZero() {
			continue
		}
		votes[keyBoot{key, b.Boots[i]}]++
	}
	byKey, best = map[identity.Public]int{}, map[identity.Public]keyBoot{}
	for v, c := range votes {
		byKey[v.key] += c
		if b, ok := best[v.key]; !ok || votes[b] < c || votes[b] == c && v.boot > b.boot {
			best[v.key] = v
		}
	}
	return byKey, best, votes
}

// decided reports whether the vouches so far settle every name, with
// pending gateways yet to answer: a majority already gives one key and
// incarnation for it (what believe takes, whatever the rest say: a
// majority of one key's votes leaves no other key or incarnation a
// majority), or no key can reach a majority any more. Asking stops there,
// and a stalled or lying gateway among the rest costs nothing. (A key's
// majority alone would not do: one liar giving the right key with another
// incarnation, answering before the last honest gateway, would tie the
// incarnation, and believe takes the higher.)
func decided(names []string, bodies []vouchBody, need, pending int) bool {
	for _, n := range names {
		byKey, best, votes := vouchTally(n, bodies)
		settled := false
		for key := range byKey {
			if votes[best[key]] >= need {
				settled = true
				break
			}
		}
		if !settled && slices.Max(append(slices.Collect(maps.Values(byKey)), 0))+pending < need {
			settled = true
		}
		if !settled {
			return false
		}
	}
	return true
}

// gather receives up to n vouches from ch, stopping early once they
// settle every name (decided), and then cancels the asks still out.
func gather(ch <-chan *vouchBody, n int, names []string, need int, cancel context.CancelFunc) []vouchBody {
	defer cancel()
	var bodies []vouchBody
	for got := 1; got <= n; got++ {
		if b := <-ch; b != nil {
			bodies = append(bodies, *b)
		}
		if decided(names, bodies, need, n-got) {
			break
		}
	}
	return bodies
}

// checkVouch decodes and checks one gateway's signed vouch: signed by
// key, by the gateway named by, about pool, now (within the exchanges'
// replay window), and only about names it was asked.
func checkVouch(resp poolResp, key identity.Public, by, pool string, asked []string, now time.Time) (vouchBody, error) {
	var b vouchBody
	switch {
	case key.IsZero() || !identity.Verify(key, vouchDomain, resp.Vouch, resp.Sig):
		return b, fmt.Errorf("a vouch not signed by %s", by)
	case decodePool(resp.Vouch, &b) != nil:
		return b, fmt.Errorf("a malformed vouch from %s", by)
	case now.Sub(time.Unix(0, b.At)) > network.ReplayWindow || time.Unix(0, b.At).Sub(now) > network.ReplayWindow:
		return b, fmt.Errorf("a vouch from %s signed %v from now", by, now.Sub(time.Unix(0, b.At)).Round(time.Second))
	case b.By != by || b.Pool != pool:
		return b, fmt.Errorf("%s vouched as %s for pool %s, asked for pool %s", by, b.By, b.Pool, pool)
	case len(b.Names) != len(b.Keys) || len(b.Names) != len(b.Boots) || len(b.Names) > maxVouch:
		return b, fmt.Errorf("a malformed vouch from %s", by)
	}
	for _, n := range b.Names {
		if !slices.Contains(asked, n) {
			return b, fmt.Errorf("%s vouched for %s, which it was not asked about", by, n)
		}
	}
	return b, nil
}

func (p *pools) poolName() string { return p.cfg.Pool }

// lastBoot is the incarnation last vouched for a member of another pool
// (pool/name), however long ago; 0 if never: the lease loop compares it
// with the one it last asked about (leaseKeeper.ownerBoot).
func (p *pools) lastBoot(q string) uint64 {
	if !p.on() {
		return 0
	}
	p.known.mu.Lock()
	defer p.known.mu.Unlock()
	return p.known.keys[q].boot
}

// vouchName is vouch for one member of another pool, pool/name, within
// an exchange's time of ctx.
func (p *pools) vouchName(ctx context.Context, q string) {
	if pool, name, ok := remoteName(q); ok {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.ExchangeTimeout)
		defer cancel()
		p.vouch(ctx, pool, []string{name})
	}
}

// remoteKey is the key and incarnation believed now for a member of
// another pool (pool/name); it does no I/O.
func (p *pools) remoteKey(q string) (identity.Public, uint64, bool) {
	if !p.on() {
		return identity.Public{}, 0, false
	}
	v, ok := p.known.get(q, p.now())
	if !ok {
		return identity.Public{}, 0, false
	}
	return v.key, v.boot, true
}

// vouch has this peer believe the keys of members names of another
// pool, as a majority of its own pool's gateways vouch for them (each
// signing); the names no majority vouches for stay unknown.
func (p *pools) vouch(ctx context.Context, pool string, names []string) {
	if !p.on() || pool == p.cfg.Pool {
		return
	}
	for len(names) > 0 {
		batch := names[:min(len(names), maxVouch)]
		names = names[len(batch):]
		if batch = p.known.missing(pool, batch, p.now()); len(batch) == 0 {
			continue
		}
		p.known.once(ctx, "m\x00"+pool+"\x00"+strings.Join(batch, "\x00"), func() {
			members := p.lan.Members()
			keys, gws := memberKeys(members), Gateways(members, p.cfg.Gateways)
			ch := make(chan *vouchBody, len(gws))
			vctx, cancel := context.WithCancel(ctx) // gather's, once the vouches decide
			for _, g := range gws {
				go func() {
					resp, err := p.callLAN(vctx, g, poolReq{Op: opVouch, ID: newID(), Pool: pool, Names: batch})
					if err == nil {
						var b vouchBody
						if b, err = checkVouch(resp, keys[g], g, pool, batch, p.now()); err == nil {
							ch <- &b
							return
						}
					}
					if ctx.Err() != nil || vctx.Err() == nil { // not cancelled by gather
						p.quiet.logf(p.logf, p.now(), "vouch\x00"+g, "pools: gateway %s did not vouch for %d member(s) of pool %s: %v", g, len(batch), pool, err)
					}
					ch <- nil
				}()
			}
			need := majority(len(gws))
			believe(pool, batch, gather(ch, len(gws), batch, need, cancel), need, p.now(), &p.known)
		})
	}
}

// vouchFor is a gateway's vouch for members of pool, another pool: the
// keys a majority of that pool's gateways, each signing, show in their
// membership; signed by this gateway.
func (p *pools) vouchFor(ctx context.Context, c CloudNetwork, pool string, names []string) poolResp {
	if pool == p.cfg.Pool {
		return poolResp{Err: fmt.Sprintf("pool %s is this gateway's own: its members show their keys to each other", pool)}
	}
	if miss := p.gateKeys.missing(pool, names, p.now()); len(miss) > 0 {
		p.gateKeys.once(ctx, "g\x00"+pool+"\x00"+strings.Join(miss, "\x00"), func() {
			views := p.view(c)
			i := slices.IndexFunc(views, func(v poolView) bool { return v.Name == pool })
			if i < 0 {
				return
			}
			v := views[i]
			ch := make(chan *vouchBody, len(v.Gateways))
			vctx, cancel := context.WithCancel(ctx) // gather's, once the vouches decide
			for j, g := range v.Gateways {
				go func() {
					key, _ := identity.PublicOf(v.Keys[j])
					resp, err := p.callCloud(vctx, c, v.at[j], poolReq{Op: opVouch, ID: newID(), Pool: pool, Names: miss})
					if err == nil {
						var b vouchBody
						if b, err = checkVouch(resp, key, g, pool, miss, p.now()); err == nil {
							ch <- &b
							return
						}
					}
					if ctx.Err() != nil || vctx.Err() == nil { // not cancelled by gather
						p.quiet.logf(p.logf, p.now(), "vouch\x00"+pool+"\x00"+g, "pools: gateway %s of pool %s did not vouch for %d member(s): %v", g, pool, len(miss), err)
					}
					ch <- nil
				}()
			}
			need := majority(len(v.Gateways))
			believe(pool, miss, gather(ch, len(v.Gateways), miss, need, cancel), need, p.now(), &p.gateKeys)
		})
	}
	b := vouchBody{Pool: pool, By: p.lan.Name(), At: p.now().UnixNano()}
	for _, n := range names {
		v, ok := p.gateKeys.get(qualify(pool, n), p.now())
		b.Names = append(b.Names, n)
		if ok {
			b.Keys, b.Boots = append(b.Keys, v.key.Bytes()), append(b.Boots, v.boot)
		} else {
			b.Keys, b.Boots = append(b.Keys, nil), append(b.Boots, 0)
		}
	}
	return p.signVouch(b)
}

// vouchOwn is a gateway's vouch for members of its own pool, from its
// membership, for a gateway of another pool.
func (p *pools) vouchOwn(names []string) poolResp {
	b := vouchBody{Pool: p.cfg.Pool, By: p.lan.Name(), At: p.now().UnixNano()}
	for _, n := range names {
		m, ok := p.lan.Member(n)
		b.Names = append(b.Names, n)
		if ok && !m.Key.IsZero() {
			b.Keys, b.Boots = append(b.Keys, m.Key.Bytes()), append(b.Boots, m.Boot)
		} else {
			b.Keys, b.Boots = append(b.Keys, nil), append(b.Boots, 0)
		}
	}
	return p.signVouch(b)
}

func (p *pools) signVouch(b vouchBody) poolResp {
	p.mu.Lock()
	lie := p.lieVouch
	p.mu.Unlock()
	if lie != nil {
		lie(&b)
	}
	raw := encodePool(b)
	return poolResp{Vouch: raw, Sig: p.id.Sign(vouchDomain, raw)}
}

// relaySigned is what a member signs when it answers a relayed request:
// the request's hash and the reply, so that a relay cannot pair a reply
// with another request.
func relaySigned(req, reply []byte) []byte {
	h := sha256.Sum256(req)
	return append(h[:], reply...)
}

// relayLease sends a lease request (encoded, signed by this peer) to a
// member of another pool (to: pool/name) through this pool's gateways and
// returns the member's reply, signed by it with the key vouched for it.
// A gateway that fails, or relays a reply the member did not sign, is
// passed over for the next; that the member cannot be reached is
// believed only when a majority of this pool's gateways say so (an error
// wrapping network.ErrNoEndpoint, as in one pool).
func (p *pools) relayLease(ctx context.Context, to string, msg []byte) ([]byte, error) {
	pool, name, ok := remoteName(to)
	if !p.on() || !ok || pool == p.cfg.Pool {
		return nil, fmt.Errorf("node: %s is not a member of another pool", to)
	}
	p.vouch(ctx, pool, []string{name})
	key, _, known := p.remoteKey(to)
	if !known {
		return nil, fmt.Errorf("node: no majority of pool %s's gateways vouches for the key of %s", p.cfg.Pool, to)
	}
	gws := selfFirst(p.failing.last(Gateways(p.lan.Members(), p.cfg.Gateways), p.now()), p.lan.Name())
	var errs []error
	unreachable := 0
	for j, g := range gws {
		tctx, cancel := share(ctx, len(gws)-j)
		resp, err := p.callLAN(tctx, g, poolReq{Op: opRelay, ID: newID(), Pool: pool, To: name, Msg: msg, Wait: p.hopWait(tctx)})
		cancel()
		if hung(err) {
			p.failing.note(g, p.now())
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", g, err))
		case resp.Unreachable:
			if unreachable++; unreachable >= majority(len(gws)) {
				return nil, fmt.Errorf("%w: %d of this pool's %d gateways found no live %s (its pool's gateways said so)", network.ErrNoEndpoint, unreachable, len(gws), to)
			}
		case identity.Verify(key, relayDomain, relaySigned(msg, resp.Msg), resp.Sig):
			return resp.Msg, nil
		default:
			p.relayForged.Add(1)
			errs = append(errs, fmt.Errorf("%s relayed a reply %s did not sign", g, to))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("node: no gateway of pool %s relayed the request to %s: %w", p.cfg.Pool, to, errors.Join(errs...))
}

// share is ctx with a deadline of its share of the time left, for the
// first of tries tries: one gateway that stalls leaves time for the
// others.
func share(ctx context.Context, tries int) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && tries > 1 {
		return context.WithTimeout(ctx, time.Until(dl)/time.Duration(tries))
	}
	return ctx, func() {}
}

// hopWait is the time a relay's hop has under ctx, in milliseconds, for
// the request (poolReq.Wait): ctx's, or the exchange's own limit when
// that is nearer (callLAN, callCloud).
func (p *pools) hopWait(ctx context.Context) int64 {
	d := p.cfg.ExchangeTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	return max(d.Milliseconds(), 1)
}

// hopTime is how long a gateway gives a relay hop it serves: its own
// limit, or less when the sender's hop has less (waitMillis, from
// hopWait), so that its answer — the member's reply or that it did not
// give one — is back within the sender's time. Otherwise the sender
// times out first and notes a gateway that is waiting on a silent member
// as failing (relayOut gives each remote gateway a third of its time,
// relayIn waits up to half an exchange for the member).
func hopTime(limit time.Duration, waitMillis int64) time.Duration {
	if waitMillis <= 0 || waitMillis >= 2*limit.Milliseconds() { // past 4/3 of the limit, it is the limit; no product that overflows
		return limit
	}
	return min(limit, time.Duration(waitMillis)*time.Millisecond*3/4)
}

// failing remembers the gateways a relay through failed, so that the
// next relays try them last, and those a pool run's start or polls
// failed at, so that the next statements ask them last (coordinatePool):
// a gateway whose process hangs while Serf still shows it alive would
// otherwise cost every relay that starts there its share of the
// deadline, and two statements in three an exchange's timeout, until the
// failure detector (which it passes) says otherwise. A note lasts
// failingFor; past it the gateway is tried in its turn again, and one
// relay or statement pays for it if it still hangs — so a gateway noted
// again after its note ran out, but within twice its time, gets twice
// that time, up to maxFailingFor (one that hangs for an hour costs each
// coordinator ten timeouts, not 120); noted again while still noted, it
// keeps its time, from then. It holds at most maxFailing addresses. It is
// safe for concurrent use.
type failing struct {
	mu sync.Mutex
	at map[string]failNote
	// noted counts the failures noted, for /metrics: a gauge of the
	// notes alone drops to 0 between a note's end and the next failure.
	noted int64
}

// failNote is when a gateway last failed, and for how long it is tried
// last since.
type failNote struct {
	at   time.Time
	span time.Duration
}

const (
	failingFor    = 30 * time.Second
	maxFailingFor = 10 * time.Minute
	maxFailing    = 256
)

// note records that a relay through g, or a pool run at g, failed at now.
func (f *failing) note(g string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noted++
	if f.at == nil {
		f.at = map[string]failNote{}
	}
	prev, again := f.at[g]
	if !again && len(f.at) >= maxFailing {
		for k, n := range f.at {
			if now.Sub(n.at) >= n.span {
				delete(f.at, k)
			}
		}
		if len(f.at) >= maxFailing {
			return
		}
	}
	span := failingFor
	if again {
		switch age := now.Sub(prev.at); {
		case age < prev.span: // a clock gone back included: failed still counts it noted
			span = prev.span // noted still (two relays or runs at once): renewed, not doubled
		case age < 2*prev.span:
			span = min(2*prev.span, maxFailingFor) // tried in its turn again, and it still fails
		}
	}
	f.at[g] = failNote{at: now, span: span}
}

// last reorders gws (in place) so that those still noted as failing come
// after the others, each side in its order.
func (f *failing) last(gws []string, now time.Time) []string {
	return failedLast(f, gws, func(g string) string { return g }, now)
}

// failedLast reorders xs (in place), whose gateways name gives, so that
// those f still notes as failing come after the others, each side in its
// order: relays' gateways by name, a coordinator's by index (coordinatePool).
func failedLast[T any](f *failing, xs []T, name func(T) string, now time.Time) []T {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.at) == 0 {
		return xs
	}
	slices.SortStableFunc(xs, func(a, b T) int {
		fa, fb := f.failed(name(a), now), f.failed(name(b), now)
		switch {
		case fa == fb:
			return 0
		case fb:
			return -1
		}
		return 1
	})
	return xs
}

// count is how many gateways f notes as failing at now, and how many
// failures it noted in all.
func (f *failing) count(now time.Time) (failing int, noted int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for g := range f.at {
		if f.failed(g, now) {
			failing++
		}
	}
	return failing, f.noted
}

func (f *failing) failed(g string, now time.Time) bool {
	n, ok := f.at[g]
	return ok && now.Sub(n.at) < n.span
}

// relayOut is a gateway's hop for a member of its pool (from) to a
// member of another pool: through that pool's gateways, the first that
// delivers. Unreachable only when a majority of them say so.
func (p *pools) relayOut(ctx context.Context, c CloudNetwork, from string, req poolReq) poolResp {
	if req.Pool == p.cfg.Pool || req.To == "" {
		return poolResp{Err: "a relay within one pool"}
	}
	views := p.view(c)
	i := slices.IndexFunc(views, func(v poolView) bool { return v.Name == req.Pool })
	if i < 0 || len(views[i].Gateways) == 0 {
		return poolResp{Err: fmt.Sprintf("pool %s has no gateway in the cloud pool now", req.Pool)}
	}
	v := views[i]
	// Start at a gateway picked by the member's name and this gateway's:
	// requests for different members spread over the pool's gateways,
	// and the owner's next try, through another gateway of its pool,
	// starts at another of the member's pool. Each try gets its share of
	// the time left, so that one gateway that stalls leaves time for the
	// others.
	first := int(hash64(req.To+"\x00"+p.lan.Name()) % uint64(len(v.at)))
	order := p.failing.last(append(slices.Clone(v.at[first:]), v.at[:first]...), p.now())
	hop := poolReq{Op: opRelay, ID: req.ID, Pool: req.Pool, To: req.To, Msg: req.Msg, From: qualify(p.cfg.Pool, from)}
	known, _ := p.gateKeys.get(qualify(req.Pool, req.To), p.now())
	var errs []string
	unreachable := 0
	for j, at := range order {
		tctx, cancel := share(ctx, len(order)-j)
		hop.Wait = p.hopWait(tctx)
		resp, err := p.callCloud(tctx, c, at, hop)
		cancel()
		if hung(err) {
			p.failing.note(at, p.now())
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("%s: %v", at, err))
		case resp.Unreachable:
			if unreachable++; unreachable >= majority(len(v.at)) {
				return poolResp{Unreachable: true}
			}
		case len(resp.Msg) > 0 && known.key.IsZero():
			return poolResp{Msg: resp.Msg, Sig: resp.Sig} // the owner checks it
		case len(resp.Msg) > 0 && identity.Verify(known.key, relayDomain, relaySigned(req.Msg, resp.Msg), resp.Sig):
			return poolResp{Msg: resp.Msg, Sig: resp.Sig}
		case len(resp.Msg) > 0:
			p.relayForged.Add(1)
			errs = append(errs, fmt.Sprintf("%s: a reply %s did not sign", at, req.To))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return poolResp{Err: fmt.Sprintf("no gateway of pool %s delivered to %s: %s", req.Pool, req.To, strings.Join(errs, "; "))}
}

// relayIn is a gateway's last hop: it delivers a request from another
// pool to the member of its own pool it names, or says it cannot reach
// it: its membership does not list it, its address refuses the
// connection, or this gateway's own probes have found it silent for
// HintTTL (prober.silentFor: a member that hangs while Serf lists
// it). The owner believes it only from a majority of the pool's
// gateways (relayOut), each its own observer.
func (p *pools) relayIn(ctx context.Context, req poolReq) poolResp {
	if req.Pool != p.cfg.Pool {
		return poolResp{Err: fmt.Sprintf("a relay for pool %s reached a gateway of pool %s", req.Pool, p.cfg.Pool)}
	}
	if req.To == p.lan.Name() {
		return p.deliver(ctx, req)
	}
	if _, ok := p.lan.Member(req.To); !ok {
		return poolResp{Unreachable: true}
	}
	if p.rt != nil {
		// Said at once: a relay's hops share one deadline, and one more
		// wait for the member would outlast the hop that asked.
		if _, silent := p.rt.prober.silentFor(req.To, p.now()); silent {
			return poolResp{Unreachable: true}
		}
	}
	resp, err := p.callLAN(ctx, req.To, poolReq{Op: opDeliver, ID: req.ID, Msg: req.Msg, From: req.From, Wait: p.hopWait(ctx)})
	if p.rt != nil {
		// An answer (an error it gave among them) clears the probes'
		// note; the hop's own failure sets them going.
		failed := err
		if !hung(err) {
			failed = nil
		}
		p.rt.leaseContact(req.To, failed)
	}
	switch {
	case errors.Is(err, network.ErrNoEndpoint):
		return poolResp{Unreachable: true}
	case err != nil:
		return poolResp{Err: err.Error()}
	}
	return resp
}

// deliver is a member's side of a request relayed from another pool:
// the lease keeper answers it as it would a request from its own pool,
// with the owner's key as this pool's gateways vouch for it, and the
// reply is signed over the request.
func (p *pools) deliver(ctx context.Context, req poolReq) poolResp {
	r, err := subcloud.DecodeRequest(req.Msg)
	if err != nil {
		return poolResp{Err: err.Error()}
	}
	pool, name, ok := remoteName(req.From)
	if !ok || pool == p.cfg.Pool {
		return poolResp{Err: fmt.Sprintf("a relayed request from %q, not a member of another pool", req.From)}
	}
	switch r.Op {
	case subcloud.OpClaim, subcloud.OpRenew, subcloud.OpRelease, subcloud.OpCheck:
		if r.Owner != req.From {
			return poolResp{Err: fmt.Sprintf("a request signed as %s relayed from %s", r.Owner, req.From)}
		}
		// In one pool a request comes from its owner over the sealed
		// exchange, which refuses replays; a relay could replay an old
		// one (a release after the member was claimed again): only one
		// signed within the exchanges' replay window is taken.
		if at := time.Unix(0, r.At); p.now().Sub(at) > network.ReplayWindow || at.Sub(p.now()) > network.ReplayWindow {
			return poolResp{Err: fmt.Sprintf("a relayed %v signed %v away from this peer's clock (%s), beyond the %v replay window", r.Op, p.now().Sub(at).Abs().Round(time.Second), at.UTC().Format(time.RFC3339), network.ReplayWindow)}
		}
		if r.Op == subcloud.OpClaim {
			// The owner's key, as this pool's gateways vouch for it: in
			// part of the time the relay has, so that the reply is back
			// within the owner's exchange.
			vctx, cancel := context.WithTimeout(ctx, p.cfg.ExchangeTimeout/4)
			p.vouch(vctx, pool, []string{name})
			cancel()
		}
	case subcloud.OpAsk:
		// A member of another pool asks this owner about its lease: the
		// answer, signed by this owner, names it as it was claimed.
	default:
		return poolResp{Err: fmt.Sprintf("a %v is not relayed across pools", r.Op)}
	}
	// A request relayed twice — the owner trying another gateway after a
	// lost reply, or a relay replaying it — gets the reply it got the
	// first time, and changes nothing again: the sealed exchange that
	// refuses replays in one pool does not see inside a relay.
	h := sha256.Sum256(req.Msg)
	if resp, ok := p.answered.get(h, p.now()); ok {
		return resp
	}
	reply := p.serveLease(req.From, req.Msg)
	resp := poolResp{Msg: reply, Sig: p.id.Sign(relayDomain, relaySigned(req.Msg, reply))}
	p.answered.put(h, resp, p.now())
	return resp
}

// callCloud sends one request to a gateway in the cloud pool (at: its
// name there), or answers it here when it is this gateway.
func (p *pools) callCloud(ctx context.Context, c CloudNetwork, at string, req poolReq) (poolResp, error) {
	msg := encodePool(req)
	var out []byte
	var err error
	if at == c.Name() {
		out, err = p.answerCloud(ctx, at, msg)
	} else {
		cctx, cancel := context.WithTimeout(ctx, p.cfg.ExchangeTimeout)
		out, err = c.Exchange(cctx, at, msg)
		cancel()
	}
	var resp poolResp
	if err == nil {
		err = decodePool(out, &resp)
	}
	if err == nil && resp.Err != "" {
		err = farError(resp.Err)
	}
	return resp, err
}

// farError is an error a gateway answered with (a refusal, busy, or a
// failure further along a relay), as against its own exchange failing:
// only the latter says the gateway may hang (failing).
type farError string

func (e farError) Error() string { return string(e) }

// hung reports whether err is the hop's own failure (its exchange timed
// out or broke), not an answer the gateway gave.
func hung(err error) bool {
	var far farError
	return err != nil && !errors.As(err, &far)
}

// failedAlone says whether err, from an exchange made under ctx, is the
// other side's failure to answer (hung) and not ctx ending first: over
// sockets an exchange's deadline is ctx's when that is the nearer, and
// its read times out at that instant, before ctx says it is done — a
// gateway that was only slower than the asker's own deadline is not one
// that hangs.
func failedAlone(ctx context.Context, err error) bool {
	if !hung(err) || ctx.Err() != nil {
		return false
	}
	dl, ok := ctx.Deadline()
	return !ok || time.Now().Before(dl)
}

// selfFirst moves self, if gws holds it, to the front (no exchange with
// itself), the others keeping their order, in place.
func selfFirst(gws []string, self string) []string {
	if i := slices.Index(gws, self); i > 0 {
		copy(gws[1:i+1], gws[:i])
		gws[0] = self
	}
	return gws
}

// newID is a request's id: the role's requests carry one (pool runs are
// keyed by it; a relay's or a vouch's is only its exchange's).
func newID() []byte {
	id := newQueryID()
	return id[:]
}

// search runs a RESERVE's or a repair's search (a PlanReserve) in every
// pool and returns its candidates, best first: this pool's by name,
// another pool's as pool/name, whose keys it has its gateways vouch for
// in one go per pool, before the claims need them.
func (p *pools) search(ctx context.Context, plan *query.Plan, progress func(answer.Progress)) (*answer.Answer, []string, error) {
	a, facts, err := p.askWhere(ctx, plan.Gossiped(), progress, p.now())
	if a == nil {
		return nil, nil, err
	}
	if err == nil && len(a.Nodes) == 0 && a.Meta != nil && (a.Meta.Status == StatusPartial || a.Meta.Status == answer.StatusContested) {
		// Candidates from a search that did not converge are claimed, as
		// one pool's are (each member grants its own lease); but none
		// because no pool answered is not "no free peer": say why.
		err = &api.Error{Code: api.CodePartial, Message: fmt.Sprintf("the search across the pools found no candidate: it was %s (%s)", a.Meta.Status, a.Meta.Reason)}
	}
	where := facts.where
	names := make([]string, 0, len(a.Nodes))
	byPool := map[string][]string{}
	for _, n := range a.Nodes {
		pool := where[n]
		if pool == "" || pool == p.cfg.Pool {
			names = append(names, n)
			continue
		}
		names = append(names, qualify(pool, n))
		byPool[pool] = append(byPool[pool], n)
	}
	for pool, ns := range byPool {
		p.vouch(ctx, pool, ns)
	}
	return a, names, err
}

// replies are the relayed requests a member answered within the replay
// window, by their hash, with its replies (deliver): bounded by the
// requests a window can bring (maxAnswered), the oldest dropped first.
type replies struct {
	mu   sync.Mutex
	byID map[[32]byte]replied
}

type replied struct {
	resp poolResp
	at   time.Time
}

// maxAnswered bounds the replies kept: 4096 of about 200 bytes.
const maxAnswered = 4096

func (r *replies) get(h [32]byte, now time.Time) (poolResp, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	x, ok := r.byID[h]
	return x.resp, ok && now.Sub(x.at) <= 2*network.ReplayWindow
}

func (r *replies) put(h [32]byte, resp poolResp, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID = map[[32]byte]replied{}
	}
	if len(r.byID) >= maxAnswered {
		for k, x := range r.byID {
			if now.Sub(x.at) > 2*network.ReplayWindow {
				delete(r.byID, k)
			}
		}
		for k := range r.byID { // still full: any one goes
			if len(r.byID) < maxAnswered {
				break
			}
			delete(r.byID, k)
		}
	}
	r.byID[h] = replied{resp, now}
}
