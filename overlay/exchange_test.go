package overlay

import (
	"context"
	"errors"
	"github.com/hashicorp/serf/coordinate"
	"testing"
	"time"
)

// Exchanges over TCP: answered with the right key, refused with a wrong one
// or none, and a frame altered in flight fails authentication.
func TestTCPExchangeAuth(t *testing.T) {
	key := []byte("0123456789abcdef")
	srv, err := newTCPExchange("srv", "127.0.0.1:0", "", key)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Serve(func(from string, req []byte) ([]byte, error) { return append([]byte(from+":"), req...), nil })

	good, _ := newTCPExchange("good", "127.0.0.1:0", "", key)
	defer good.Close()
	resp, err := good.Call(ctxSecond(t), srv.Addr(), []byte("hi"))
	if err != nil || string(resp) != "good:hi" {
		t.Fatalf("right key: %q %v", resp, err)
	}
	for name, k := range map[string][]byte{"wrong key": []byte("fedcba9876543210"), "no key": nil} {
		bad, _ := newTCPExchange("bad", "127.0.0.1:0", "", k)
		if _, err := bad.Call(ctxSecond(t), srv.Addr(), []byte("hi")); err == nil {
			t.Errorf("%s: answered", name)
		}
		bad.Close()
	}
	srv.mu.Lock()
	rejected := srv.rejected
	srv.mu.Unlock()
	if rejected != 2 {
		t.Errorf("rejected %d frames, want 2", rejected)
	}
	// Tampering: flip a byte of the body.
	var w frameBuf
	good.writeFrame(&w, []byte("payload"))
	f := w.b[4:]
	f[len(f)-sha256Size-1] ^= 1
	if _, _, err := decodeFrame(f, key); !errors.Is(err, ErrAuth) {
		t.Errorf("tampered frame: %v", err)
	}
}

const sha256Size = 32

type frameBuf struct{ b []byte }

func (f *frameBuf) Write(p []byte) (int, error) { f.b = append(f.b, p...); return len(p), nil }

func FuzzDecodeFrame(f *testing.F) {
	var w frameBuf
	(&tcpExchange{name: "x", key: []byte("0123456789abcdef")}).writeFrame(&w, []byte("body"))
	f.Add(w.b[4:], true)
	f.Add([]byte{1, 1, 'x', 'b'}, false)
	f.Fuzz(func(t *testing.T, b []byte, keyed bool) {
		var key []byte
		if keyed {
			key = []byte("0123456789abcdef")
		}
		from, body, err := decodeFrame(b, key)
		if err != nil {
			return
		}
		// A frame that decodes has one encoding: writing it again gives b.
		var w frameBuf
		if err := (&tcpExchange{name: from, key: key}).writeFrame(&w, body); err != nil || string(w.b[4:]) != string(b) {
			t.Fatalf("re-encoding differs (err %v)", err)
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
