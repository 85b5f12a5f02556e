package identity

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"filippo.io/edwards25519"
	"github.com/peerq/peerq/internal/durable"
)

// Domains separate what a signature is for: a signature made for one
// never verifies as another.
const (
	DomainLease = "peerq lease request v2" // claims, renewals, releases, checks; names
	DomainOwner = "peerq owner answer v1"  // an owner's answer about a lease it holds
	pairInfo    = "peerq exchange v3"
)

// PublicSize is the size of a public key.
const PublicSize = ed25519.PublicKeySize

// SignatureSize is the size of a signature.
const SignatureSize = ed25519.SignatureSize

// Public is a peer's public key. The zero value is no key.
type Public [PublicSize]byte

// Bytes is the key as a byte slice (a message field).
func (p Public) Bytes() []byte { return append([]byte(nil), p[:]...) }

// IsZero reports whether p is no key.
func (p Public) IsZero() bool { return p == Public{} }

// String is the key as it travels in the membership: unpadded base64url,
// 43 characters.
func (p Public) String() string { return base64.RawURLEncoding.EncodeToString(p[:]) }

// Short is the key's first characters, for logs and SHOW MEMBERS.
func (p Public) Short() string { return p.String()[:8] }

// ParsePublic reads a key written by String.
func ParsePublic(s string) (Public, error) {
	var p Public
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != PublicSize {
		return p, fmt.Errorf("identity: not a public key: %q", s)
	}
	copy(p[:], b)
	if p.String() != s {
		// One spelling per key: the decoder skips new lines.
		return Public{}, fmt.Errorf("identity: not a public key: %q", s)
	}
	return p, nil
}

// MarshalText writes the key as String does (JSON files).
func (p Public) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a key written by MarshalText.
func (p *Public) UnmarshalText(b []byte) error {
	k, err := ParsePublic(string(b))
	if err != nil {
		return err
	}
	*p = k
	return nil
}

// PublicOf reads a key from bytes (a message field); nil or a wrong size
// is an error.
func PublicOf(b []byte) (Public, error) {
	var p Public
	if len(b) != PublicSize {
		return p, fmt.Errorf("identity: a public key of %d bytes", len(b))
	}
	copy(p[:], b)
	return p, nil
}

// Key is a peer's private key and its incarnation. It is safe for
// concurrent use.
type Key struct {
	priv ed25519.PrivateKey
	pub  Public
	boot uint64
	x    *ecdh.PrivateKey
}

// New makes a key from 32 bytes of r, with an incarnation from r too.
// Embedded clusters and tests use it with a seeded source; agents use Open.
func New(r io.Reader) (*Key, error) {
	var seed [ed25519.SeedSize]byte
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	k, err := fromSeed(seed[:])
	if err != nil {
		return nil, err
	}
	if k.boot, err = newBoot(r); err != nil {
		return nil, err
	}
	return k, nil
}

func fromSeed(seed []byte) (*Key, error) {
	priv := ed25519.NewKeyFromSeed(seed)
	k := &Key{priv: priv}
	copy(k.pub[:], priv.Public().(ed25519.PublicKey))
	// The X25519 private key is the ed25519 scalar (RFC 8032 §5.1.5: the
	// first half of SHA-512 of the seed); X25519 clamps it.
	h := sha512.Sum512(seed)
	x, err := ecdh.X25519().NewPrivateKey(h[:32])
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	k.x = x
	return k, nil
}

// newBoot draws an incarnation: random, never 0, so that a claim made for
// one life of a peer is refused by every later one without the peer
// having to remember anything (a counter on disk would need a durable
// write at every start, and a peer whose disk fails must still not accept
// its previous life's claims).
func newBoot(r io.Reader) (uint64, error) {
	var b [8]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, fmt.Errorf("identity: %w", err)
		}
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v, nil
		}
	}
}

// File is the key's file in the data dir.
const File = "identity.json"

type keyFile struct {
	Version int    `json:"version"`
	Seed    []byte `json:"seed"`
}

// ErrEphemeral says that Open could not store a new key: the key it
// returned lasts as long as the process.
var ErrEphemeral = errors.New("identity: the key could not be stored: it lasts until this process ends")

// Open loads the peer's key from dir, or makes one and stores it durably
// (0600). The incarnation is new at every Open. note says what the log
// should (a restored previous copy). A key file that exists but cannot be
// read is an error: making a new key would silently become another peer.
// A new key that cannot be stored (a read-only or full disk) is returned
// with an error wrapping ErrEphemeral and the cause.
func Open(fs durable.FS, dir string, r io.Reader) (*Key, string, error) {
	path := filepath.Join(dir, File)
	var seed []byte
	note, found, err := durable.Read(fs, path, func(b []byte) error {
		var f keyFile
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return err
		}
		if f.Version != 1 || len(f.Seed) != ed25519.SeedSize {
			return fmt.Errorf("version %d with a seed of %d bytes", f.Version, len(f.Seed))
		}
		seed = f.Seed
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("identity: %w", err)
	}
	if found {
		k, err := fromSeed(seed)
		if err != nil {
			return nil, "", err
		}
		if k.boot, err = newBoot(r); err != nil {
			return nil, "", err
		}
		return k, note, nil
	}
	var fresh [ed25519.SeedSize]byte
	if _, err := io.ReadFull(r, fresh[:]); err != nil {
		return nil, "", fmt.Errorf("identity: %w", err)
	}
	k, err := fromSeed(fresh[:])
	if err != nil {
		return nil, "", err
	}
	if k.boot, err = newBoot(r); err != nil {
		return nil, "", err
	}
	b, err := json.Marshal(keyFile{Version: 1, Seed: fresh[:]})
	if err != nil {
		return nil, "", fmt.Errorf("identity: %w", err)
	}
	if err := durable.Write(fs, path, b); err != nil {
		return k, note, fmt.Errorf("%w: %w", ErrEphemeral, err)
	}
	return k, note, nil
}

// Reborn is the same key in a new incarnation: the peer restarted.
func (k *Key) Reborn(r io.Reader) (*Key, error) {
	boot, err := newBoot(r)
	if err != nil {
		return nil, err
	}
	c := *k
	c.boot = boot
	return &c, nil
}

// Public is the peer's public key.
func (k *Key) Public() Public { return k.pub }

// Boot is the peer's incarnation: new at every start.
func (k *Key) Boot() uint64 { return k.boot }

// Sign signs msg for domain.
func (k *Key) Sign(domain string, msg []byte) []byte {
	return ed25519.Sign(k.priv, signed(domain, msg))
}

// Verify reports whether sig is pub's signature of msg for domain.
func Verify(pub Public, domain string, msg, sig []byte) bool {
	if pub.IsZero() || len(sig) != SignatureSize {
		return false
	}
	return ed25519.Verify(pub[:], signed(domain, msg), sig)
}

func signed(domain string, msg []byte) []byte {
	out := make([]byte, 0, len(domain)+1+len(msg))
	out = append(out, domain...)
	out = append(out, 0)
	return append(out, msg...)
}

// Pair is the key this peer and the peer with public key peer share:
// HKDF-SHA256 over their X25519 shared secret (the ed25519 keys in their
// Montgomery form), salted with both public keys in order, so that each
// computes the same key and nobody else can. It fails for a key that is
// not a point of the curve, or of small order.
func (k *Key) Pair(peer Public) ([32]byte, error) {
	var out [32]byte
	p, err := new(edwards25519.Point).SetBytes(peer[:])
	if err != nil {
		return out, fmt.Errorf("identity: peer key: %w", err)
	}
	xpub, err := ecdh.X25519().NewPublicKey(p.BytesMontgomery())
	if err != nil {
		return out, fmt.Errorf("identity: peer key: %w", err)
	}
	shared, err := k.x.ECDH(xpub)
	if err != nil {
		return out, fmt.Errorf("identity: peer key: %w", err)
	}
	a, b := k.pub[:], peer[:]
	if bytes.Compare(a, b) > 0 {
		a, b = b, a
	}
	salt := append(append([]byte{}, a...), b...)
	key, err := hkdf.Key(sha256.New, shared, salt, pairInfo, 32)
	if err != nil {
		return out, fmt.Errorf("identity: %w", err)
	}
	copy(out[:], key)
	return out, nil
}
