//go:build !unix

package server

import (
	"net"
	"time"
)

// lingerer keeps refused connections until their client has closed, or
// refuseLinger has passed, reading and dropping what they send: a
// goroutine each (the Unix version has one for them all), at most max.
type lingerer struct{ slots chan struct{} }

func newLingerer(max int) *lingerer { return &lingerer{slots: make(chan struct{}, max)} }

// add takes a refused connection whose sending side is shut; it closes it
// at once if max linger already.
func (g *lingerer) add(c net.Conn) {
	select {
	case g.slots <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-g.slots }()
		c.SetReadDeadline(time.Now().Add(refuseLinger))
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		c.Close()
	}()
}
