package overlay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"
	"github.com/peerq/peerq/node/network"
)

func keyring(t testing.TB, k string) *memberlist.Keyring {
	if k == "" {
		return nil
	}
	kr, err := memberlist.NewKeyring(nil, []byte(k))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// Exchanges over TCP: answered with the right key, refused with a wrong one
// or none; a frame altered in flight fails authentication; a replayed
// request is refused; connections are reused.
func TestTCPExchangeAuth(t *testing.T) {
	const key = "0123456789abcdef"
	srv, err := newTCPExchange("srv", "127.0.0.1:0", "", keyring(t, key), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Serve(func(from string, req []byte) ([]byte, error) { return append([]byte(from+":"), req...), nil })

	good, _ := newTCPExchange("good", "127.0.0.1:0", "", keyring(t, key), nil)
	defer good.Close()
	for i := 0; i < 3; i++ {
		resp, err := good.Call(ctxSecond(t), "srv", srv.Addr(), []byte("hi"))
		if err != nil || string(resp) != "good:hi" {
			t.Fatalf("right key: %q %v", resp, err)
		}
	}
	srv.mu.Lock()
	open := len(srv.conns)
	srv.mu.Unlock()
	if open != 1 {
		t.Errorf("3 exchanges used %d connections, want 1 (reused)", open)
	}
	for name, k := range map[string]string{"wrong key": "fedcba9876543210", "no key": ""} {
		bad, _ := newTCPExchange("bad", "127.0.0.1:0", "", keyring(t, k), nil)
		if _, err := bad.Call(ctxSecond(t), "srv", srv.Addr(), []byte("hi")); err == nil {
			t.Errorf("%s: answered", name)
		}
		bad.Close()
	}
	waitFor(t, func() bool { r, _, _, _ := srv.stats(); return r == 2 })

	// Tampering: flip a byte of the sealed body.
	var w frameBuf
	s := &sealer{keyring: keyring(t, key)}
	s.writeFrame(&w, kindRequest, "x", "srv", [nonceSize]byte{}, []byte("payload"), time.Now())
	w.b[len(w.b)-1] ^= 1
	if _, _, err := s.readFrame(bytes.NewReader(w.b), ""); !errors.Is(err, ErrAuth) {
		t.Errorf("tampered frame: %v", err)
	}

	// Replay: a captured request sent again is refused, however valid.
	var capture frameBuf
	s.writeFrame(&capture, kindRequest, "good", "srv", [nonceSize]byte{}, []byte("claim"), time.Now())
	for i, want := range []bool{true, false} {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write(capture.b)
		_, _, err = s.readFrame(c, "")
		c.Close()
		if (err == nil) != want {
			t.Errorf("sending %d: answered %v, want %v", i+1, err == nil, want)
		}
	}
	if _, replays, _, _ := srv.stats(); replays != 1 {
		t.Errorf("replays counted %d, want 1", replays)
	}
	// An old frame, even unseen, is refused.
	var old frameBuf
	s.writeFrame(&old, kindRequest, "good", "srv", [nonceSize]byte{}, []byte("x"), time.Now().Add(-2*network.ReplayWindow))
	if err := srv.guard.check(mustHeader(t, s, old.b), time.Now()); !errors.Is(err, ErrReplay) {
		t.Errorf("an old frame: %v", err)
	}
}

func mustHeader(t *testing.T, s *sealer, b []byte) header {
	h, _, err := s.readFrame(bytes.NewReader(b), "")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("condition not met in 5 s")
		}
	}
}

// A host without the key cannot make a keyed peer allocate: each
// connection may announce at most a 1 KiB header, which fails
// authentication before any body is read; beyond MaxConnsPerHost,
// connections are refused.
func TestFloodAllocatesNothing(t *testing.T) {
	srv, err := newTCPExchange("srv", "127.0.0.1:0", "", keyring(t, "0123456789abcdef"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Serve(func(string, []byte) ([]byte, error) { return nil, nil })
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Idle connections: MaxConnsPerHost are held (each costs a goroutine
	// and a few bytes), the rest refused at once.
	for i := 0; i < MaxConnsPerHost+20; i++ {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitFor(t, func() bool { _, _, refused, _ := srv.stats(); return refused == 20 })
	srv.mu.Lock()
	held := len(srv.conns)
	srv.mu.Unlock()
	if held != MaxConnsPerHost {
		t.Errorf("%d connections held, want %d", held, MaxConnsPerHost)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitFor(t, func() bool { srv.mu.Lock(); defer srv.mu.Unlock(); return len(srv.conns) == 0 })
	// Connections that announce the largest frame: refused at the header.
	for i := 0; i < 50; i++ {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write([]byte{0xff, 0xff, frameVersion})
	}
	waitFor(t, func() bool { rejected, _, _, _ := srv.stats(); return rejected == 50 })
}

const sha256Size = 32

type frameBuf struct{ b []byte }

func (f *frameBuf) Write(p []byte) (int, error) { f.b = append(f.b, p...); return len(p), nil }

// FuzzDecodeFrame: whatever arrives, a peer reading a frame never panics,
// never allocates more than the authenticated header allows, and what it
// accepts unkeyed re-encodes to the same fields.
func FuzzDecodeFrame(f *testing.F) {
	s := &sealer{keyring: keyring(f, "0123456789abcdef")}
	var w frameBuf
	s.writeFrame(&w, kindRequest, "x", "srv", [nonceSize]byte{}, []byte("body"), time.Now())
	f.Add(w.b, true)
	var p frameBuf
	(&sealer{}).writeFrame(&p, kindResponse, "y", "srv", [nonceSize]byte{1}, []byte("b"), time.Now())
	f.Add(p.b, false)
	f.Fuzz(func(t *testing.T, b []byte, keyed bool) {
		sl := &sealer{}
		if keyed {
			sl = s
		}
		h, body, err := sl.readFrame(bytes.NewReader(b), "")
		if err != nil {
			return
		}
		if len(body) != h.blen || h.kind < kindRequest || h.kind > kindSkew || h.kind == kindSkew && h.blen != 0 || len(h.sender) > maxNameBytes {
			t.Fatalf("accepted %+v with a body of %d", h, len(body))
		}
	})
}

func ctxSecond(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCoordinateCodec(t *testing.T) {
	c := coordinate.NewCoordinate(coordinate.DefaultConfig())
	c.Vec[0], c.Height, c.Error = 0.01, 0.002, 0.5
	got, ok := decodeCoordinate(encodeCoordinate(c))
	if !ok || got.Vec[0] != 0.01 || got.Height != 0.002 || len(got.Vec) != len(c.Vec) {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	nan := encodeCoordinate(c)
	copy(nan[1:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f}) // Error = NaN
	for name, b := range map[string][]byte{"empty": nil, "short": nan[:9], "count": append([]byte{200}, nan[1:]...), "nan": nan} {
		if _, ok := decodeCoordinate(b); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeCoordinate: a coordinate from another peer never panics the
// decoder, and what it accepts is valid and re-encodes to the same bytes.
func FuzzDecodeCoordinate(f *testing.F) {
	f.Add(encodeCoordinate(coordinate.NewCoordinate(coordinate.DefaultConfig())))
	f.Add([]byte{4})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ok := decodeCoordinate(b)
		if !ok {
			return
		}
		if !c.IsValid() || string(encodeCoordinate(c)) != string(b) {
			t.Fatalf("accepted %x: %+v", b, c)
		}
		c.DistanceTo(c)
	})
}

// A rotation, step by step: an agent at step 2 (sealing with the new key,
// opening the old) talks with agents at steps 1 (sealing with the old,
// opening the new) and 3 (the new key alone); one that skipped step 1
// (the old key alone) cannot read its answers; one with another key is
// refused.
func TestKeyRotation(t *testing.T) {
	const oldKey, newKey = "0123456789abcdef", "fedcba9876543210"
	ring := func(primary string, others ...string) *memberlist.Keyring {
		keys := [][]byte{[]byte(primary)}
		for _, o := range others {
			keys = append(keys, []byte(o))
		}
		kr, err := memberlist.NewKeyring(keys, []byte(primary))
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	srv, err := newTCPExchange("srv", "127.0.0.1:0", "", ring(newKey, oldKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Serve(func(from string, req []byte) ([]byte, error) { return req, nil })
	for _, c := range []struct {
		name string
		kr   *memberlist.Keyring
		ok   bool
	}{
		{"step 1", ring(oldKey, newKey), true},
		{"step 3", ring(newKey), true},
		{"the old key alone", ring(oldKey), false},
		{"another key", ring("0000000000000000"), false},
	} {
		cl, _ := newTCPExchange("c", "127.0.0.1:0", "", c.kr, nil)
		_, err := cl.Call(ctxSecond(t), "srv", srv.Addr(), []byte("x"))
		cl.Close()
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// BenchmarkReplayRefused: how long a keyed peer takes to refuse a replayed
// request, from the frame's arrival to the connection's close (loopback).
//
//	go test ./overlay -run '^$' -bench ReplayRefused -count 5
func BenchmarkReplayRefused(b *testing.B) {
	srv, err := newTCPExchange("srv", "127.0.0.1:0", "", keyring(b, "0123456789abcdef"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	srv.Serve(func(from string, req []byte) ([]byte, error) { return req, nil })
	s := &sealer{keyring: keyring(b, "0123456789abcdef")}
	var capture frameBuf
	s.writeFrame(&capture, kindRequest, "good", "srv", [nonceSize]byte{}, []byte("claim"), time.Now())
	// Seen once, legitimately.
	c, _ := net.Dial("tcp", srv.Addr())
	c.Write(capture.b)
	s.readFrame(c, "")
	c.Close()
	var one [1]byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c.Write(capture.b)
		if _, err := c.Read(one[:]); err == nil {
			b.Fatal("the replay was answered")
		}
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
}

// Without a key, a frame's sender must be the member at the address the
// connection comes from.
func TestUnkeyedSenderChecked(t *testing.T) {
	srv, err := newTCPExchange("srv", "127.0.0.1:0", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	members := map[string]string{"member": "127.0.0.1"}
	srv.verify = func(from string, remote net.Addr) bool {
		host, _, _ := net.SplitHostPort(remote.String())
		return members[from] == host
	}
	srv.Serve(func(from string, req []byte) ([]byte, error) { return req, nil })
	for name, ok := range map[string]bool{"member": true, "stranger": false} {
		cl, _ := newTCPExchange(name, "127.0.0.1:0", "", nil, nil)
		_, err := cl.Call(ctxSecond(t), "srv", srv.Addr(), []byte("claim"))
		cl.Close()
		if (err == nil) != ok {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Agents on one host that set only their gossip address do not clash:
// each exchange listens one port above its gossip port.
func TestExchangePortDefault(t *testing.T) {
	var ovs []*Overlay
	for i := 0; i < 2; i++ {
		cfg := DefaultConfig(fmt.Sprint("host-agent-", i))
		cfg.BindAddr = fmt.Sprintf("127.0.0.1:%d", freeUDPTCPPort(t))
		cfg.Memberlist = TunedConfig(2)
		o, err := New(cfg)
		if err != nil {
			t.Fatalf("agent %d: %v", i, err)
		}
		defer o.Shutdown()
		ovs = append(ovs, o)
		_, gport, _ := net.SplitHostPort(cfg.BindAddr)
		_, xport, _ := net.SplitHostPort(o.ex.Addr())
		if gp, _ := strconv.Atoi(gport); strconv.Itoa(gp+1) != xport {
			t.Errorf("gossip %s, exchange %s: want port + 1", cfg.BindAddr, o.ex.Addr())
		}
	}
}

// freeUDPTCPPort returns a port whose next one is free too, for TCP.
func freeUDPTCPPort(t *testing.T) int {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1)); err == nil {
			l2.Close()
			return p
		}
	}
}
