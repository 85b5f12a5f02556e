package overlay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/peerq/peerq/node/network"
)

// MemNetwork is an in-memory network for many Serf nodes in one process:
// memberlist transports, and exchange endpoints. It is safe for concurrent
// use.
type MemNetwork struct {
	mu        sync.RWMutex
	nodes     map[string]*memTransport // by address
	exchanges map[string]*memExchange  // by exchange address
	nextPort  int
	// Faults, for benchmarks: group of each node name (Partition; nodes
	// in different groups cannot reach each other), and the probability
	// that a packet or an exchange is lost.
	group map[string]int
	loss  float64
	rnd   *rand.Rand
	// stalled holds, by node name, how long an exchange with it waits
	// before its handler runs (Stall).
	stalled map[string]time.Duration
	stalls  atomic.Int64 // exchanges that met a stall
	// deadlines: SetCallerDeadlines.
	deadlines atomic.Bool
	// PacketQueue is each node's packet buffer; a full queue drops, as a
	// UDP socket's buffer would.
	PacketQueue int
	// Dropped counts packets dropped on full queues or to unknown nodes.
	dropped int64
	// tagSets are the members' user tags, shared by every peer on this
	// network: they are in one process (overlay.tagSets).
	tagSets tagSets
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{nodes: map[string]*memTransport{}, exchanges: map[string]*memExchange{}, nextPort: 1, PacketQueue: 512,
		group: map[string]int{}, rnd: rand.New(rand.NewPCG(1, 2))}
}

// Partition cuts the network: the named nodes of each group reach only
// each other; every node not named is in one more group. Heal undoes it.
func (n *MemNetwork) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = map[string]int{}
	for i, g := range groups {
		for _, name := range g {
			n.group[name] = i + 1
		}
	}
}

// Heal ends a partition.
func (n *MemNetwork) Heal() { n.Partition() }

// Stall makes every exchange with the named nodes wait d before their
// handler runs, while their packets (Serf's gossip and probes) flow as
// before: a host whose process is slow or hung but whose membership
// looks alive. The caller waits no longer than its context allows, as
// over TCP with a deadline; its request is then never handled. d = 0
// ends the stall of the named nodes.
func (n *MemNetwork) Stall(d time.Duration, names ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stalled == nil {
		n.stalled = map[string]time.Duration{}
	}
	for _, name := range names {
		if d > 0 {
			n.stalled[name] = d
		} else {
			delete(n.stalled, name)
		}
	}
}

// SetCallerDeadlines makes a caller return at its context's deadline
// while the handler it called runs on, its reply unread, as over TCP with
// a deadline (on), or wait for the handler however long it takes (off,
// the default). On, a handler slower than its caller's deadline is the
// silence it would be over sockets; off, a test on a busy machine sees a
// slow handler as slow, not silent, so that CPU starvation alone does not
// look like a peer that hangs.
func (n *MemNetwork) SetCallerDeadlines(on bool) { n.deadlines.Store(on) }

// Stalls is the number of exchanges that met a stall so far.
func (n *MemNetwork) Stalls() int64 { return n.stalls.Load() }

// SetLoss makes every packet and exchange lost with probability p.
func (n *MemNetwork) SetLoss(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.loss = p
}

// cut reports whether a message from one node to another is lost to a
// partition or to loss.
func (n *MemNetwork) cut(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.group[from] != n.group[to] || n.loss > 0 && n.rnd.Float64() < n.loss
}

// Dropped is the number of packets dropped so far.
func (n *MemNetwork) Dropped() int64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.dropped
}

// newTransport registers a memberlist transport with a fresh address
// (127.0.0.1 and a port unique in the network; no socket is opened).
func (n *MemNetwork) newTransport(name string, port int) (*memTransport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case port > 0:
		// A restart at its old address (Cluster.Restart).
		if n.nodes[(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}).String()] != nil {
			return nil, fmt.Errorf("overlay: in-memory address port %d is in use", port)
		}
	case n.nextPort > 65535:
		return nil, errors.New("overlay: in-memory network is full (65535 nodes)")
	default:
		port = n.nextPort
		n.nextPort++
	}
	t := &memTransport{
		name:     name,
		net:      n,
		addr:     &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port},
		packetCh: make(chan *memberlist.Packet, n.PacketQueue),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	n.nodes[t.addr.String()] = t
	return t, nil
}

func (n *MemNetwork) lookup(addr string) *memTransport {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.nodes[addr]
}

// memTransport is one node's memberlist.NodeAwareTransport on a MemNetwork.
type memTransport struct {
	name     string
	net      *MemNetwork
	addr     *net.UDPAddr
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.addr.IP, t.addr.Port, nil
}

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress never blocks: a full or missing destination drops the
// packet, as UDP does.
func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	dst := t.net.lookup(a.Addr)
	if dst == nil || t.net.cut(t.name, dst.name) {
		t.net.drop()
		return now, nil
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: t.addr, Timestamp: now}
	select {
	case <-dst.done:
		t.net.drop()
	case dst.packetCh <- p:
	default:
		t.net.drop()
	}
	return now, nil
}

func (n *MemNetwork) drop() {
	n.mu.Lock()
	n.dropped++
	n.mu.Unlock()
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout hands one end of a pipe to the destination, waiting at
// most timeout for it to accept.
func (t *memTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	dst := t.net.lookup(a.Addr)
	if dst == nil {
		return nil, fmt.Errorf("overlay: no node at %s", a.Addr)
	}
	if t.net.cut(t.name, dst.name) {
		time.Sleep(timeout)
		return nil, fmt.Errorf("overlay: dial %s: timeout", a.Addr)
	}
	mine, theirs := net.Pipe()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dst.streamCh <- &pipeConn{Conn: theirs, local: dst.addr, remote: t.addr}:
		return &pipeConn{Conn: mine, local: t.addr, remote: dst.addr}, nil
	case <-dst.done:
	case <-timer.C:
	}
	mine.Close()
	theirs.Close()
	return nil, fmt.Errorf("overlay: dial %s: timeout", a.Addr)
}

func (t *memTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown unregisters the node; packets and dials to it fail from then on.
func (t *memTransport) Shutdown() error {
	t.once.Do(func() {
		t.net.mu.Lock()
		delete(t.net.nodes, t.addr.String())
		t.net.mu.Unlock()
		close(t.done)
	})
	return nil
}

// pipeConn gives a net.Pipe end the addresses memberlist logs and checks.
type pipeConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.local }
func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }

// memExchange is an exchange endpoint on a MemNetwork: a call runs the
// destination's handler directly.
type memExchange struct {
	net     *MemNetwork
	addr    string
	name    string
	handler network.Handler
}

func (n *MemNetwork) newExchange(name string) *memExchange {
	n.mu.Lock()
	defer n.mu.Unlock()
	addr := "mem:" + strconv.Itoa(n.nextPort) + ":" + name
	return &memExchange{net: n, addr: addr, name: name}
}

func (e *memExchange) Addr() string { return e.addr }

func (e *memExchange) Serve(h network.Handler) error {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	e.handler = h
	e.net.exchanges[e.addr] = e
	return nil
}

func (e *memExchange) Call(ctx context.Context, _, addr string, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.net.mu.RLock()
	dst := e.net.exchanges[addr]
	var h network.Handler
	var stall time.Duration
	if dst != nil {
		h, stall = dst.handler, e.net.stalled[dst.name]
	}
	e.net.mu.RUnlock()
	if h == nil {
		return nil, fmt.Errorf("overlay: exchange with %s: %w", addr, network.ErrNoEndpoint)
	}
	if e.net.cut(e.name, dst.name) {
		<-ctx.Done() // lost: the caller times out
		return nil, fmt.Errorf("overlay: exchange with %s: %w", addr, ctx.Err())
	}
	if stall > 0 {
		e.net.stalls.Add(1)
		t := time.NewTimer(stall)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("overlay: exchange with %s, stalled: %w", addr, ctx.Err())
		case <-t.C:
		}
	}
	if !e.net.deadlines.Load() {
		return h(e.name, req)
	}
	// As over TCP with a deadline, the caller waits no longer than its
	// context allows for a handler that takes long (a gateway waiting on
	// a member of its pool); the handler runs on, its reply unread.
	type reply struct {
		b   []byte
		err error
	}
	done := make(chan reply, 1)
	go func() {
		b, err := h(e.name, req)
		done <- reply{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("overlay: exchange with %s: %w", addr, ctx.Err())
	}
}

func (e *memExchange) Close() error {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	delete(e.net.exchanges, e.addr)
	return nil
}
