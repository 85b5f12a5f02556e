//go:build unix

package server

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// lingerer keeps refused connections until their client has closed, or
// refuseLinger has passed, reading and dropping what they send, with one
// goroutine for them all: every lingerTick it reads, without waiting,
// what has arrived on each (a connection costs its descriptor and a few
// words, not a goroutine). It is safe for concurrent use.
type lingerer struct {
	max int
	buf []byte // add's; the sweeper has its own

	mu      sync.Mutex
	conns   []lingering
	running bool
}

type lingering struct {
	c     net.Conn
	rc    syscall.RawConn
	until time.Time
}

// lingerTick is how often the lingering connections are read.
const lingerTick = 50 * time.Millisecond

func newLingerer(max int) *lingerer { return &lingerer{max: max, buf: make([]byte, 4096)} }

// add takes a refused connection whose sending side is shut; it closes it
// at once if its client has already closed, or if max linger already. Only
// the accept loop calls it (it reads into g.buf).
func (g *lingerer) add(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		c.Close()
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil || drain(rc, g.buf) {
		c.Close()
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.conns) >= g.max {
		c.Close()
		return
	}
	g.conns = append(g.conns, lingering{c: c, rc: rc, until: time.Now().Add(refuseLinger)})
	if !g.running {
		g.running = true
		go g.sweep()
	}
}

// sweep reads the lingering connections every lingerTick and closes those
// whose client closed or whose time is up, until none is left.
func (g *lingerer) sweep() {
	buf := make([]byte, 4096)
	t := time.NewTicker(lingerTick)
	defer t.Stop()
	for now := range t.C {
		g.mu.Lock()
		list := g.conns
		g.conns = nil
		g.mu.Unlock()
		keep := list[:0]
		for _, l := range list {
			if drain(l.rc, buf) || now.After(l.until) {
				l.c.Close()
				continue
			}
			keep = append(keep, l)
		}
		clear(list[len(keep):])
		g.mu.Lock()
		g.conns = append(keep, g.conns...)
		if len(g.conns) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
	}
}

// drain reads and drops what has arrived on a connection, without
// waiting; it says whether the client has closed (or the connection
// failed).
func drain(rc syscall.RawConn, buf []byte) (done bool) {
	err := rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.Read(int(fd), buf)
			switch {
			case n > 0:
				continue
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
			default: // end of file, or an error
				done = true
			}
			return true
		}
	})
	return done || err != nil
}
