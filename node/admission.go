package node

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerq/peerq/api"
)

// admission bounds the queries a peer asks and takes part in: a place
// for each query it asks (MaxAsk, a queue of AskQueue waiting at most
// AskWait), and none while it takes part in MaxQueries already (the
// cloud's queries: every one reaches every peer). A query refused is
// told when to retry: twice the recent statements' time.
type admission struct {
	cfg  Config // MaxAsk, AskQueue, AskWait, MaxQueries
	self string
	done <-chan struct{} // closed when the node closes
	// instances counts the queries this peer takes part in (the
	// runtime's, read without its lock).
	instances *atomic.Int64
	// slots hold a place each for the queries asked; waiting counts those
	// queued for one.
	slots   chan struct{}
	waiting atomic.Int64
	// statementTime is the recent statements' duration (an average,
	// nanoseconds); overloaded counts the queries refused.
	statementTime atomic.Int64
	overloaded    atomic.Int64
}

func newAdmission(cfg Config, self string, instances *atomic.Int64, done <-chan struct{}) *admission {
	return &admission{cfg: cfg, self: self, done: done, instances: instances, slots: make(chan struct{}, cfg.MaxAsk)}
}

// Admit takes a place for a query this peer asks: at once if one is free,
// else after waiting in a bounded queue; ErrOverloaded when the queue is
// full or the wait runs out. The returned context carries the place, so
// that the query run with it (or the several gossip rounds of a RESERVE)
// takes no other; the function gives it back. The HTTP API admits before
// it answers, so that it can say 429.
func (ad *admission) Admit(ctx context.Context) (context.Context, func(), error) {
	if ctx.Value(admittedKey{}) != nil {
		return ctx, func() {}, nil
	}
	release, err := ad.admit(ctx)
	if err != nil {
		return ctx, nil, err
	}
	return context.WithValue(ctx, admittedKey{}, true), release, nil
}

func (ad *admission) admit(ctx context.Context) (func(), error) {
	if why := ad.loaded(); why != "" {
		ad.overloaded.Add(1)
		return nil, ad.busy(why)
	}
	var once sync.Once
	release := func() { once.Do(func() { <-ad.slots }) }
	select {
	case ad.slots <- struct{}{}:
		return release, nil
	default:
	}
	if ad.waiting.Add(1) > int64(ad.cfg.AskQueue) {
		ad.waiting.Add(-1)
		ad.overloaded.Add(1)
		return nil, ad.busy(fmt.Sprintf("it asks %d queries at once (max_ask), %d more may wait", ad.cfg.MaxAsk, ad.cfg.AskQueue))
	}
	defer ad.waiting.Add(-1)
	var wait <-chan time.Time
	if ad.cfg.AskWait > 0 {
		wait = time.After(ad.cfg.AskWait)
	}
	select {
	case ad.slots <- struct{}{}:
		return release, nil
	case <-wait:
		ad.overloaded.Add(1)
		return nil, ad.busy(fmt.Sprintf("no place for %v (it asks %d queries at once)", ad.cfg.AskWait, ad.cfg.MaxAsk))
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-ad.done:
		return nil, ErrClosed
	}
}

// loaded says why this peer takes no new query now ("" if it does): it
// takes part in MaxQueries already — the cloud's queries, since every one
// reaches every peer.
func (ad *admission) loaded() string {
	if k := ad.instances.Load(); k >= int64(ad.cfg.MaxQueries) {
		return fmt.Sprintf("%s takes part in %d queries at once (max_queries %d)", ad.self, k, ad.cfg.MaxQueries)
	}
	return ""
}

// busy is the error of a query refused for load, with when to retry: the
// recent statements' duration (at least 1 s).
func (ad *admission) busy(why string) error {
	wait := time.Duration(ad.statementTime.Load())
	secs := max(int(math.Ceil(2*wait.Seconds())), 1)
	e := api.Busy(min(secs, 60), why)
	e.Cause = ErrOverloaded
	return e
}

// admittedKey marks a context whose query already holds a place.
type admittedKey struct{}
