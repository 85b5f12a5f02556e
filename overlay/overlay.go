package overlay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/node/network"
)

// Tags peerq sets on its own members. A member without TagProtocol is not a
// peerq peer (a plain `serf agent` in the same cluster) and is ignored.
const (
	TagProtocol = "peerq"    // protocol version
	TagExchange = "peerq_x"  // the exchange transport's address
	TagIdentity = "peerq_id" // the peer's public key (identity.Public.String), '.', its incarnation in hex
	protocolVer = "3"
	tagPrefix   = "peerq"
)

// Config configures one peer's overlay.
type Config struct {
	// Name is the node name, unique in the cluster.
	Name string
	// Tags are the peer's static tags (region, zone, ...); the overlay adds
	// its own. Serf limits all tags together to 512 bytes encoded.
	Tags map[string]string

	// Mem, if set, puts the peer on an in-memory network (embedded
	// cluster); BindAddr, AdvertiseAddr and ExchangeAddr are then unused.
	Mem *MemNetwork
	// MemPort is the in-memory address's port: 0 takes the next free one;
	// a restarted peer takes its old one (Cluster.Restart), so that the
	// others know it again.
	MemPort int
	// BindAddr is the gossip address, host:port (port 0: any free port).
	BindAddr string
	// AdvertiseAddr is the gossip address others reach; empty: BindAddr.
	AdvertiseAddr string
	// ExchangeAddr is the exchange listener's host:port (port 0: any);
	// empty takes BindAddr's host and its port + 1.
	ExchangeAddr string

	// Key, if set (16, 24 or 32 bytes), encrypts gossip with Serf's keyring
	// (AES-GCM), and seals every exchange frame with the same keyring
	// (AES-GCM, replays refused: frame.go).
	Key []byte
	// OldKeys are further keys that open (never seal) gossip and frames:
	// a rolling key rotation installs the new key beside the old, then
	// makes it primary, then drops the old one (docs/SECURITY.md).
	OldKeys [][]byte
	// SnapshotPath, if set, lets a restarted peer rejoin those it knew.
	SnapshotPath string
	// Memberlist tunes memberlist; nil takes TunedConfig(ClusterSize) for
	// an embedded cluster and memberlist's DefaultLANConfig for real peers.
	Memberlist *memberlist.Config
	// ClusterSize is the expected number of peers, for TunedConfig.
	ClusterSize int
	// LogOutput receives Serf's and memberlist's logs; nil discards them
	// (Serf logs every gossip message at DEBUG; one shared logger was a
	// bottleneck with hundreds of peers in one process).
	LogOutput io.Writer
	// ExchangeTimeout bounds one exchange.
	ExchangeTimeout time.Duration
	// ExchangePool is how many idle exchange connections per peer are kept
	// for reuse; 0 takes DefaultPool, -1 dials one per exchange.
	ExchangePool int
	// Identity is the peer's key: its public half and incarnation are
	// shown in its tags (TagIdentity), and on sockets every
	// exchange is sealed with the key the two peers share, so that its
	// sender is checked. nil: no identity (tests of the overlay alone).
	Identity *identity.Key
	// Logf, if set, is told what an operator should know: a member whose
	// identity changed while it was alive (refused), an exchange refused
	// for clock skew.
	Logf func(format string, args ...any)
	// Clock is the time written on exchange frames and checked against
	// the replay window; nil is time.Now (tests skew it).
	Clock func() time.Time
	// Admit, if set, keeps out a peerq member whose tags it refuses
	// (Serf's merge delegate, admitMerge): news of one alive is ignored,
	// and a join or state exchange whose peerq members it refuses all
	// fails; a peer whose own tags it refuses is not started. A pool's Serf and the cloud
	// pool share the cluster key; without it, a cloud seed that is in
	// fact an agent's pool address made the two one cluster.
	Admit func(tags map[string]string) error
}

// admitMerge is Serf's merge delegate for Config.Admit: members without
// TagProtocol (plain Serf agents) are left to the rest of the overlay.
// Serf calls it with a whole remote state (a join, a push-pull) and with
// each member as news of it alive arrives (memberlist's alive delegate,
// which also sees every member a state merged): a state is refused only
// when none of its peerq members is admitted — another cluster altogether,
// the misjoined seed — so that one stray member an older peer lists does
// not fail every join and push-pull with it; the stray member is then
// refused alone, as news of it.
type admitMerge func(tags map[string]string) error

func (a admitMerge) NotifyMerge(ms []*serf.Member) error {
	var refused error
	for _, m := range ms {
		if m.Tags[TagProtocol] == "" {
			continue
		}
		err := a(m.Tags)
		if err == nil {
			if len(ms) > 1 {
				return nil // a state that holds a member of ours
			}
			continue
		}
		if refused == nil {
			refused = fmt.Errorf("overlay: member %s "+refusedMark+": %w", m.Name, err)
		}
	}
	return refused
}

// refusedMark is in admitMerge's error. memberlist passes it on as text
// (%v), one line a seed, so that Join finds it by counting.
const refusedMark = "refused by this peer's admission"

// refusedAll says every seed of a join failed because this peer refused
// the state it sent (admitMerge: another pool's or layout's, or another
// cluster's): a retry cannot change that, and it held the join's error
// for its whole deadline (10 s at an agent's --join).
func refusedAll(err error, seeds int) bool {
	return err != nil && seeds > 0 && strings.Count(err.Error(), refusedMark) >= seeds
}

// Refused says err, a Join's, is that of a seed whose state this peer
// refused (admitMerge): another pool's, layout's or cluster's, which the
// error names — not an address that did not answer.
func Refused(err error) bool { return err != nil && strings.Contains(err.Error(), refusedMark) }

// DefaultConfig returns a configuration for a real peer named name.
func DefaultConfig(name string) Config {
	return Config{Name: name, BindAddr: "0.0.0.0:7946", ExchangeTimeout: 2 * time.Second}
}

// TunedConfig is memberlist's configuration for n peers in one process
// (docs/SERF-NOTES.md): the local profile, with compression off (28% of CPU),
// 16 KiB packets (compound messages count their parts in a byte), more
// retransmits, and no TCP fallback pings. Up to 250 peers, probes stay at
// one a second with a suspicion of 4·log10(N+1) probe intervals, so that a
// peer that dies is declared failed in ~7 s at N=200 (with 3 s probes it
// took ~28 s at N=30). Beyond, probing every peer every second costs more
// CPU than two cores have next to the joins' state exchanges: probes slow
// to every 3 s, gossip to every 200 ms, and failures take ~30 s to be
// declared. Past 500 (1,000 peers in 4 pools of 250), probes slow to every
// 5 s with 3 s to answer, gossip to every 300 ms with 3 retransmits per
// log10(N+1): with the 3 s profile the joins kept both cores busy, probes
// timed out, and the suspicions and their refutations kept them busy (a
// third of the CPU in memberlist's handling of alive and suspect
// messages) for minutes after the last join: settled in 174–218 s, pools
// seen at half their size; with these, 26–41 s, and the process idles at
// a quarter of a core. A failure is then declared in a pool of 250 at
// least 6·log10(250)·5 s ≈ 72 s after it was suspected, once others
// confirm the suspicion, and up to 6 times that (432 s) without
// (memberlist's suspicion timeout; computed, not measured).
//
// Past 1,000 (2,000 peers in 8 pools of 250) the same storm came back: a
// CPU profile of the first 170 s put 13.5% in memberlist's handling of
// suspect messages and 21% in that of alive messages, the pools had not
// settled in 100 s (nor in 7 minutes in earlier runs), 5.9 GB resident.
// Probes now go every 10 s with 8 s to answer, suspicions last 4 probe
// intervals per log10(N), gossip goes every 500 ms, and the same cloud
// joins in ~38 s and settles in 48–58 s (3.8 GB). A failure is then
// declared at least 4·log10(250)·10 s ≈ 96 s after it was suspected (two
// others confirming), up to 6 times that (~9.6 min) without, and
// suspecting it takes up to a probe interval and its 8 s (computed, not
// measured).
// BENCHMARKS.md has the settle times.
func TunedConfig(n int) *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	c.EnableCompression = false
	c.UDPBufferSize = 16 << 10
	c.RetransmitMult = 4
	c.ProbeInterval = time.Second
	c.ProbeTimeout = 500 * time.Millisecond
	c.SuspicionMult = 4
	c.TCPTimeout = 5 * time.Second
	c.DisableTcpPings = true
	// A pair that gossip missed learns of each other at the next
	// anti-entropy push-pull: every 5 s (memberlist scales it up with
	// log N), not the profile's 15 s; one run in four at N=500 waited 75 s.
	c.PushPullInterval = 5 * time.Second
	if n > 250 {
		c.ProbeInterval = 3 * time.Second
		c.ProbeTimeout = 1500 * time.Millisecond
		c.SuspicionMult = 5
		c.GossipInterval = 200 * time.Millisecond
	}
	if n > 500 {
		c.ProbeInterval = 5 * time.Second
		c.ProbeTimeout = 3 * time.Second
		c.SuspicionMult = 6
		c.RetransmitMult = 3
		c.GossipInterval = 300 * time.Millisecond
	}
	if n > 1000 {
		c.ProbeInterval = 10 * time.Second
		c.ProbeTimeout = 8 * time.Second
		c.SuspicionMult = 4
		c.GossipInterval = 500 * time.Millisecond
	}
	return c
}

// WANConfig is memberlist's profile for a pool of peers across the
// internet: a cloud pool of gateways (Consul's WAN pool).
func WANConfig() *memberlist.Config { return memberlist.DefaultWANConfig() }

// Overlay is one peer's view of the cluster. It is safe for concurrent use.
type Overlay struct {
	cfg  Config
	serf *serf.Serf
	ex   exchanger

	mu      sync.RWMutex
	members map[string]network.Member
	// pins are the identities of members by name, kept while the member
	// is alive and dropped when it fails, leaves or is reaped (a peer that
	// restarts with a new key must have been seen gone first: Serf binds
	// a name to its address until then). conflicts counts refused changes.
	pins      map[string]identity.Public
	tagSets   *tagSets // the MemNetwork's, shared by the peers on it; else this peer's
	conflicts int64
	// remembered is how many peers this peer is to join: Serf's snapshot
	// listed them alive when it started, or they are its seeds (Expect);
	// met is whether another member has been live here since (Alone).
	remembered int
	met        bool

	joinMu  sync.Mutex
	joining *joinTry // the serf.Join under way, if any (tryJoin)
	// touched names the members whose events were applied while a
	// refresh was reading Serf's list (refreshing > 0); nil otherwise.
	touched    map[string]struct{}
	refreshing int
	// afterSnapshot, if set (tests), runs between a refresh's reading
	// of Serf's list and its applying it.
	afterSnapshot func()
	list          []string           // names of live peerq members but self, for sampling
	pos           map[string]int     // index of each name in list
	events        chan network.Event // Events(); fed by queue, which never drops one
	queue         *eventQueue
	responder     func(name string, payload []byte) []byte
	done          chan struct{}
	closing       sync.Once
	wg            sync.WaitGroup
}

// New creates the peer's Serf instance and exchange endpoint. It does not
// join anyone yet.
func New(cfg Config) (*Overlay, error) {
	if cfg.Name == "" || strings.ContainsAny(cfg.Name, "/ ") {
		return nil, fmt.Errorf("bad node name %q", cfg.Name)
	}
	if n := len(cfg.Key); n != 0 && n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("key of %d bytes; want 16, 24 or 32", n)
	}
	for k := range cfg.Tags {
		if strings.HasPrefix(k, tagPrefix) {
			return nil, fmt.Errorf("tag %q is reserved for peerq", k)
		}
	}
	if cfg.ExchangeTimeout <= 0 {
		cfg.ExchangeTimeout = 2 * time.Second
	}
	logOut := cfg.LogOutput
	if logOut == nil {
		logOut = io.Discard
	}
	o := &Overlay{cfg: cfg, members: map[string]network.Member{}, pos: map[string]int{}, pins: map[string]identity.Public{},
		events: make(chan network.Event, 256), queue: newEventQueue(), done: make(chan struct{}), tagSets: &tagSets{}}
	if cfg.Mem != nil {
		o.tagSets = &cfg.Mem.tagSets
	}

	sc := serf.DefaultConfig()
	sc.NodeName = cfg.Name
	sc.Logger = log.New(logOut, "", log.LstdFlags)
	sc.LogOutput = logOut
	sc.SnapshotPath = cfg.SnapshotPath
	sc.RejoinAfterLeave = true
	if cfg.SnapshotPath != "" {
		o.remembered = rememberedPeers(cfg.SnapshotPath, cfg.Name)
	}
	ml := cfg.Memberlist
	var keyring *memberlist.Keyring
	if cfg.Mem != nil {
		if ml == nil {
			ml = TunedConfig(cfg.ClusterSize)
		}
		t, err := cfg.Mem.newTransport(cfg.Name, cfg.MemPort)
		if err != nil {
			return nil, err
		}
		ml.Transport = t
		ml.BindAddr, ml.BindPort = t.addr.IP.String(), t.addr.Port
		ml.AdvertiseAddr, ml.AdvertisePort = t.addr.IP.String(), t.addr.Port
		o.ex = cfg.Mem.newExchange(cfg.Name)
	} else {
		if ml == nil {
			ml = memberlist.DefaultLANConfig()
		}
		host, port, err := splitHostPort(cfg.BindAddr)
		if err != nil {
			return nil, err
		}
		ml.BindAddr, ml.BindPort = host, port
		advertiseHost := host
		if cfg.AdvertiseAddr != "" {
			ah, ap, err := splitHostPort(cfg.AdvertiseAddr)
			if err != nil {
				return nil, err
			}
			ml.AdvertiseAddr, ml.AdvertisePort = ah, ap
			advertiseHost = ah
		}
		// The exchange endpoint is advertised on the gossip address's host
		// (with its own port), unless that host is a wildcard.
		if ip := net.ParseIP(advertiseHost); advertiseHost == "" || ip != nil && ip.IsUnspecified() {
			advertiseHost = ""
		}
		// Without --exchange, the exchange listens on the gossip address,
		// one port up: agents on one host with their own --bind do not
		// clash.
		exAddr := cfg.ExchangeAddr
		if exAddr == "" {
			exAddr = net.JoinHostPort(host, strconv.Itoa(port+1))
			if port == 0 {
				exAddr = net.JoinHostPort(host, "0")
			}
		}
		if cfg.Key != nil {
			if keyring, err = memberlist.NewKeyring(append([][]byte{cfg.Key}, cfg.OldKeys...), cfg.Key); err != nil {
				return nil, fmt.Errorf("overlay: key: %w", err)
			}
		}
		var ids *pairing
		if cfg.Identity != nil {
			ids = &pairing{self: cfg.Identity, keyOf: o.identityOf}
		}
		ex, err := newTCPExchange(cfg.Name, exAddr, advertiseHost, keyring, ids)
		if err != nil {
			flag := "--exchange"
			if cfg.ExchangeAddr == "" {
				flag = "--exchange (it defaults to the --bind port + 1)"
			}
			return nil, fmt.Errorf("exchange listener on %s: %w; choose another with %s", exAddr, err, flag)
		}
		switch {
		case cfg.ExchangePool < 0:
			ex.poolSize = 0
		case cfg.ExchangePool > 0:
			ex.poolSize = cfg.ExchangePool
		}
		if keyring == nil && ids == nil {
			// Neither key nor identity: a frame's sender is only what it
			// says, so it must at least be the member at the address it
			// comes from.
			ex.verify = o.senderAt
		}
		ex.logf = cfg.Logf
		if cfg.Clock != nil {
			ex.clock = cfg.Clock
		}
		o.ex = ex
	}
	ml.Name = cfg.Name
	ml.LogOutput = logOut
	ml.Logger = nil
	if keyring != nil {
		// The same keyring encrypts gossip and seals exchanges, so that
		// Serf's key rotation covers both.
		ml.Keyring = keyring
	} else if cfg.Key != nil {
		ml.SecretKey = cfg.Key
	}
	sc.MemberlistConfig = ml

	tags := o.ownTags()
	for k, v := range cfg.Tags {
		tags[k] = v
	}
	sc.Tags = tags
	if cfg.Admit != nil {
		// Its own first news passes the delegate too: a peer that would
		// refuse itself never lists itself, and Serf's LocalMember is nil.
		if err := cfg.Admit(tags); err != nil {
			o.ex.Close()
			return nil, fmt.Errorf("overlay: this peer's own tags: %w", err)
		}
		sc.Merge = admitMerge(cfg.Admit)
	}
	events := make(chan serf.Event, 1024)
	sc.EventCh = events
	s, err := serf.Create(sc)
	if err != nil {
		o.ex.Close()
		return nil, fmt.Errorf("overlay: create serf: %w", err)
	}
	o.serf = s
	o.refresh()
	o.wg.Add(2)
	go o.drain(events)
	go func() { defer o.wg.Done(); o.queue.run(o.events, o.done) }()
	return o, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", hp, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("address %q: bad port", hp)
	}
	return host, port, nil
}

// drain reads Serf's events (Serf blocks on a full channel), keeps the
// member table current and forwards membership changes.
func (o *Overlay) drain(events chan serf.Event) {
	defer o.wg.Done()
	for {
		select {
		case <-o.done:
			return
		case e := <-events:
			if q, ok := e.(*serf.Query); ok {
				o.answerQuery(q)
				continue
			}
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			o.mu.Lock()
			var conflicts []string
			for _, m := range me.Members {
				if me.Type == serf.EventMemberReap || me.Type == serf.EventMemberLeave || me.Type == serf.EventMemberFailed {
					m.Status = serf.StatusLeft // whatever Serf's copy says, it is gone
				}
				if o.apply(m) {
					conflicts = append(conflicts, m.Name)
				}
				if o.touched != nil {
					o.touched[m.Name] = struct{}{}
				}
			}
			o.mu.Unlock()
			if len(conflicts) > 0 {
				if o.cfg.Logf != nil {
					o.cfg.Logf("refused a new identity for member(s) %s while alive: a member in another's name, or a forged update (the first key seen is kept)",
						strings.Join(conflicts, ", "))
				}
				o.queue.push(network.Event{Kind: network.MemberConflict, Members: conflicts})
			}
			var kind network.EventKind
			switch me.Type {
			case serf.EventMemberJoin:
				kind = network.MemberJoined
			case serf.EventMemberLeave, serf.EventMemberReap:
				kind = network.MemberLeft
			case serf.EventMemberFailed:
				kind = network.MemberFailed
			case serf.EventMemberUpdate:
				kind = network.MemberUpdated
			default:
				continue
			}
			names, info := make([]string, len(me.Members)), make([]network.Member, len(me.Members))
			for i, m := range me.Members {
				names[i] = m.Name
				info[i] = network.Member{Name: m.Name, Addr: gossipAddr(m), Tags: m.Tags}
			}
			o.queue.push(network.Event{Kind: kind, Members: names, Info: info, Reap: me.Type == serf.EventMemberReap})
		}
	}
}

// refresh brings the member table up to Serf's list of members: at
// start, and after a join or a tag change of our own. The list is a
// snapshot, and the event loop may apply a newer event while it is read
// (Serf delivers events without its member lock held by us): a member
// whose event was applied since the refresh began keeps the table's
// entry, since anything newer about it brings an event of its own. A
// table rebuilt from the snapshot alone lost a member that joined in
// that window for good — with frozen tags no later event brings it
// back — and a 20-peer demo on a loaded machine then never settled.
func (o *Overlay) refresh() {
	o.mu.Lock()
	if o.refreshing == 0 {
		o.touched = map[string]struct{}{}
	}
	o.refreshing++
	o.mu.Unlock()
	ms := o.serf.Members()
	if o.afterSnapshot != nil {
		o.afterSnapshot()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	listed := make(map[string]struct{}, len(ms))
	for _, m := range ms {
		listed[m.Name] = struct{}{}
		if _, newer := o.touched[m.Name]; !newer {
			o.apply(m)
		}
	}
	for name := range o.members {
		_, newer := o.touched[name]
		if _, ok := listed[name]; !ok && !newer {
			o.apply(serf.Member{Name: name, Status: serf.StatusLeft}) // reaped
		}
	}
	if o.refreshing--; o.refreshing == 0 {
		o.touched = nil
	}
}

// apply brings one member's entry up to date, and reports whether it
// showed an identity other than the one pinned for its name (refused). Member events update the
// table one member at a time: rebuilding it from Serf.Members() on every
// event cost O(N) per event, N events per peer during formation, N peers in
// one process, and that was what kept 500 embedded peers from settling.
// Called with o.mu held.
func (o *Overlay) apply(m serf.Member) (conflict bool) {
	if m.Status != serf.StatusAlive || m.Tags[TagProtocol] == "" {
		delete(o.pins, m.Name)
		if _, ok := o.members[m.Name]; ok {
			delete(o.members, m.Name)
			if i, ok := o.pos[m.Name]; ok {
				last := o.list[len(o.list)-1]
				o.list[i], o.pos[last] = last, i
				o.list = o.list[:len(o.list)-1]
				delete(o.pos, m.Name)
			}
		}
		return false
	}
	nm := memberOf(m)
	key, boot := nm.Key, nm.Boot
	if pinned, ok := o.pins[m.Name]; ok && pinned != key {
		o.conflicts++
		key, conflict = pinned, true
		if old, ok := o.members[m.Name]; ok {
			boot = old.Boot
		}
	} else if !key.IsZero() {
		o.pins[m.Name] = key
	}
	nm.Key, nm.Boot = key, boot
	nm.Tags = o.tagSets.intern(nm.Tags, len(o.members))
	o.members[m.Name] = nm
	o.met = o.met || m.Name != o.cfg.Name
	if _, ok := o.pos[m.Name]; !ok && m.Name != o.cfg.Name {
		o.pos[m.Name] = len(o.list)
		o.list = append(o.list, m.Name)
	}
	return conflict
}

// tagSets holds one map for each set of user tags the members show, for
// members that show the same to share: every peer holds every member's,
// and in one process (an embedded cluster, whose peers share one
// MemNetwork and so its tagSets) 200 peers held 40,000 copies of 200
// members' tags, a fifth of the live heap; a peer alone shares those of
// members that show the same (their zone, region, pool). Members' tags
// are never written once made (network.Member). Safe for concurrent use.
type tagSets struct {
	mu    sync.Mutex
	byKey map[string]map[string]string
	most  int // the most members a peer using these sets held
}

// intern returns the held map equal to t, holding t if none is; members
// is how many members the calling peer holds, which bounds the sets worth
// keeping: past twice the most any peer held, the sets start again (maps
// already handed out stay with their members).
func (s *tagSets) intern(t map[string]string, members int) map[string]string {
	keys := slices.Sorted(maps.Keys(t))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(t[k])
		b.WriteByte(0)
	}
	key := b.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if held, ok := s.byKey[key]; ok {
		return held
	}
	s.most = max(s.most, members)
	if s.byKey == nil || len(s.byKey) > 2*s.most+16 {
		s.byKey = map[string]map[string]string{}
	}
	s.byKey[key] = t
	return t
}

// memberOf is a Serf member as peerq shows it: its user tags (the
// overlay's own taken out), exchange address, identity and incarnation.
func memberOf(m serf.Member) network.Member {
	tags := make(map[string]string, len(m.Tags))
	for k, v := range m.Tags {
		if !strings.HasPrefix(k, tagPrefix) {
			tags[k] = v
		}
	}
	key, boot := parseIdentityTag(m.Tags[TagIdentity])
	return network.Member{Name: m.Name, Addr: gossipAddr(m), Exchange: m.Tags[TagExchange], Tags: tags, Key: key, Boot: boot}
}

// Alone returns, while no other member has been live at this peer since
// it started, how many peers it was to join: those Serf's snapshot listed
// alive (which Serf tries to rejoin), or the seeds given to Expect if
// more; otherwise 0. A peer that joins none of them — refused (another
// pool, another key), or cut off — is a cloud of one that knows it is
// not alone.
func (o *Overlay) Alone() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.met {
		return 0
	}
	return o.remembered
}

// Expect says this peer is to join n seeds (an agent's --join, retried
// while it serves): Alone counts them until it meets a member.
func (o *Overlay) Expect(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.remembered = max(o.remembered, n)
}

// rememberedPeers counts the peers other than self that Serf's snapshot
// at path lists alive: the lines "alive: NAME ADDR" less "not-alive:
// NAME" (serf/snapshot.go's replay; a "leave" is ignored, as Serf does
// with RejoinAfterLeave). A snapshot that cannot be read remembers none.
func rememberedPeers(path, self string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	alive := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		line, whole := strings.CutSuffix(line, "\n")
		if !whole {
			break // a torn last line, as Serf's replay reads it
		}
		if info, ok := strings.CutPrefix(line, "alive: "); ok {
			if i := strings.LastIndexByte(info, ' '); i > 0 {
				alive[info[:i]] = true
			}
		} else if name, ok := strings.CutPrefix(line, "not-alive: "); ok {
			delete(alive, name)
		}
	}
	delete(alive, self)
	return len(alive)
}

// Known returns every peerq member this peer's Serf knows, by name: the
// live ones, and those failed, leaving or left that Serf has not reaped
// yet (after its ReconnectTimeout and TombstoneTimeout, 24 h each by
// default), with the tags they last showed. When each was last alive is
// the node's to know (its observer keeps every member's up-times).
func (o *Overlay) Known() []network.Known {
	all := o.serf.Members() // Serf's own lock: taken before ours, never inside it
	o.mu.RLock()
	defer o.mu.RUnlock()
	out := make([]network.Known, 0, len(all))
	for _, m := range o.members {
		out = append(out, network.Known{Member: m, Status: network.StatusAlive})
	}
	for _, m := range all {
		if m.Status == serf.StatusAlive || m.Tags[TagProtocol] == "" {
			continue // alive: in o.members (unless refused); no protocol tag: not peerq
		}
		status := m.Status.String()
		if m.Status == serf.StatusNone {
			status = network.StatusFailed
		}
		out = append(out, network.Known{Member: memberOf(m), Status: status})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// identityOf is the pinned key of a live member: whose exchanges this peer
// accepts under that name.
func (o *Overlay) identityOf(name string) (identity.Public, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	m, ok := o.members[name]
	return m.Key, ok && !m.Key.IsZero()
}

// ownTags are the tags the overlay itself shows: protocol, exchange
// address, identity and incarnation.
func (o *Overlay) ownTags() map[string]string {
	tags := map[string]string{TagProtocol: protocolVer, TagExchange: o.ex.Addr()}
	if id := o.cfg.Identity; id != nil {
		tags[TagIdentity] = identityTag(id.Public(), id.Boot())
	}
	return tags
}

// identityTag is TagIdentity's value: the key and the incarnation in one
// tag, not two. Every peer keeps every member's tags as Serf decoded them,
// a map each; past 8 keys a Go map is no longer one small group, and the
// demo's members (5 user tags) had 9: 22 MB of the 200 peers' ~110 MB.
func identityTag(key identity.Public, boot uint64) string {
	return key.String() + "." + strconv.FormatUint(boot, 16)
}

// parseIdentityTag reads identityTag's value; a value it cannot read gives
// the zero key (a member without an identity).
func parseIdentityTag(v string) (identity.Public, uint64) {
	k, b, ok := strings.Cut(v, ".")
	key, err := identity.ParsePublic(k)
	boot, berr := strconv.ParseUint(b, 16, 64)
	if !ok || err != nil || berr != nil {
		return identity.Public{}, 0
	}
	return key, boot
}

// gossipAddr is a member's gossip address, host:port.
func gossipAddr(m serf.Member) string {
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
}

// Events delivers membership changes.
func (o *Overlay) Events() <-chan network.Event { return o.events }

// Name is this peer's name.
func (o *Overlay) Name() string { return o.cfg.Name }

// Addr is this peer's gossip address, for others to join.
func (o *Overlay) Addr() string {
	m := o.serf.LocalMember()
	return gossipAddr(m)
}

// JoinAddr is the address others pass to Join to reach this peer. Serf
// addresses replies by name, so in memory it is "name/host:port".
func (o *Overlay) JoinAddr() string {
	return o.cfg.Name + "/" + o.Addr()
}

// Join contacts the seeds until one answers or ctx ends, backing off from
// 100 ms to 5 s between tries, or until every seed is refused (refusedAll).
// It returns how many seeds answered.
func (o *Overlay) Join(ctx context.Context, seeds []string) (int, error) {
	if len(seeds) == 0 {
		return 0, nil
	}
	wait := 100 * time.Millisecond
	for {
		n, err := o.tryJoin(ctx, seeds)
		if n > 0 {
			o.refresh()
			return n, nil
		}
		if refusedAll(err, len(seeds)) {
			return 0, fmt.Errorf("join %v: %w", seeds, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("join %v: %w (last: %v)", seeds, ctx.Err(), err)
		case <-o.done:
			return 0, fmt.Errorf("join %v: the overlay was shut down (last: %v)", seeds, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// joinTry is one serf.Join under way.
type joinTry struct {
	done chan struct{}
	n    int
	err  error
}

// tryJoin makes one serf.Join, waiting for it no longer than ctx: Serf
// visits the seeds one at a time, each for up to memberlist's TCP timeout
// (30 s in the WAN profile), so two seeds that accept and never answer
// held a 5-s join for a minute. A try given up on goes on until Serf ends
// it; the next waits for it rather than starting another beside it (its
// seeds, then, are the first try's).
func (o *Overlay) tryJoin(ctx context.Context, seeds []string) (int, error) {
	o.joinMu.Lock()
	t := o.joining
	if t == nil {
		t = &joinTry{done: make(chan struct{})}
		o.joining = t
		go func() {
			n, err := o.serf.Join(seeds, true)
			o.joinMu.Lock()
			t.n, t.err, o.joining = n, err, nil
			o.joinMu.Unlock()
			close(t.done)
		}()
	}
	o.joinMu.Unlock()
	select {
	case <-t.done:
		return t.n, t.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-o.done:
		return 0, errors.New("overlay: shut down")
	}
}

// Suspects are the members memberlist suspects now, by name: alive to
// Serf until their suspicion ends, which can take minutes in a large
// pool (its timeout grows with log N), though a dead member is suspected
// within a probe or two.
func (o *Overlay) Suspects() map[string]bool {
	out := map[string]bool{}
	for _, n := range o.serf.Memberlist().Members() {
		if n.State == memberlist.StateSuspect {
			out[n.Name] = true
		}
	}
	return out
}

// Members returns the live peerq peers, this one included, by name.
func (o *Overlay) Members() []network.Member {
	o.mu.RLock()
	defer o.mu.RUnlock()
	out := make([]network.Member, 0, len(o.members))
	for _, m := range o.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b network.Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// EachMember calls fn with the name of each live peerq peer, this one
// included, in no order, without copying the member table: fn must not
// call the overlay.
func (o *Overlay) EachMember(fn func(name string)) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	for name := range o.members {
		fn(name)
	}
}

// Member looks up a live peerq peer by name.
func (o *Overlay) Member(name string) (network.Member, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	m, ok := o.members[name]
	return m, ok
}

// Size is the number of live peerq peers, this one included.
func (o *Overlay) Size() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return len(o.members)
}

// MemberStates counts Serf's members by state — alive, leaving, left,
// failed — as this peer's Serf knows them (failed and left members stay
// until Serf reaps them).
func (o *Overlay) MemberStates() map[string]int {
	out := map[string]int{}
	for _, m := range o.serf.Members() {
		out[m.Status.String()]++
	}
	return out
}

// Sample picks a uniformly random live peerq peer other than this one.
func (o *Overlay) Sample(r *rand.Rand) (string, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if len(o.list) == 0 {
		return "", false
	}
	return o.list[r.IntN(len(o.list))], true
}

// Serve sets the handler of incoming exchanges.
func (o *Overlay) Serve(h network.Handler) error { return o.ex.Serve(h) }

// Exchange sends a request to the named peer and returns its response,
// within ctx and ExchangeTimeout.
func (o *Overlay) Exchange(ctx context.Context, peer string, req []byte) ([]byte, error) {
	m, ok := o.Member(peer)
	if !ok || m.Exchange == "" {
		return nil, fmt.Errorf("%s is not a live peerq peer", peer)
	}
	// A caller that set a deadline no later than ExchangeTimeout (the
	// runtime does, for each exchange) needs no second context: making
	// one an exchange, with its timer and its link to the parent, was 4%
	// of a busy demo's CPU.
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > o.cfg.ExchangeTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.cfg.ExchangeTimeout)
		defer cancel()
	}
	return o.ex.Call(ctx, peer, m.Exchange, req)
}

// SetTags replaces the peer's user tags (peerq's own are kept). It blocks
// while Serf re-broadcasts them.
func (o *Overlay) SetTags(tags map[string]string) error {
	all := o.ownTags()
	for k, v := range tags {
		if strings.HasPrefix(k, tagPrefix) {
			return fmt.Errorf("tag %q is reserved for peerq", k)
		}
		all[k] = v
	}
	if o.cfg.Admit != nil {
		if err := o.cfg.Admit(all); err != nil {
			return fmt.Errorf("overlay: set tags: this peer would refuse itself: %w", err)
		}
	}
	if err := o.serf.SetTags(all); err != nil {
		return fmt.Errorf("overlay: set tags: %w", err)
	}
	o.refresh()
	return nil
}

// Leave leaves the cluster gracefully: others see "left", not "failed".
// A Serf that shut itself down (it lost a conflict over its name) has
// left already: memberlist would panic.
func (o *Overlay) Leave() error {
	if o.serf.State() == serf.SerfShutdown {
		return errors.New("overlay: Serf has shut down")
	}
	return o.serf.Leave()
}

// senderAt reports whether the exchange connection from remote comes from
// the member named from: its advertised exchange host.
func (o *Overlay) senderAt(from string, remote net.Addr) bool {
	m, ok := o.Member(from)
	if !ok {
		return false
	}
	host, _, err := net.SplitHostPort(m.Exchange)
	rhost, _, rerr := net.SplitHostPort(remote.String())
	return err == nil && rerr == nil && (host == rhost || net.ParseIP(host).Equal(net.ParseIP(rhost)))
}

// ExchangeStats counts what the exchange transport refused: frames that
// failed authentication or checks, replays, connections over its caps,
// and exchanges refused for clock skew (either way); and the identity
// changes refused (conflicts).
func (o *Overlay) ExchangeStats() (rejected, replays, refusedConns, skewed, conflicts int64) {
	o.mu.RLock()
	conflicts = o.conflicts
	o.mu.RUnlock()
	if t, ok := o.ex.(*tcpExchange); ok {
		rejected, replays, refusedConns, skewed = t.stats()
	}
	return rejected, replays, refusedConns, skewed, conflicts
}

// ClockOffsets are the other peers' clocks minus this one's, as the
// exchanges of the last ten minutes measured them (sockets only: in one
// process every peer shares the clock).
func (o *Overlay) ClockOffsets() map[string]time.Duration {
	if t, ok := o.ex.(*tcpExchange); ok {
		return t.clocks.offsets(t.clock(), 10*time.Minute)
	}
	return nil
}

// Identity is the peer's key, as the overlay shows it (nil: none).
func (o *Overlay) Identity() *identity.Key { return o.cfg.Identity }

// Keyed says whether gossip and exchanges are encrypted and authenticated.
func (o *Overlay) Keyed() bool { return o.cfg.Key != nil }

// closed reports whether Shutdown was called.
func (o *Overlay) closed() bool {
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}

// Shutdown stops the peer without leaving (others will see it fail).
func (o *Overlay) Shutdown() error {
	var err error
	o.closing.Do(func() {
		err = o.serf.Shutdown()
		close(o.done)
		o.wg.Wait()
		err = errors.Join(err, o.ex.Close())
	})
	return err
}
