package overlay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/peerq/peerq/node/network"
)

// exchanger is a request/response transport between peers.
type exchanger interface {
	// Addr is the address to advertise in the exchange tag.
	Addr() string
	Serve(h network.Handler) error
	// Call sends req to peer's endpoint at addr and returns its
	// response, giving up when ctx ends.
	Call(ctx context.Context, peer, addr string, req []byte) ([]byte, error)
	Close() error
}

var (
	_ exchanger = (*memExchange)(nil)
	_ exchanger = (*tcpExchange)(nil)
)

// Limits of the TCP exchange transport: the connections a peer accepts,
// and how long it waits for them.
const (
	// MaxConns bounds the exchange connections a peer holds open from
	// others; MaxConnsPerHost those from one address (several agents may
	// share a host: 200 on one loopback address hold ~200 connections to
	// each other, pooled). A connection that has not authenticated costs
	// a goroutine and at most a 1 KiB header.
	MaxConns        = 2048
	MaxConnsPerHost = 512
	// IdleTimeout closes an incoming connection that brings no frame.
	IdleTimeout = 30 * time.Second
	// poolIdle is how long a caller keeps an idle connection for reuse
	// (below IdleTimeout, so the other side has not closed it);
	// DefaultPool how many per peer.
	poolIdle    = 20 * time.Second
	DefaultPool = 4
	// maxPooled bounds the idle connections kept in all: a peer gossips
	// with random peers, so reuse pays mostly for the few it talks to
	// often (retries, replies to requests), and every kept connection is
	// a file descriptor at both ends (200 peers in one process, each
	// keeping 4 to each of the others, ran out of descriptors).
	maxPooled = 32
)

// tcpExchange serves and calls exchanges over persistent TCP connections,
// one frame each way per exchange (frame.go), sealed with the cluster key
// when there is one. Connections are reused from a small pool per peer, so
// an exchange costs no handshake.
type tcpExchange struct {
	name   string
	sealer *sealer
	guard  replayGuard
	// logf, if set, is told of what an operator should know: requests
	// refused for the time on them (at most one line a minute a peer).
	logf func(format string, args ...any)
	// clock is the time written on frames and checked against the replay
	// window: time.Now, or a skewed clock in tests.
	clock func() time.Time
	ln    net.Listener
	addr  string
	// verify, when set (no key), checks that a frame's sender is the
	// member whose exchange address the connection comes from.
	verify func(from string, remote net.Addr) bool
	// poolSize is how many idle connections per peer are kept for reuse;
	// 0 dials one per exchange (the benchmark's baseline).
	poolSize int

	mu       sync.Mutex
	handler  network.Handler
	conns    map[net.Conn]bool
	perHost  map[string]int
	pool     map[string][]pooled
	pooled   int
	wg       sync.WaitGroup
	closing  sync.Once
	closed   atomic.Bool
	rejected atomic.Int64 // frames that failed authentication or checks
	replays  atomic.Int64
	refused  atomic.Int64 // connections over the caps
	skewed   atomic.Int64 // requests refused for their time (clock skew), both ways
	clocks   clockBook
}

type pooled struct {
	c    net.Conn
	idle time.Time
}

// newTCPExchange listens on bind and advertises the listener's port on
// host (the listener's own host when host is empty). A nil keyring sends
// frames in clear.
func newTCPExchange(name, bind, host string, keyring *memberlist.Keyring, ids *pairing) (*tcpExchange, error) {
	if len(name) > maxNameBytes {
		return nil, fmt.Errorf("overlay: node name of %d bytes, more than %d", len(name), maxNameBytes)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().(*net.TCPAddr)
	if host == "" {
		host = addr.IP.String()
	}
	return &tcpExchange{name: name, sealer: &sealer{keyring: keyring, ids: ids}, ln: ln, addr: net.JoinHostPort(host, strconv.Itoa(addr.Port)),
		clock: time.Now, conns: map[net.Conn]bool{}, perHost: map[string]int{}, pool: map[string][]pooled{}, poolSize: DefaultPool}, nil
}

func (t *tcpExchange) Addr() string { return t.addr }

func (t *tcpExchange) Serve(h network.Handler) error {
	t.mu.Lock()
	first := t.handler == nil
	t.handler = h
	t.mu.Unlock()
	if first {
		t.wg.Add(1)
		go t.accept()
	}
	return nil
}

func (t *tcpExchange) accept() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.closed.Load() {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. too many open files
			continue
		}
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		t.mu.Lock()
		if len(t.conns) >= MaxConns || t.perHost[host] >= MaxConnsPerHost {
			t.mu.Unlock()
			t.refused.Add(1)
			c.Close()
			continue
		}
		t.conns[c] = true
		t.perHost[host]++
		t.mu.Unlock()
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.serveConn(c)
			t.mu.Lock()
			delete(t.conns, c)
			if t.perHost[host]--; t.perHost[host] <= 0 {
				delete(t.perHost, host)
			}
			t.mu.Unlock()
		}()
	}
}

// serveConn answers the requests of one connection, one at a time, until
// it closes, idles out, or sends a frame that fails a check.
func (t *tcpExchange) serveConn(c net.Conn) {
	defer c.Close()
	for !t.closed.Load() {
		c.SetReadDeadline(time.Now().Add(IdleTimeout))
		h, body, err := t.sealer.readFrame(c, "")
		if err != nil {
			if errors.Is(err, ErrAuth) || errors.Is(err, errFrame) {
				t.rejected.Add(1)
			}
			return
		}
		if h.kind != kindRequest {
			t.rejected.Add(1)
			return
		}
		if t.sealer.keyring != nil || t.sealer.ids != nil {
			now := t.clock()
			if err := t.guard.check(h, now); errors.Is(err, errOutOfTime) {
				// An authentic request from a peer whose clock is off:
				// say so, with this clock, rather than go silent (which
				// the peer would take for a dead network).
				t.skewed.Add(1)
				off := time.Duration(h.at-now.UnixMilli()) * time.Millisecond
				t.clocks.note(h.sender, off, now)
				if t.clocks.shouldLog(h.sender, now) && t.logf != nil {
					t.logf("refused an exchange from %s: its clock is %s from this one's, beyond the %v replay window (run NTP on both machines)",
						h.sender, network.FormatOffset(off), network.ReplayWindow)
				}
				c.SetWriteDeadline(time.Now().Add(IdleTimeout))
				if _, err := t.sealer.writeFrame(c, kindSkew, t.name, h.sender, h.nonce, nil, now); err != nil {
					return
				}
				continue
			} else if err != nil {
				t.replays.Add(1)
				return
			}
		} else if t.verify != nil && !t.verify(h.sender, c.RemoteAddr()) {
			t.rejected.Add(1)
			return
		}
		t.mu.Lock()
		handler := t.handler
		t.mu.Unlock()
		resp, err := handler(h.sender, body)
		if err != nil {
			return // the caller sees the connection close: an error
		}
		c.SetWriteDeadline(time.Now().Add(IdleTimeout))
		if _, err := t.sealer.writeFrame(c, kindResponse, t.name, h.sender, h.nonce, resp, t.clock()); err != nil {
			return
		}
	}
}

// conn takes an idle pooled connection to addr, or dials one.
func (t *tcpExchange) conn(ctx context.Context, addr string) (net.Conn, bool, error) {
	t.mu.Lock()
	for ps := t.pool[addr]; len(ps) > 0; ps = t.pool[addr] {
		p := ps[len(ps)-1]
		t.pool[addr] = ps[:len(ps)-1]
		t.pooled--
		if time.Since(p.idle) < poolIdle {
			t.mu.Unlock()
			return p.c, true, nil
		}
		p.c.Close()
	}
	t.mu.Unlock()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	return c, false, err
}

// put returns a connection to the pool.
func (t *tcpExchange) put(addr string, c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() || len(t.pool[addr]) >= t.poolSize {
		c.Close()
		return
	}
	if t.pooled >= maxPooled {
		t.evictOldest()
	}
	t.pool[addr] = append(t.pool[addr], pooled{c, time.Now()})
	t.pooled++
}

// evictOldest closes the pooled connection idle the longest. Called with
// t.mu held.
func (t *tcpExchange) evictOldest() {
	var oldest string
	var at time.Time
	for addr, ps := range t.pool {
		if len(ps) > 0 && (oldest == "" || ps[0].idle.Before(at)) {
			oldest, at = addr, ps[0].idle
		}
	}
	if oldest == "" {
		return
	}
	ps := t.pool[oldest]
	ps[0].c.Close()
	if t.pool[oldest] = ps[1:]; len(ps) == 1 {
		delete(t.pool, oldest)
	}
	t.pooled--
}

func (t *tcpExchange) Call(ctx context.Context, peer, addr string, req []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := t.conn(ctx, addr)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("overlay: exchange with %s: %w (%w)", addr, network.ErrNoEndpoint, err)
		}
		if err != nil {
			return nil, fmt.Errorf("overlay: exchange with %s: %w", addr, err)
		}
		resp, got, err := t.call(ctx, c, peer, req)
		if err == nil {
			t.put(addr, c)
			return resp, nil
		}
		c.Close()
		// A pooled connection the other side had closed fails before a
		// byte of answer: it never served the request, so try once anew.
		if reused && !got && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return nil, fmt.Errorf("overlay: exchange with %s: %w", addr, err)
	}
}

// call runs one exchange with peer on c; got says whether any of the
// answer came.
func (t *tcpExchange) call(ctx context.Context, c net.Conn, peer string, req []byte) ([]byte, bool, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	sent := t.clock()
	nonce, err := t.sealer.writeFrame(c, kindRequest, t.name, peer, [nonceSize]byte{}, req, sent)
	if err != nil {
		return nil, false, err
	}
	r := &countingReader{r: c}
	h, body, err := t.sealer.readFrame(r, peer)
	if err != nil {
		return nil, r.n > 0, err
	}
	if h.re != nonce || h.kind == kindRequest {
		return nil, true, fmt.Errorf("%w: an answer to another request", ErrAuth)
	}
	// The peer's clock minus this one's, taken at the middle of the
	// exchange (the answer's time is the peer's when it answered).
	now := t.clock()
	off := time.Duration(h.at-sent.UnixMilli()-now.Sub(sent).Milliseconds()/2) * time.Millisecond
	t.clocks.note(peer, off, now)
	if h.kind == kindSkew {
		t.skewed.Add(1)
		if t.clocks.shouldLog(peer, now) && t.logf != nil {
			t.logf("%s refused an exchange: its clock is %s from this one's, beyond the %v replay window (run NTP on both machines)",
				peer, network.FormatOffset(off), network.ReplayWindow)
		}
		return nil, true, &network.SkewError{Peer: peer, Offset: off}
	}
	return body, true, nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// stats are the transport's refusals: frames rejected, replays,
// connections over the caps, and requests refused for their time either
// way (clock skew).
func (t *tcpExchange) stats() (rejected, replays, refused, skewed int64) {
	return t.rejected.Load(), t.replays.Load(), t.refused.Load(), t.skewed.Load()
}

func (t *tcpExchange) Close() error {
	var err error
	t.closing.Do(func() {
		t.closed.Store(true)
		err = t.ln.Close()
		t.mu.Lock()
		for c := range t.conns {
			c.Close()
		}
		for _, ps := range t.pool {
			for _, p := range ps {
				p.c.Close()
			}
		}
		t.pool = map[string][]pooled{}
		t.mu.Unlock()
		t.wg.Wait()
	})
	return err
}
