package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/node/owner"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// The owner's side of subclouds is the owner role (node/owner), one
// subcloud.Owner per subcloud it owns. This file is the environment it
// runs in (ownerEnv: exchanges, searches, names, the data dir, the clock
// and the log) and the owner's table as the peer reads it at start. The
// statements that drive the role (RESERVE, RELEASE, ALTER) are answered
// beside the other statements (local.go); a member's ask about its lease,
// both sides, is the peer's side of leases (lease.go).

// ownerEnv is the peer as the owner role sees it (owner.Env). It holds no
// lock and no state that changes: its fields are set once by New, and
// each method is safe for concurrent use as what it calls is (the lease
// calls, the node's statements, the names' keepers, the durable write). The role calls it outside its own lock; Store runs on the role's
// one writer goroutine and holds no lock of the peer's across the fsync.
type ownerEnv struct {
	calls leaseCaller // the owner's signed lease requests
	peer  ownerPeer   // searches
	names ownerNames  // the names' keepers
	// fs and dir are the peer's data dir, which holds the owner's table
	// (dir "" keeps it in memory only); stored tells the lease keeper how
	// a write went, so that a data dir that cannot be written shows as the
	// storage fault.
	fs     durable.FS
	dir    string
	stored func(error) error
	now    func() time.Time
	logf   func(format string, args ...any)
	// contact, if set, is told how each request to a member went (nil
	// for an answer; not a refused connection: that is ErrUnreachable
	// already), and says whether the peer's own probes have found it
	// silent for long, and for how long (runtime.leaseContact).
	contact func(peer string, err error) (time.Duration, bool)
}

// ownerPeer is what the owner's environment asks of the rest of the peer
// (the node has it): a search, run as a statement of this peer's in one
// of its places. It must be safe for concurrent use; it blocks for as long
// as the gossip takes, and takes no lock of the role's.
type ownerPeer interface {
	search(ctx context.Context, plan *query.Plan, progress func(answer.Progress)) (*answer.Answer, []string, error)
}

// ownerNames is the names' keepers as the owner's environment asks them
// (nameKeepers, names.go): safe for concurrent use, each call as long as
// the keepers' exchanges take.
type ownerNames interface {
	register(ctx context.Context, name string, lease time.Duration) nameVote
	release(name string, keepers []string)
	keepersOf(name string) []string
}

var _ owner.Env = ownerEnv{}

// Send is one lease request. A member whose address refuses the
// connection is unreachable (subcloud.ErrUnreachable: the owner's checks
// lose it); so is one that the peer's own probes have found silent, and
// kept finding silent, for HintTTL, with no answer to any request since:
// a member that hangs — its process stopped, its port cut — while Serf,
// whose probes it still answers, lists it, was kept until its lease
// lapsed unrenewed (40–60 minutes of a 1-hour lease,
// TestSubcloudReplacesAHungMember), and a job counted a member that did
// nothing. A request that merely times out counts for nothing: it sets
// the probes going (prober.failedWith), and a check lost to the network
// is no loss; an answer clears what they noted.
func (e ownerEnv) Send(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error) {
	rep, err := e.calls.callLease(ctx, to, req)
	switch {
	case errors.Is(err, network.ErrNoEndpoint):
		err = fmt.Errorf("%w: %w", subcloud.ErrUnreachable, err)
	case ctx.Err() == nil && e.contact != nil:
		if d, ok := e.contact(to, err); ok {
			err = fmt.Errorf("%w: this peer's probes have found it silent for %v: %w", subcloud.ErrUnreachable, d.Round(time.Second), err)
		}
	}
	return rep, err
}

// Search is a repair's or a RESIZE's search: the subcloud's plan, in one
// of the peer's places for statements (gossip takes one).
func (e ownerEnv) Search(ctx context.Context, raw []byte) ([]string, error) {
	if raw == nil {
		return nil, errors.New("the subcloud was restored from a table without its search")
	}
	plan, err := query.Decode(raw)
	if err != nil {
		return nil, err
	}
	_, names, err := e.peer.search(ctx, plan, nil)
	if err != nil {
		return nil, err
	}
	return names, nil
}

func (e ownerEnv) RegisterName(ctx context.Context, name string, lease time.Duration) subcloud.Vote {
	v := e.names.register(ctx, name, lease)
	return subcloud.Vote{Keepers: v.keepers, Granted: v.granted, Rival: v.rival, Rivals: v.rivals}
}

func (e ownerEnv) ReleaseName(ctx context.Context, name string, peers []string) {
	e.names.release(name, mergeNames(peers, e.names.keepersOf(name)))
}

func (e ownerEnv) Store(b []byte) error {
	if e.dir == "" {
		return nil
	}
	return e.stored(durable.Write(e.fs, filepath.Join(e.dir, ownedFile), b))
}

func (e ownerEnv) Now() time.Time                  { return e.now() }
func (e ownerEnv) Logf(format string, args ...any) { e.logf(format, args...) }

// openOwned reads the owner's table from dataDir ("" for none), in either
// of its forms, so that a restarted owner renews and can release what it
// owned.
func openOwned(fsys durable.FS, dataDir string) ([]subcloud.OwnerState, string, error) {
	if dataDir == "" {
		return nil, "", nil
	}
	var states []subcloud.OwnerState
	note, _, err := durable.Read(fsys, filepath.Join(dataDir, ownedFile), func(b []byte) error {
		got, err := owner.DecodeTable(b)
		if err == nil {
			states = got
		}
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("node: owned subclouds: %w (the subclouds this peer owned are no longer renewed and lapse at their expiry)", err)
	}
	return states, note, nil
}
