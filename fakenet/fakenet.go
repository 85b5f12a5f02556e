package fakenet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/node/network"
)

// Config sets the faults.
type Config struct {
	// Latency is the one-way delay of an exchange message; Jitter adds up
	// to that much more, uniformly.
	Latency, Jitter time.Duration
	// Loss is the probability that an exchange is lost; the caller sees
	// it time out after Timeout.
	Loss    float64
	Timeout time.Duration
	// ReplyLoss is the probability that a reply is lost after the request
	// was handled: the peer acted on it, the caller sees a time-out.
	ReplyLoss float64
	// Detect is how long after a crash the others see the peer fail
	// (Serf's failure detector takes seconds).
	Detect time.Duration
	// TagDelay is how long a peer's new tags take to reach the others.
	TagDelay time.Duration
	// Duplicate is the probability that a request is delivered twice (the
	// second answer is dropped), as a retransmission can.
	Duplicate float64
	Seed      uint64
}

// DefaultConfig is a quiet LAN: 1 ms each way, no loss, failures detected
// in 2 s, tags spread in 200 ms.
func DefaultConfig() Config {
	return Config{Latency: time.Millisecond, Timeout: time.Second, Detect: 2 * time.Second, TagDelay: 200 * time.Millisecond, Seed: 1}
}

// Network is the cluster. It is safe for concurrent use.
type Network struct {
	mu    sync.Mutex
	cfg   Config
	r     *rand.Rand
	hosts map[string]*Host
	cut   map[string]int // partition group of each host; absent: group 0
	// clock is each host's clock offset (SetClockOffset): exchanges
	// between two hosts whose clocks differ by more than the replay window
	// are refused, as the overlay refuses them.
	clock map[string]time.Duration
	// slow is each host's extra delay (SetSlow): a loaded machine, or one
	// far away, that answers late but answers.
	slow map[string]time.Duration
	// Exchanges counts exchanges attempted; Lost those lost to Loss,
	// crashes or partitions.
	exchanges, lost int64
}

// New returns an empty network.
func New(cfg Config) *Network {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	return &Network{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, 0xfa4e)), hosts: map[string]*Host{}, cut: map[string]int{},
		clock: map[string]time.Duration{}, slow: map[string]time.Duration{}}
}

// SetSlow makes every message to or from name take d more (0: none), a
// reply within the network's Timeout still arriving: a peer that answers
// late but answers.
func (nw *Network) SetSlow(name string, d time.Duration) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.slow[name] = d
}

// Host is one peer's view of the network: it implements node.Network.
type Host struct {
	nw      *Network
	name    string
	addr    string            // "fake:" + name, its gossip and exchange address
	tags    map[string]string // as the others see them
	alive   bool
	stopped bool // the process is gone, the machine answers: exchanges are refused
	handler network.Handler
	// key and boot are the peer's identity and incarnation, as the others
	// see them (SetIdentity).
	key  identity.Public
	boot uint64
	view map[string]bool // the peers this host believes alive, itself included
	// gone are the peers this host saw fail or leave, with when, until
	// they come back (Serf keeps them until it reaps them; so does this).
	gone   map[string]network.Known
	list   []string // view minus itself, sorted, for sampling
	events chan network.Event
}

// Add joins a new peer with its tags; every live peer sees it at once.
func (nw *Network) Add(name string, tags map[string]string) *Host {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	h := &Host{nw: nw, name: name, addr: "fake:" + name, tags: copyTags(tags), alive: true, view: map[string]bool{name: true}, gone: map[string]network.Known{}, events: make(chan network.Event, 1024)}
	for _, o := range nw.hosts {
		if o.alive {
			h.view[o.name] = true
			o.see(name, true)
			o.emit(network.MemberJoined, h)
		}
	}
	h.relist()
	nw.hosts[name] = h
	return h
}

// copyTags copies a peer's tags: never nil. maps.Clone copies the map's
// table whole; the node asks for members (Member, Members) many times a
// round, and copying key by key was a seventh of a 200-peer test's CPU.
func copyTags(t map[string]string) map[string]string {
	if t == nil {
		return map[string]string{}
	}
	return maps.Clone(t)
}

func (h *Host) see(name string, alive bool) {
	if alive {
		h.view[name] = true
		delete(h.gone, name)
	} else {
		delete(h.view, name)
	}
	h.relist()
}

// lose takes a peer out of this one's view, keeping it among the gone
// with its status (failed, left) and when it was last known alive.
func (h *Host) lose(name, status string) {
	h.gone[name] = network.Known{Member: h.member(name), Status: status}
	h.see(name, false)
}

func (h *Host) relist() {
	h.list = h.list[:0]
	for n := range h.view {
		if n != h.name {
			h.list = append(h.list, n)
		}
	}
	sort.Strings(h.list)
}

// emit tells h that m joined, failed or left, with m's address and tags
// as the overlay tells them. Called with nw.mu held.
func (h *Host) emit(kind network.EventKind, m *Host) {
	info := []network.Member{{Name: m.name, Addr: m.addr, Tags: copyTags(m.tags)}}
	select {
	case h.events <- network.Event{Kind: kind, Members: []string{m.name}, Info: info}:
	default: // past 1,024 events behind, lost: more than a test here makes (the overlay queues every one, overlay/events.go)
	}
}

// Crash stops a peer without leaving: it answers nothing from now on, and
// the others see it fail after Detect.
func (nw *Network) Crash(name string) {
	nw.mu.Lock()
	h := nw.hosts[name]
	if h == nil || !h.alive {
		nw.mu.Unlock()
		return
	}
	h.alive = false
	detect := nw.cfg.Detect
	nw.mu.Unlock()
	time.AfterFunc(detect, func() { nw.forget(name, network.MemberFailed) })
}

// SetClockOffset sets a host's clock ahead of the others' by d (behind,
// if negative): from now on, an exchange between two hosts whose clocks
// differ by more than network.ReplayWindow is refused by the receiver with
// a network.SkewError, as a real peer refuses a request whose time is out
// of its replay window.
func (nw *Network) SetClockOffset(name string, d time.Duration) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.clock[name] = d
}

// SetLoss changes the share of exchanges lost from now on.
func (nw *Network) SetLoss(p float64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.cfg.Loss = p
}

// SetDetect changes how long after a crash or a stop the others see a
// peer fail, for the crashes and stops from now on.
func (nw *Network) SetDetect(d time.Duration) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.cfg.Detect = d
}

// SetReplyLoss changes the share of replies lost from now on.
func (nw *Network) SetReplyLoss(p float64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.cfg.ReplyLoss = p
}

// Stop ends a peer's process while its machine stays up: exchanges to it
// are refused at once (network.ErrNoEndpoint, as a connection refused),
// and the others see it fail after Detect. Revive brings it back.
func (nw *Network) Stop(name string) {
	nw.mu.Lock()
	h := nw.hosts[name]
	if h == nil || !h.alive {
		nw.mu.Unlock()
		return
	}
	h.alive, h.stopped = false, true
	detect := nw.cfg.Detect
	nw.mu.Unlock()
	time.AfterFunc(detect, func() { nw.forget(name, network.MemberFailed) })
}

// Revive brings a crashed peer back, as a restart on the same address:
// it answers again, and every live peer sees it join. Its handler is
// cleared: the restarted runtime must Serve again.
func (nw *Network) Revive(name string) *Host {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	h := nw.hosts[name]
	if h == nil || h.alive {
		return h
	}
	h.alive, h.stopped, h.handler = true, false, nil
	h.view, h.gone = map[string]bool{name: true}, map[string]network.Known{}
	for _, o := range nw.hosts {
		if o.alive && o != h {
			h.view[o.name] = true
			if !o.view[name] {
				o.see(name, true)
				o.emit(network.MemberJoined, h)
			}
		}
	}
	h.relist()
	return h
}

// Leave takes a peer out gracefully: the others see it leave at once.
func (nw *Network) Leave(name string) {
	nw.mu.Lock()
	if h := nw.hosts[name]; h != nil {
		h.alive = false
	}
	nw.mu.Unlock()
	nw.forget(name, network.MemberLeft)
}

func (nw *Network) forget(name string, kind network.EventKind) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	h := nw.hosts[name]
	if kind == network.MemberFailed && h.alive {
		return // revived before the others noticed
	}
	status := network.StatusFailed
	if kind == network.MemberLeft {
		status = network.StatusLeft
	}
	for _, o := range nw.hosts {
		if o.name != name && o.view[name] {
			o.lose(name, status)
			o.emit(kind, h)
		}
	}
}

// Partition cuts the network: the peers in each group reach only each
// other, and the rest reach only the rest. Exchanges across fail after
// Timeout; after Detect, each side sees the other fail. Heal undoes it.
func (nw *Network) Partition(groups ...[]string) {
	nw.mu.Lock()
	nw.cut = map[string]int{}
	for i, g := range groups {
		for _, n := range g {
			nw.cut[n] = i + 1
		}
	}
	nw.mu.Unlock()
	time.AfterFunc(nw.cfg.Detect, func() {
		nw.mu.Lock()
		defer nw.mu.Unlock()
		for _, a := range nw.hosts {
			for _, b := range nw.hosts {
				if a != b && a.view[b.name] && nw.cut[a.name] != nw.cut[b.name] {
					a.lose(b.name, network.StatusFailed)
					a.emit(network.MemberFailed, b)
				}
			}
		}
	})
}

// Heal ends a partition: every live peer sees every other again.
func (nw *Network) Heal() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.cut = map[string]int{}
	for _, a := range nw.hosts {
		for _, b := range nw.hosts {
			if a.alive && b.alive && !a.view[b.name] {
				a.see(b.name, true)
				a.emit(network.MemberJoined, b)
			}
		}
	}
}

// Stats counts the exchanges attempted and those lost.
func (nw *Network) Stats() (exchanges, lost int64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.exchanges, nw.lost
}

// Name is the peer's name.
func (h *Host) Name() string { return h.name }

func (h *Host) member(name string) network.Member {
	o := h.nw.hosts[name]
	return network.Member{Name: name, Addr: o.addr, Exchange: o.addr, Tags: copyTags(o.tags), Key: o.key, Boot: o.boot}
}

// SetIdentity sets the peer's public key and incarnation as every peer
// sees them from now on (a real overlay shows them in its tags; the node
// tells a fake host when it starts).
func (h *Host) SetIdentity(key identity.Public, boot uint64) {
	h.nw.mu.Lock()
	defer h.nw.mu.Unlock()
	h.key, h.boot = key, boot
}

// Members are the peers this one believes alive, itself included, by name.
func (h *Host) Members() []network.Member {
	h.nw.mu.Lock()
	defer h.nw.mu.Unlock()
	out := make([]network.Member, 0, len(h.view))
	for n := range h.view {
		out = append(out, h.member(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// EachMember calls fn with each name Members would list, in no order.
func (h *Host) EachMember(fn func(name string)) {
	h.nw.mu.Lock()
	defer h.nw.mu.Unlock()
	for n := range h.view {
		fn(n)
	}
}

// Known are the peers this one believes alive, and those it saw fail or
// leave (kept, as Serf keeps them until it reaps them), by name.
func (h *Host) Known() []network.Known {
	h.nw.mu.Lock()
	defer h.nw.mu.Unlock()
	out := make([]network.Known, 0, len(h.view)+len(h.gone))
	for n := range h.view {
		out = append(out, network.Known{Member: h.member(n), Status: network.StatusAlive})
	}
	for _, k := range h.gone {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Member looks a peer up in this one's view.
func (h *Host) Member(name string) (network.Member, bool) {
	h.nw.mu.Lock()
	defer h.nw.mu.Unlock()
	if !h.view[name] {
		return network.Member{}, false
	}
	return h.member(name), true
}

// Size is the number of peers this one believes alive, itself included.
func (h *Host) Size() int {
	h.nw.mu.Lock()
	defer h.nw.mu.Unlock()
	return len(h.view)
}

// Sample picks a uniformly random peer of this one's view, not itself.
func (h *Host) Sample(r *rand.Rand) (string, bool) {
	h.nw.mu.Lock()
	defer h.nw.mu.Unlock()
	if len(h.list) == 0 {
		return "", false
	}
	return h.list[r.IntN(len(h.list))], true
}

// Events delivers this peer's membership changes.
func (h *Host) Events() <-chan network.Event { return h.events }

// SetTags replaces the peer's tags; the others see them after TagDelay.
func (h *Host) SetTags(tags map[string]string) error {
	t := copyTags(tags)
	apply := func() {
		h.nw.mu.Lock()
		h.tags = t
		var others []*Host
		for _, o := range h.nw.hosts {
			if o.alive && o.view[h.name] {
				others = append(others, o)
			}
		}
		for _, o := range others {
			o.emit(network.MemberUpdated, h)
		}
		h.nw.mu.Unlock()
	}
	if h.nw.cfg.TagDelay <= 0 {
		apply()
	} else {
		time.AfterFunc(h.nw.cfg.TagDelay, apply)
	}
	return nil
}

// Coordinate is a fake network coordinate: the peer's name.
func (h *Host) Coordinate() []byte { return []byte(h.name) }

// RTT is the fake round-trip time to the peer whose Coordinate is coord:
// twice the latency plus a spread from the names, so that rtt differs
// between peers. ok is false for an unknown coordinate.
func (h *Host) RTT(coord []byte) (time.Duration, bool) {
	h.nw.mu.Lock()
	_, ok := h.nw.hosts[string(coord)]
	h.nw.mu.Unlock()
	if !ok {
		return 0, false
	}
	var x uint32
	for _, b := range []byte(h.name + "|" + string(coord)) {
		x = x*31 + uint32(b)
	}
	if string(coord) == h.name {
		x = 0
	}
	return 2*h.nw.cfg.Latency + time.Duration(x%1000)*time.Microsecond, true
}

// Serve sets the handler of incoming exchanges.
func (h *Host) Serve(handler network.Handler) error {
	h.nw.mu.Lock()
	defer h.nw.mu.Unlock()
	h.handler = handler
	return nil
}

// ErrUnreachable is returned when an exchange is lost: the peer crashed,
// is across a partition, or the message was dropped.
var ErrUnreachable = errors.New("fakenet: exchange timed out")

// Exchange sends req to peer and waits for its answer, with the network's
// delays and faults.
func (h *Host) Exchange(ctx context.Context, peer string, req []byte) ([]byte, error) {
	nw := h.nw
	nw.mu.Lock()
	nw.exchanges++
	to := nw.hosts[peer]
	ok := h.alive && to != nil && to.alive && to.handler != nil && h.view[peer] && nw.cut[h.name] == nw.cut[peer]
	refused := h.alive && to != nil && to.stopped && nw.cut[h.name] == nw.cut[peer]
	lost := !ok || nw.cfg.Loss > 0 && nw.r.Float64() < nw.cfg.Loss
	extra := nw.slow[h.name] + nw.slow[peer]
	delay := nw.delay() + extra
	back := nw.delay() + extra
	twice := nw.cfg.Duplicate > 0 && nw.r.Float64() < nw.cfg.Duplicate
	lostBack := nw.cfg.ReplyLoss > 0 && nw.r.Float64() < nw.cfg.ReplyLoss
	var handler network.Handler
	if to != nil {
		handler = to.handler
	}
	if lost && !refused {
		nw.lost++
	}
	skew := nw.clock[peer] - nw.clock[h.name] // the receiver's clock minus the sender's
	nw.mu.Unlock()
	if !lost && !refused && (skew > network.ReplayWindow || -skew > network.ReplayWindow) {
		if err := sleep(ctx, 2*delay); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("fakenet: %s to %s: %w", h.name, peer, &network.SkewError{Peer: peer, Offset: skew})
	}
	if refused {
		if err := sleep(ctx, delay); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("fakenet: %s to %s: %w", h.name, peer, network.ErrNoEndpoint)
	}
	if lost {
		if err := sleep(ctx, nw.cfg.Timeout); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s to %s", ErrUnreachable, h.name, peer)
	}
	if err := sleep(ctx, delay); err != nil {
		return nil, err
	}
	resp, err := handler(h.name, append([]byte(nil), req...))
	if twice {
		handler(h.name, append([]byte(nil), req...))
	}
	if err != nil {
		return nil, fmt.Errorf("fakenet: %s refused the exchange: %w", peer, err)
	}
	if lostBack {
		nw.mu.Lock()
		nw.lost++
		nw.mu.Unlock()
		if err := sleep(ctx, nw.cfg.Timeout-delay); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s to %s (the reply)", ErrUnreachable, h.name, peer)
	}
	if err := sleep(ctx, back); err != nil {
		return nil, err
	}
	return append([]byte(nil), resp...), nil
}

// delay draws one message's delay. Called with nw.mu held.
func (nw *Network) delay() time.Duration {
	d := nw.cfg.Latency
	if nw.cfg.Jitter > 0 {
		d += time.Duration(nw.r.Int64N(int64(nw.cfg.Jitter)))
	}
	return d
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Names returns the peers ever added, sorted.
func (nw *Network) Names() []string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var out []string
	for n := range nw.hosts {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
