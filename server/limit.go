package server

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
)

// Overload (docs/API.md, "Overload"): the API holds at most
// Config.MaxConns connections. One beyond is answered as soon as it is
// accepted, before its request is read, with a pre-written 429, a
// Retry-After and the JSON error, and closed; it costs the agent no
// http.Server connection (goroutine, buffers, request). A held connection
// whose request does not come within Config.HeaderTimeout is answered 408
// rather than closed in silence. Every 429 says when to come back: a
// pacer measures how fast the agent finishes what it admitted and gives
// each refused client the next free share of that rate.

// Refusals at the listener.
const (
	// refuseLinger is how long a refused connection is kept, its sending
	// side shut, to read and drop its request: closing a socket with
	// unread input, or before a late request arrives, sends a reset,
	// which may destroy the 429 before the client reads it. net/http
	// waits 500 ms for the same reason; a client starved of CPU in a
	// burst sends later than that. At most maxLingering linger at once,
	// a descriptor each (linger_*.go); beyond, a refused connection
	// is closed as soon as its answer is written.
	refuseLinger = 2 * time.Second
	maxLingering = 8192
	// maxRetryAfter bounds the Retry-After the agent gives, in seconds.
	maxRetryAfter = 60
	// pacerWindow is the pacer's measuring window: it counts what ended
	// in the last one to two windows.
	pacerWindow = time.Second
	// A measure needs pacerMinCount ends over pacerMinSpan at least (the
	// first few ends of a burst come slowly, while the agent accepts it);
	// until then a held thing is assumed to take guessService.
	pacerMinCount = 32
	pacerMinSpan  = 200 * time.Millisecond
	guessService  = 250 * time.Millisecond
)

// pacer says when a refused client should come back. It measures the rate
// at which the agent finishes what it admitted (connections, requests or
// statements ended a second, over the last one or two pacerWindows), and keeps
// a virtual queue of the clients it refused: each refusal joins it, the
// queue drains at the measured rate, and the client is told how long the
// queue ahead of it takes. The clients refused in one burst come back
// spread over the seconds the agent needs to serve them, not all at once;
// when the rate changes, the rest of the queue is timed anew. Until enough
// have ended to measure, it assumes guess a second. It is safe for
// concurrent use.
type pacer struct {
	now   func() time.Time
	guess float64

	mu        sync.Mutex
	cur, prev window
	queue     float64   // refused clients still ahead, as of last
	last      time.Time // when queue was drained last
}

// window counts what ended in it, from its first end.
type window struct {
	start, first time.Time
	count        int
}

// newPacer returns a pacer for up to held things at once (the limit that
// refuses), assumed to take guessService each until measured.
func newPacer(now func() time.Time, held int) *pacer {
	return &pacer{now: now, guess: float64(max(held, 1)) / guessService.Seconds(), cur: window{start: now()}}
}

// done counts one admitted thing ended.
func (p *pacer) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.roll(now)
	if p.cur.count == 0 {
		p.cur.first = now
	}
	p.cur.count++
}

// roll starts a new window once the current one is pacerWindow old.
func (p *pacer) roll(now time.Time) {
	age := now.Sub(p.cur.start)
	if age < pacerWindow {
		return
	}
	p.prev = window{}
	if age < 2*pacerWindow {
		p.prev = p.cur
	}
	p.cur = window{start: now}
}

// rate is what ends a second: measured from the first end of the last
// windows, else the guess.
func (p *pacer) rate(now time.Time) float64 {
	n, first := p.cur.count, p.cur.first
	if p.prev.count > 0 {
		n, first = n+p.prev.count, p.prev.first
	}
	span := now.Sub(first)
	if n < pacerMinCount || span < pacerMinSpan {
		return p.guess
	}
	return float64(n) / span.Seconds()
}

// retryAfter counts a refusal and returns the seconds its client should
// wait: 1 to maxRetryAfter.
func (p *pacer) retryAfter() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.roll(now)
	r := p.rate(now)
	p.queue = max(0, p.queue-r*now.Sub(p.last).Seconds()) + 1
	p.last = now
	p.queue = min(p.queue, r*maxRetryAfter)
	return min(max(int(math.Ceil(p.queue/r)), 1), maxRetryAfter)
}

// capListener holds at most max connections open and refuses the others
// at accept (see Overload above).
type capListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	pace    *pacer
	refused atomic.Int64
	// lingering keeps the refused connections to drop their request.
	lingering *lingerer
	// busy[n-1] is the whole answer of a refusal with Retry-After n.
	busy [maxRetryAfter][]byte
	// timedOut is the answer to a connection whose request did not come.
	timedOut []byte
}

func newCapListener(ln net.Listener, maxConns int, headerTimeout time.Duration) *capListener {
	l := &capListener{Listener: ln, max: int64(maxConns), pace: newPacer(time.Now, maxConns),
		lingering: newLingerer(maxLingering)}
	reason := fmt.Sprintf("the agent holds %d API connections at once", maxConns)
	for i := range l.busy {
		n := i + 1
		l.busy[i] = rawAnswer(http.StatusTooManyRequests, api.Busy(n, reason), "Retry-After: "+strconv.Itoa(n)+"\r\n")
	}
	l.timedOut = rawAnswer(http.StatusRequestTimeout, &api.Error{Code: api.CodeBadRequest,
		Message: fmt.Sprintf("no request within %v of connecting", headerTimeout)}, "")
	return l
}

// rawAnswer is a whole HTTP/1.1 answer with a JSON body that closes the
// connection.
func rawAnswer(status int, body *api.Error, header string) []byte {
	b, _ := answer.Marshal(body)
	b = append(b, '\n')
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), header, len(b), b)
}

// Accept returns the next connection within the cap, refusing those beyond.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &capConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refuse(c)
	}
}

// refuse answers c 429 at once, without reading its request, and closes
// it. The answer fits the empty send buffer of a new socket: the write
// does not wait. The deadline only guards the accept loop: it is checked
// before the write, so it must outlast a starved scheduler (at 100 ms,
// one connection in 10,000 was closed unanswered).
func (l *capListener) refuse(c net.Conn) {
	l.refused.Add(1)
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(l.busy[l.pace.retryAfter()-1]); err != nil {
		c.Close()
		return
	}
	// The client reads the answer, then the end of file.
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	l.lingering.add(c)
}

// capConn is a connection within the cap: closing it frees its place.
type capConn struct {
	net.Conn
	l      *capListener
	got    atomic.Bool // a byte came, or the 408 went: no 408 (again)
	closed atomic.Bool
}

// Read answers 408 when the first request does not come in time: the
// server closes the connection on a read timeout without a word.
func (c *capConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.got.Store(true)
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() && c.got.CompareAndSwap(false, true) {
		c.Conn.SetWriteDeadline(time.Now().Add(WriteTimeout))
		c.Conn.Write(c.l.timedOut)
	}
	return n, err
}

// CloseWrite shuts the sending side, as net/http does before it closes
// a connection whose request it did not read whole.
func (c *capConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *capConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
		c.l.pace.done()
	}
	return c.Conn.Close()
}

// busy answers 429 with the Retry-After n and the reason after "busy,
// retry after n s".
func busy(w http.ResponseWriter, n int, reason string) {
	w.Header().Set("Retry-After", strconv.Itoa(n))
	writeJSON(w, http.StatusTooManyRequests, api.Busy(n, reason))
}
