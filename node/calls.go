package node

import (
	"context"
	"fmt"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/subcloud"
)

// leaseCalls sends this peer's lease-kind requests, one batch entry each,
// and returns the replies: an owner's (claims, renewals, releases, member
// checks: signed), a name's client's (registrations, who owns), a member's
// ask about its lease and an account's request (as they are). It is the
// client side of the exchange that handleLease serves.
//
// It is the leaseCaller of the lease keeper and the name keepers, and the
// owner's (ownerEnv). It holds no lock and no state that changes: every
// field is set once by New, so its methods are safe for concurrent use;
// the functions it is given (bootOf, self) must be too. A request to this
// peer itself goes to self, without an exchange.
var _ leaseCaller = (*leaseCalls)(nil)

type leaseCalls struct {
	name string        // this peer's
	id   *identity.Key // signs the requests made as owner
	net  interface {
		Exchange(ctx context.Context, peer string, req []byte) ([]byte, error)
	}
	timeout time.Duration    // one exchange's bound (Config.ExchangeTimeout)
	now     func() time.Time // the time an owner's request is signed at (Request.At: its receipt's)
	// bootOf is a live member's incarnation as the membership shows it (0:
	// unknown).
	bootOf func(peer string) uint64
	// self answers a request from this peer to itself (it may be a member
	// of its own subcloud, and is a keeper of some names).
	self func(from string, msg []byte) []byte
	// across, in a cloud of pools, relays a request to a member of
	// another pool (pool/name) and returns its reply, signed by it
	// (relay.go); nil in a cloud of one pool.
	across interface {
		relayLease(ctx context.Context, to string, msg []byte) ([]byte, error)
		vouchName(ctx context.Context, q string)
		remoteKey(q string) (identity.Public, uint64, bool)
		poolName() string
	}
}

// callLease sends one request of this peer's, as owner, to peer to: signed,
// for to's present incarnation as the membership shows it. A peer that
// restarted since the membership said so answers with its new
// incarnation: the request is signed anew for it, once.
func (c *leaseCalls) callLease(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error) {
	req.Owner, req.Target, req.Boot, req.At = c.name, to, c.bootOf(to), c.now().UnixNano()
	if _, name, remote := remoteName(to); remote && c.across != nil {
		// A member of another pool: this owner is pool/name to it, and it
		// is name in its pool; its incarnation as its key's vouch shows it.
		c.across.vouchName(ctx, to)
		_, req.Boot, _ = c.across.remoteKey(to)
		req.Owner, req.Target = qualify(c.across.poolName(), c.name), name
	}
	for try := 0; ; try++ {
		req.Sign(c.id)
		rep, err := c.callRaw(ctx, to, req)
		if err != nil || rep.Refusal != subcloud.RefusedIncarnation || rep.Boot == 0 || rep.Boot == req.Boot || try > 0 {
			return rep, err
		}
		req.Boot = rep.Boot
	}
}

// callRaw sends one lease request as it is and returns the peer's reply.
func (c *leaseCalls) callRaw(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error) {
	if to == c.name {
		return subcloud.DecodeReply(c.self(to, req.Encode())) // no exchange
	}
	if _, _, remote := remoteName(to); remote {
		if c.across == nil {
			return subcloud.Reply{}, fmt.Errorf("node: %s is a member of another pool, and this peer's cloud is one pool", to)
		}
		ctx, cancel := context.WithTimeout(ctx, 2*c.timeout) // a vouch, then the relay
		defer cancel()
		msg, err := c.across.relayLease(ctx, to, req.Encode())
		if err != nil {
			return subcloud.Reply{}, err
		}
		return subcloud.DecodeReply(msg)
	}
	msg, err := c.entry(ctx, to, req)
	if err != nil {
		return subcloud.Reply{}, err
	}
	return subcloud.DecodeReply(msg)
}

// entry sends one lease-kind request to peer to, within the exchange's
// timeout, and returns the message of its one answer.
func (c *leaseCalls) entry(ctx context.Context, to string, req subcloud.Request) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.net.Exchange(ctx, to, encodeBatch(batch{Entries: []entry{{Kind: protoLease, Msg: req.Encode()}}}))
	if err != nil {
		return nil, err
	}
	b, err := decodeBatch(resp)
	if err != nil {
		return nil, err
	}
	if len(b.Entries) != 1 || b.Entries[0].Kind != protoLease {
		return nil, fmt.Errorf("node: %s answered a %v request with %d entries", to, req.Op, len(b.Entries))
	}
	return b.Entries[0].Msg, nil
}
