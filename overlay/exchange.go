package overlay

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerq/peerq/internal/wire"
)

// Handler answers an exchange request from the named peer. It runs on the
// transport's goroutines and must be safe for concurrent use. req is the
// handler's to keep: no transport reuses it.
type Handler func(from string, req []byte) ([]byte, error)

// exchanger is a request/response transport between peers.
type exchanger interface {
	// Addr is the address to advertise in the exchange tag.
	Addr() string
	Serve(h Handler) error
	// Call sends req to the endpoint at addr and returns its response,
	// giving up when ctx ends.
	Call(ctx context.Context, addr string, req []byte) ([]byte, error)
	Close() error
}

var (
	_ exchanger = (*memExchange)(nil)
	_ exchanger = (*tcpExchange)(nil)
)

// MaxFrameBytes bounds an exchange request or response.
const MaxFrameBytes = 8 << 20

// frameVersion is the first byte of every TCP exchange frame.
const frameVersion = 1

// ErrAuth is returned, and counted, when a frame's authenticator does not
// match the cluster key.
var ErrAuth = errors.New("overlay: exchange frame failed authentication")

// errFrame wraps why a frame that passed authentication is refused.
var errFrame = errors.New("overlay: malformed exchange frame")

// maxNameBytes bounds the sender name in a frame.
const maxNameBytes = 512

// tcpExchange serves and calls exchanges over TCP. A frame is a 4-byte
// big-endian length, then: version, sender name (uvarint length + bytes),
// body, and, when the cluster has a key, an HMAC-SHA256 of everything
// before it under that key, so that a peer without the key can neither
// inject nor alter protocol messages.
type tcpExchange struct {
	name     string
	key      []byte
	ln       net.Listener
	addr     string
	mu       sync.Mutex
	handler  Handler
	wg       sync.WaitGroup
	closing  sync.Once
	closed   atomic.Bool
	rejected int64
}

// newTCPExchange listens on bind and advertises the listener's port on
// host (the listener's own host when host is empty).
func newTCPExchange(name, bind, host string, key []byte) (*tcpExchange, error) {
	if len(name) > maxNameBytes {
		return nil, fmt.Errorf("overlay: node name of %d bytes, more than %d", len(name), maxNameBytes)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("overlay: exchange listener: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	if host == "" {
		host = addr.IP.String()
	}
	return &tcpExchange{name: name, key: key, ln: ln, addr: net.JoinHostPort(host, strconv.Itoa(addr.Port))}, nil
}

func (t *tcpExchange) Addr() string { return t.addr }

func (t *tcpExchange) Serve(h Handler) error {
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
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.serveConn(c)
		}()
	}
}

// serveConn answers one request per connection.
func (t *tcpExchange) serveConn(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	from, body, err := t.readFrame(bufio.NewReader(c))
	if err != nil {
		t.mu.Lock()
		t.rejected++
		t.mu.Unlock()
		return
	}
	t.mu.Lock()
	h := t.handler
	t.mu.Unlock()
	resp, err := h(from, body)
	if err != nil {
		return // the caller sees the connection close: an error
	}
	t.writeFrame(c, resp)
}

func (t *tcpExchange) Call(ctx context.Context, addr string, req []byte) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("overlay: exchange with %s: %w", addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := t.writeFrame(c, req); err != nil {
		return nil, fmt.Errorf("overlay: exchange with %s: %w", addr, err)
	}
	_, body, err := t.readFrame(bufio.NewReader(c))
	if err != nil {
		return nil, fmt.Errorf("overlay: exchange with %s: %w", addr, err)
	}
	return body, nil
}

func (t *tcpExchange) writeFrame(w io.Writer, body []byte) error {
	f := make([]byte, 4, 4+1+binary.MaxVarintLen64+len(t.name)+len(body)+sha256.Size)
	f = append(f, frameVersion)
	f = binary.AppendUvarint(f, uint64(len(t.name)))
	f = append(f, t.name...)
	f = append(f, body...)
	if t.key != nil {
		m := hmac.New(sha256.New, t.key)
		m.Write(f[4:])
		f = m.Sum(f)
	}
	if len(f)-4 > MaxFrameBytes {
		return fmt.Errorf("overlay: frame of %d bytes is over the limit", len(f)-4)
	}
	binary.BigEndian.PutUint32(f, uint32(len(f)-4))
	_, err := w.Write(f)
	return err
}

func (t *tcpExchange) readFrame(r io.Reader) (from string, body []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameBytes || n < 2 {
		return "", nil, fmt.Errorf("overlay: frame of %d bytes", n)
	}
	f := make([]byte, n)
	if _, err := io.ReadFull(r, f); err != nil {
		return "", nil, err
	}
	return decodeFrame(f, t.key)
}

// decodeFrame checks and splits a frame (without its length prefix).
func decodeFrame(f, key []byte) (from string, body []byte, err error) {
	if key != nil {
		if len(f) < sha256.Size {
			return "", nil, ErrAuth
		}
		m := hmac.New(sha256.New, key)
		m.Write(f[:len(f)-sha256.Size])
		if !hmac.Equal(m.Sum(nil), f[len(f)-sha256.Size:]) {
			return "", nil, ErrAuth
		}
		f = f[:len(f)-sha256.Size]
	}
	d := wire.NewReader(f, errFrame)
	if d.Byte() != frameVersion {
		d.Fail("bad version")
	}
	from = string(d.Next(d.Count(maxNameBytes)))
	body = d.Rest()
	return from, body, d.Err()
}

func (t *tcpExchange) Close() error {
	var err error
	t.closing.Do(func() {
		t.closed.Store(true)
		err = t.ln.Close()
		t.wg.Wait()
	})
	return err
}
