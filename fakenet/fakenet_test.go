package fakenet

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/node/network"
)

func echo(h *Host) {
	h.Serve(func(from string, req []byte) ([]byte, error) { return append([]byte(from+":"), req...), nil })
}

// Exchanges take the configured latency; crashes are seen after Detect;
// partitions cut exchanges at once and membership after Detect; Heal
// restores both.
func TestFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Latency = 10 * time.Millisecond
		nw := New(cfg)
		a, b, c := nw.Add("a", nil), nw.Add("b", map[string]string{"region": "eu"}), nw.Add("c", nil)
		for _, h := range []*Host{a, b, c} {
			echo(h)
		}
		start := time.Now()
		resp, err := a.Exchange(context.Background(), "b", []byte("hi"))
		if err != nil || string(resp) != "a:hi" || time.Since(start) != 20*time.Millisecond {
			t.Fatalf("exchange: %q %v after %v", resp, err, time.Since(start))
		}
		if m, ok := a.Member("b"); !ok || m.Tags["region"] != "eu" || a.Size() != 3 {
			t.Errorf("member b: %+v %v, size %d", m, ok, a.Size())
		}
		nw.Crash("c")
		if _, err := a.Exchange(context.Background(), "c", nil); !errors.Is(err, ErrUnreachable) {
			t.Errorf("to a crashed peer: %v", err)
		}
		if a.Size() != 3 {
			t.Error("the crash was seen before Detect")
		}
		time.Sleep(cfg.Detect)
		synctest.Wait()
		if a.Size() != 2 {
			t.Errorf("after Detect a sees %d", a.Size())
		}
		if e := <-a.Events(); e.Kind != network.MemberJoined {
			t.Errorf("first event %+v", e) // b and c joining
		}
		nw.Partition([]string{"a"})
		if _, err := a.Exchange(context.Background(), "b", nil); !errors.Is(err, ErrUnreachable) {
			t.Errorf("across the partition: %v", err)
		}
		time.Sleep(cfg.Detect)
		synctest.Wait()
		if a.Size() != 1 || b.Size() != 1 {
			t.Errorf("partitioned: a sees %d, b sees %d", a.Size(), b.Size())
		}
		nw.Heal()
		if _, err := a.Exchange(context.Background(), "b", nil); err != nil || a.Size() != 2 {
			t.Errorf("healed: %v, a sees %d", err, a.Size())
		}
		if p, ok := a.Sample(rand.New(rand.NewPCG(1, 1))); !ok || p != "b" {
			t.Errorf("sample %q %v", p, ok)
		}
	})
}

// Loss drops about the configured share, and a lost exchange costs the
// caller the timeout.
func TestLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Loss, cfg.Seed = 0.3, 7
		nw := New(cfg)
		a, b := nw.Add("a", nil), nw.Add("b", nil)
		echo(b)
		lost := 0
		for i := 0; i < 1000; i++ {
			start := time.Now()
			if _, err := a.Exchange(context.Background(), "b", nil); err != nil {
				lost++
				if time.Since(start) != cfg.Timeout {
					t.Fatalf("a lost exchange took %v", time.Since(start))
				}
			}
		}
		if lost < 250 || lost > 350 {
			t.Errorf("%d of 1000 lost at 30%%", lost)
		}
		if ex, l := nw.Stats(); ex != 1000 || l != int64(lost) {
			t.Errorf("stats %d %d", ex, l)
		}
	})
}

// Tags reach the others after TagDelay.
func TestTagDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := New(DefaultConfig())
		a, b := nw.Add("a", nil), nw.Add("b", nil)
		b.SetTags(map[string]string{"subcloud": "x"})
		if m, _ := a.Member("b"); m.Tags["subcloud"] != "" {
			t.Error("the tag arrived at once")
		}
		time.Sleep(DefaultConfig().TagDelay)
		synctest.Wait()
		if m, _ := a.Member("b"); m.Tags["subcloud"] != "x" {
			t.Errorf("after TagDelay: %v", m.Tags)
		}
	})
}
