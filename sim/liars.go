package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
	"github.com/peerq/peerq/topk"
)

// Lie is what a lying peer does (Config.Liars). A liar's own record and
// protocol are honest; its lies are written into the messages it sends.
type Lie int

// The lies modelled so far (issue 23 lists more: inflate, extreme, flow,
// selfrank, drop — not built).
const (
	// LieForge writes, in every top-k message, an entry for each other
	// node it carries, made from a better record for that node
	// (reliability 1, within the catalog's bounds), unsigned.
	LieForge Lie = iota + 1
	// LieAlter does the same under the node's own signature, copied
	// from the entry it replaces.
	LieAlter
)

// ParseLie reads a lie's name: forge or alter.
func ParseLie(name string) (Lie, error) {
	switch name {
	case "forge":
		return LieForge, nil
	case "alter":
		return LieAlter, nil
	}
	return 0, fmt.Errorf("sim: --lie is forge or alter, not %q", name)
}

func (l Lie) String() string {
	switch l {
	case LieForge:
		return "forge"
	case LieAlter:
		return "alter"
	}
	return "none"
}

// liar says whether peer i lies: a share Liars of the peers, drawn from
// the seed by peer (never the asker, peer 0), so that joiners draw too.
func (s *Sim) liar(i int32) bool {
	if s.cfg.Liars <= 0 || i == 0 {
		return false
	}
	x := s.cfg.Seed ^ uint64(i)*0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/(1<<53) < s.cfg.Liars
}

// simSeal is the simulator's model of the peers' signatures (the runtime
// signs with each peer's ed25519 key: node/seal.go): a MAC under a key
// of the simulation's that only the honest peers' code uses — a liar's
// code never calls Sign for another node, as it could not make another's
// ed25519 signature. Checking one is a hash, not a curve operation.
type simSeal struct{ key [32]byte }

func (m simSeal) mac(node string, msg []byte) []byte {
	h := sha256.New()
	h.Write(m.key[:])
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write(msg)
	return h.Sum(nil)[:16]
}

func (m simSeal) Sign(node string, msg []byte) []byte { return m.mac(node, msg) }

func (m simSeal) Verify(node string, msg, sig []byte) error {
	if !bytes.Equal(sig, m.mac(node, msg)) {
		return fmt.Errorf("%w: %s", run.ErrForged, node)
	}
	return nil
}

// newSeal is the signatures' model for a simulation with liars (none
// without: the honest runs cost what they did).
func newSeal(cfg Config) run.Sealer {
	if cfg.Liars <= 0 {
		return nil
	}
	var m simSeal
	binary.LittleEndian.PutUint64(m.key[:], cfg.Seed)
	copy(m.key[8:], "peerq sim seal")
	return m
}

// lie rewrites a top-k message liar from sends, as its Lie says, and
// reports whether it changed anything.
func (s *Sim) lie(from int32, e topk.Envelope) (topk.Envelope, bool) {
	m := *e.Msg
	self := query.SyntheticName(int(from))
	es := make([]*topk.Entry, 0, len(m.Entries))
	lied := false
	for _, x := range m.Entries {
		i, ok := peerIndex(x.Node)
		if x.Node == self || !ok || i >= s.n {
			es = append(es, x)
			continue
		}
		better := maps.Clone(s.record(i))
		better["reliability"] = query.Num(query.KindRatio, 1)
		forged := run.Entry(s.plan, better)
		if forged == nil || bytes.Equal(forged.Key, x.Key) && bytes.Equal(forged.Row, x.Row) {
			es = append(es, x)
			continue
		}
		if s.cfg.Lie == LieAlter {
			forged.Proof = x.Proof
		}
		es = append(es, forged)
		lied = true
	}
	if !lied {
		return e, false
	}
	topk.Sort(es)
	m.Entries = es
	e.Msg = &m
	return e, true
}

// peerIndex reads a simulated peer's index from its name.
func peerIndex(name string) (int, bool) {
	i, err := strconv.Atoi(strings.TrimPrefix(name, "peer-"))
	return i, err == nil && strings.HasPrefix(name, "peer-") && i >= 0
}

// forgedAccepted counts the entries in the asker's list that are not
// what their node says: written by a liar for another node.
func (s *Sim) forgedAccepted() int {
	k := 0
	for _, e := range s.origin.TopK().Top() {
		i, ok := peerIndex(e.Node)
		if !ok || i >= s.n {
			k++
			continue
		}
		if honest := run.Entry(s.plan, s.record(i)); honest == nil || !bytes.Equal(honest.Key, e.Key) || !bytes.Equal(honest.Row, e.Row) {
			k++
		}
	}
	return k
}
