package overlay

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/peerq/peerq/internal/wire"
	"github.com/peerq/peerq/node/network"
)

// Exchange frames. Each request and each response is one frame:
//
//	hlen(2, big-endian) header(hlen) body(blen [+16])
//
// The header is small (at most maxHeaderBytes) and is read, and — with a
// key — authenticated, before anything else is allocated:
//
//	version(1) nonce(12) sealed(fields) [AES-GCM tag, 16 bytes]
//	fields: kind(1) flags(1) unix-ms(8) blen(uvarint) sender(len uvarint, bytes) re(12, responses)
//
// The header is sealed with the cluster's key: the primary key of Serf's
// keyring seals, every key of it opens, so `serf keys` rotation covers the
// exchanges too. The body is sealed with the key that the sender and the
// receiver alone share (identity.Key.Pair: X25519 of their identity keys,
// the ones their membership shows), with the header's nonce with its last
// bit flipped and the whole header as additional data (flagPair): the
// sender of every frame is checked, not only its membership of the
// cluster, and a body cannot be moved to another frame. Without
// identities (tests of the transport alone) the body is sealed with the
// cluster key; without a key either, header fields and body travel in
// clear (trusted networks only).
//
// Replay: a request's time must be within network.ReplayWindow of the
// receiver's clock and its nonce unseen within that window; a response
// names the nonce of the request it answers (re) and is accepted only for
// it. A request refused for its time gets a skew frame (kindSkew, sealed
// like a response, no body) carrying the receiver's time, so that the
// sender learns that its clock, not the network, is at fault.
const (
	frameVersion   = 3
	maxHeaderBytes = 1024
	nonceSize      = 12
	tagSize        = 16
	// maxSeen bounds the nonces remembered against replays.
	maxSeen      = 1 << 19
	kindRequest  = 1
	kindResponse = 2
	kindSkew     = 3 // a request refused for its time: the receiver's clock
	flagPair     = 1 // the body is sealed with the pair's key
)

// MaxFrameBytes bounds an exchange request or response body.
const MaxFrameBytes = 8 << 20

// ErrAuth is returned, and counted, when a frame fails authentication.
var ErrAuth = errors.New("overlay: exchange frame failed authentication")

// ErrReplay is returned, and counted, for a frame seen before or too old.
var ErrReplay = errors.New("overlay: exchange frame replayed or out of time")

// errFrame wraps why an authenticated frame is refused.
var errFrame = errors.New("overlay: malformed exchange frame")

// maxNameBytes bounds the sender name in a frame.
const maxNameBytes = 512

// header is a frame's authenticated header.
type header struct {
	kind   byte
	flags  byte
	at     int64 // unix milliseconds
	blen   int
	sender string
	nonce  [nonceSize]byte
	re     [nonceSize]byte // responses: the request's nonce
}

// sealer seals and opens frames with the cluster keyring and the peers'
// identities, or passes them in clear without either.
type sealer struct {
	keyring *memberlist.Keyring // nil: no key
	ids     *pairing            // nil: no identities
	mu      sync.Mutex
	aeads   map[string]cipher.AEAD
}

func (s *sealer) aead(key []byte) (cipher.AEAD, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.aeads[string(key)]; ok {
		return a, nil
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if s.aeads == nil {
		s.aeads = map[string]cipher.AEAD{}
	}
	s.aeads[string(key)] = a
	return a, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func bodyNonce(n [nonceSize]byte) []byte {
	n[nonceSize-1] ^= 1
	return n[:]
}

// writeFrame writes one frame of kind with body to peer (whose identity
// seals the body); re is the request's nonce for a response or a skew
// frame. It returns the frame's nonce.
func (s *sealer) writeFrame(w io.Writer, kind byte, sender, peer string, re [nonceSize]byte, body []byte, now time.Time) ([nonceSize]byte, error) {
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nonce, err
	}
	if len(body) > MaxFrameBytes {
		return nonce, fmt.Errorf("overlay: frame of %d bytes is over the limit", len(body))
	}
	var bodyAEAD cipher.AEAD
	var flags byte
	if s.ids != nil {
		a, err := s.ids.aead(peer)
		if err != nil {
			return nonce, err
		}
		bodyAEAD, flags = a, flagPair
	}
	fields := []byte{kind, flags}
	fields = binary.BigEndian.AppendUint64(fields, uint64(now.UnixMilli()))
	fields = binary.AppendUvarint(fields, uint64(len(body)))
	fields = binary.AppendUvarint(fields, uint64(len(sender)))
	fields = append(fields, sender...)
	if kind != kindRequest {
		fields = append(fields, re[:]...)
	}
	hdr := append([]byte{frameVersion}, nonce[:]...)
	out := make([]byte, 2, 2+len(hdr)+len(fields)+tagSize+len(body)+tagSize)
	if s.keyring != nil {
		a, err := s.aead(s.keyring.GetPrimaryKey())
		if err != nil {
			return nonce, err
		}
		hdr = a.Seal(hdr, nonce[:], fields, hdr[:1])
		if bodyAEAD == nil {
			bodyAEAD = a
		}
	} else {
		hdr = append(hdr, fields...)
	}
	if len(hdr) > maxHeaderBytes {
		return nonce, fmt.Errorf("overlay: frame header of %d bytes", len(hdr))
	}
	out = append(out, hdr...)
	binary.BigEndian.PutUint16(out, uint16(len(hdr)))
	if bodyAEAD != nil {
		out = bodyAEAD.Seal(out, bodyNonce(nonce), body, hdr)
	} else {
		out = append(out, body...)
	}
	_, err := w.Write(out)
	return nonce, err
}

// readFrame reads one frame. The header is read into at most
// maxHeaderBytes and authenticated before the body is allocated. peer is
// the peer a response must come from ("" for a request: any member, by its
// identity).
func (s *sealer) readFrame(r io.Reader, peer string) (header, []byte, error) {
	var h header
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return h, nil, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n < 1+nonceSize || n > maxHeaderBytes {
		return h, nil, fmt.Errorf("%w: header of %d bytes", ErrAuth, n)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return h, nil, err
	}
	if raw[0] != frameVersion {
		return h, nil, fmt.Errorf("%w: version %d", ErrAuth, raw[0])
	}
	copy(h.nonce[:], raw[1:1+nonceSize])
	fields, key, err := s.open(raw[1+nonceSize:], h.nonce[:], raw[:1])
	if err != nil {
		return h, nil, err
	}
	d := wire.NewReader(fields, errFrame)
	h.kind = d.Byte()
	h.flags = d.Byte()
	h.at = int64(d.Uint64Big())
	blen := d.Uvarint()
	h.sender = string(d.Next(d.Count(maxNameBytes)))
	if h.kind != kindRequest {
		copy(h.re[:], d.Next(nonceSize))
	}
	if err := d.Done(); err != nil || h.kind < kindRequest || h.kind > kindSkew || h.flags&^flagPair != 0 || blen > MaxFrameBytes ||
		h.kind == kindSkew && blen != 0 {
		return h, nil, fmt.Errorf("%w: header", errFrame)
	}
	h.blen = int(blen)
	// Who sealed the body: the pair's key (the sender's identity), else
	// the cluster's key, else nobody.
	var bodyAEAD cipher.AEAD
	switch {
	case (h.flags&flagPair != 0) != (s.ids != nil):
		return h, nil, fmt.Errorf("%w: identities on one side only", ErrAuth)
	case peer != "" && h.sender != peer:
		return h, nil, fmt.Errorf("%w: an answer from %q, not %q", ErrAuth, h.sender, peer)
	case s.ids != nil:
		if bodyAEAD, err = s.ids.aead(h.sender); err != nil {
			return h, nil, fmt.Errorf("%w: %w", ErrAuth, err)
		}
	case key != nil:
		bodyAEAD, _ = s.aead(key)
	}
	// The header is authentic: now the body may be read.
	size := h.blen
	if bodyAEAD != nil {
		size += tagSize
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return h, nil, err
	}
	if bodyAEAD != nil {
		if body, err = bodyAEAD.Open(body[:0], bodyNonce(h.nonce), body, raw); err != nil {
			return h, nil, ErrAuth
		}
	}
	return h, body, nil
}

// open authenticates a header's sealed fields with each key of the
// keyring, and returns the key that opened it.
func (s *sealer) open(sealed, nonce, ad []byte) ([]byte, []byte, error) {
	if s.keyring == nil {
		return sealed, nil, nil
	}
	for _, k := range s.keyring.GetKeys() {
		a, err := s.aead(k)
		if err != nil {
			continue
		}
		if out, err := a.Open(nil, nonce, sealed, ad); err == nil {
			return out, k, nil
		}
	}
	return nil, nil, ErrAuth
}

// replayGuard remembers the nonces of requests seen within
// network.ReplayWindow.
type replayGuard struct {
	mu   sync.Mutex
	seen map[[nonceSize]byte]int64 // nonce → unix ms
	last int64                     // last prune
}

// errOutOfTime is a request whose time is beyond network.ReplayWindow from
// the receiver's clock: the sender gets a skew frame, not silence.
var errOutOfTime = fmt.Errorf("%w: out of the replay window", ErrReplay)

// check accepts a request's header once, within the window.
func (g *replayGuard) check(h header, now time.Time) error {
	t := now.UnixMilli()
	if d := t - h.at; d > network.ReplayWindow.Milliseconds() || -d > network.ReplayWindow.Milliseconds() {
		return fmt.Errorf("%w: %d ms from this clock", errOutOfTime, t-h.at)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[[nonceSize]byte]int64{}
	}
	if _, dup := g.seen[h.nonce]; dup {
		return ErrReplay
	}
	if t-g.last > 1000 || len(g.seen) >= maxSeen {
		for n, at := range g.seen {
			if t-at > network.ReplayWindow.Milliseconds() {
				delete(g.seen, n)
			}
		}
		g.last = t
		if len(g.seen) >= maxSeen {
			return fmt.Errorf("%w: too many requests in the window", ErrReplay)
		}
	}
	g.seen[h.nonce] = h.at
	return nil
}
