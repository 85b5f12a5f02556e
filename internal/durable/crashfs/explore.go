package crashfs

import (
	"errors"
	"fmt"
)

// T is the part of testing.TB that Explore uses.
type T interface {
	Helper()
	Errorf(format string, args ...any)
}

// Workload runs the operations under test on fsys: it builds the
// subsystem on fsys and drives it. It calls ack each time the subsystem
// answered "yes" to an operation (an operation returned nil, a grant
// was sent), and only then.
//
// It must be deterministic — the same steps in the same order on every
// run, so from one goroutine, with any randomness drawn from a source
// seeded inside the function — because Explore reruns it to crash it at
// each step. After a crash every step fails with an error wrapping
// ErrCrashed; the workload may stop or go on, and what it returns then is
// ignored.
type Workload func(fsys *FS, ack func()) error

// Check inspects after, the file system a machine finds when it comes
// back, given acked, the number of times the workload called ack before
// it died. Since the workload is deterministic, acked tells which
// operations had been answered "yes": every one of them must be found,
// and the one in progress may or may not be. Check may change after: each
// call gets its own.
type Check func(after *FS, acked int) error

// Report counts what Explore ran, for a test to assert it ran something.
type Report struct {
	Steps    int // mutating steps of the workload when nothing goes wrong
	Crashes  int // runs of the workload: one per step, plus one crashing after the last
	Restarts int // checks: one per crash run and Mode
}

// Explore checks a workload at every crash point, starting from an empty
// FS. See ExploreFrom.
func Explore(t T, w Workload, c Check) Report {
	t.Helper()
	return ExploreFrom(t, New, w, c)
}

// ExploreFrom runs w once on start() to count its steps, which must end
// without error. Then for every step k, and once more after the last
// step, it runs w on a fresh start() that crashes at step k, and calls c
// on every state the machine could find after that crash (every Mode). It
// reports the first failing check through t.Errorf, with the crash point,
// the Mode and the state, and stops there.
//
// start must return a new FS each call, in the same state; it may Put
// files in it.
func ExploreFrom(t T, start func() *FS, w Workload, c Check) Report {
	t.Helper()
	var rep Report
	first := start()
	base := first.Steps()
	acks := 0
	if err := w(first, func() { acks++ }); err != nil {
		t.Errorf("crashfs: the workload fails without a crash: %v", err)
		return rep
	}
	rep.Steps = first.Steps() - base
	for k := 1; k <= rep.Steps+1; k++ {
		fsys := start()
		where := "after the last step"
		if k <= rep.Steps {
			fsys.CrashAt(base + k)
			where = fmt.Sprintf("before step %d of %d (%s)", k, rep.Steps, first.Step(base+k))
		}
		acked := 0
		err := w(fsys, func() { acked++ })
		switch {
		case k <= rep.Steps && !fsys.Crashed():
			t.Errorf("crashfs: the workload is not deterministic: it took %d steps, then %d with a crash set at step %d",
				rep.Steps, fsys.Steps()-base, k)
			return rep
		case k > rep.Steps && err != nil:
			t.Errorf("crashfs: the workload is not deterministic: it failed on its second run: %v", err)
			return rep
		case k > rep.Steps && acked != acks:
			t.Errorf("crashfs: the workload is not deterministic: %d acks, then %d", acks, acked)
			return rep
		}
		rep.Crashes++
		if !checkAll(t, fsys, c, acked, "crash "+where) {
			return rep
		}
		rep.Restarts += len(fsys.Modes())
	}
	return rep
}

// ExploreFaults checks a workload against a failing step: for every step
// k of a clean run it runs w on a fresh start() whose step k fails with
// fault (syscall.ENOSPC, say) and the others work, then calls c on every
// state a crash at the end could leave. A workload that acks an operation
// whose write failed is caught there, as is one that loses an acked
// operation while handling the failure.
func ExploreFaults(t T, start func() *FS, fault error, w Workload, c Check) Report {
	t.Helper()
	var rep Report
	first := start()
	base := first.Steps()
	if err := w(first, func() {}); err != nil {
		t.Errorf("crashfs: the workload fails without a fault: %v", err)
		return rep
	}
	rep.Steps = first.Steps() - base
	for k := 1; k <= rep.Steps; k++ {
		fsys := start()
		fsys.FailAt(base+k, fault)
		acked := 0
		if err := w(fsys, func() { acked++ }); errors.Is(err, ErrCrashed) {
			t.Errorf("crashfs: the workload crashed without a crash set: %v", err)
			return rep
		}
		rep.Crashes++
		where := fmt.Sprintf("%v at step %d of %d (%s), then a crash at the end", fault, k, rep.Steps, first.Step(base+k))
		if !checkAll(t, fsys, c, acked, where) {
			return rep
		}
		rep.Restarts += len(fsys.Modes())
	}
	return rep
}

func checkAll(t T, fsys *FS, c Check, acked int, where string) bool {
	t.Helper()
	for _, m := range fsys.Modes() {
		if err := c(fsys.Restart(m), acked); err != nil {
			t.Errorf("crashfs: %s, restart with %v, %d acked: %v\nstate at the crash:\n%s",
				where, m, acked, err, fsys)
			return false
		}
	}
	return true
}
