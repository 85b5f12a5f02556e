// Package crashfs is an in-memory durable.FS for tests that remembers what
// would survive a crash, and crashes or fails at a chosen step: the disk
// counterpart of peertest's network. Only tests import it.
//
// Every mutating step — create, write, fsync, close, rename, remove,
// directory fsync — is counted. CrashAt(k) kills the process just before
// step k: it and every later step fail with ErrCrashed. FailAt(k, errno)
// fails step k alone (syscall.ENOSPC, syscall.EROFS); SetFull and
// SetReadOnly fail every later write until turned off.
//
// The persistence model, after Pillai et al. (OSDI 2014): bytes written
// but not fsynced are volatile, and so are name changes (create, rename,
// remove) until their directory is fsynced. Restart(mode) returns a new FS
// with what the machine finds after a crash: everything durable, plus the
// first mode.Entries volatile name changes in the order they were made,
// with unsynced contents lost, kept, torn to a prefix or zeroed
// (mode.Data). A rename is atomic — a name points to the old file or the
// new one — and bytes fsynced before a rename survive if the rename does.
// Modes lists every distinct mode for the current state.
//
// Explore drives a whole subsystem through every crash point: it runs the
// workload once to count its steps, then for each step k reruns it on a
// fresh FS crashing at k, and checks every state a restart could find.
// The workload calls ack each time it answered "yes"; the check is told
// how many acks came before the crash, and must find each of them.
//
// # Usage
//
// A lease table that must never forget a grant it answered "yes" to:
//
//	func TestLeaseTableSurvivesCrashes(t *testing.T) {
//		const path = "/data/lease.json"
//		grants := []lease{{ID: "a"}, {ID: "b"}, {ID: "c"}}
//		rep := crashfs.Explore(t,
//			func(fsys *crashfs.FS, ack func()) error {
//				tab, err := openLeaseTable(fsys, path)
//				if err != nil {
//					return err
//				}
//				for _, l := range grants {
//					if err := tab.Grant(l); err != nil {
//						return err // no ack: the grant was refused
//					}
//					ack() // answered "yes"
//				}
//				return nil
//			},
//			func(after *crashfs.FS, acked int) error {
//				tab, err := openLeaseTable(after, path)
//				if err != nil {
//					return err // a restart must always find a readable table
//				}
//				for _, l := range grants[:acked] {
//					if !tab.Has(l.ID) {
//						return fmt.Errorf("forgot lease %s, granted before the crash", l.ID)
//					}
//				}
//				return nil
//			})
//		if rep.Restarts == 0 {
//			t.Fatal("explored nothing")
//		}
//	}
//
// The caller's duties:
//
//  1. Make the workload deterministic: one goroutine, randomness from a
//     source seeded inside it, no clock; Explore reruns it once per step.
//  2. Call ack only after the subsystem answered "yes", never before the
//     write it depends on returned.
//  3. In the check, open the subsystem the way a restarted process does,
//     and demand every acked operation; the operation in progress at the
//     crash may or may not be there.
//  4. Seed a starting state with ExploreFrom and Put, not with steps,
//     when the test is about what the workload does to existing files.
//  5. Keep workloads small: the cost is steps² × modes.
package crashfs
