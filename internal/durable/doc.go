// Package durable writes the files a peer must not lose in a crash (its
// lease table, the subclouds it owns) and reads them back.
//
// Write replaces a file so that a crash at any moment leaves either the
// old content or the new, never a missing or torn file, and keeps the old
// content as path.prev for the day a disk corrupts the file:
//
//	write path.tmp, fsync, close
//	if path exists: copy it to path.prev.tmp, fsync, close, rename → path.prev
//	rename path.tmp → path
//	fsync the directory
//
// It returns nil only when all of that is on the disk. Read takes path,
// or path.prev when path is missing or does not parse, and says so; it
// never takes a file that exists but cannot be read for an empty one.
// Probe checks that a directory can take a durable write now, and Reason
// turns a failure's cause into words for the user ("disk full").
//
// All of it goes through FS, the real one from OS or the in-memory one in
// crashfs, which crashes or fails at any chosen step and models what
// survives a crash; the tests prove Write and Read at every crash point.
// See Pillai et al., "All File Systems Are Not Created Equal: On the
// Complexity of Crafting Crash-Consistent Applications" (OSDI 2014), for
// why each fsync is there.
//
// The package has no global state, starts no goroutine and reads no clock.
//
// # Usage
//
//	fsys := durable.OS()
//	if err := durable.Probe(fsys, dir); err != nil {
//		return fmt.Errorf("node: data dir %s: %s: %w", dir, durable.Reason(err), err)
//	}
//	path := filepath.Join(dir, "lease.json")
//	var table leaseTable
//	note, found, err := durable.Read(fsys, path, func(b []byte) error {
//		var t leaseTable
//		if err := json.Unmarshal(b, &t); err != nil {
//			return err
//		}
//		table = t // only on success: parse may run twice
//		return nil
//	})
//	switch {
//	case err != nil:
//		return err // shown to the user: it says how to start without the file
//	case note != "":
//		log.Printf("[WARN] node: lease table: %s", note)
//	case !found:
//		table = leaseTable{} // a fresh start
//	}
//	...
//	table.grant(l)
//	if err := durable.Write(fsys, path, table.encode()); err != nil {
//		table.revoke(l)
//		return fmt.Errorf("node: %s at %s: %w", durable.Reason(err), self, err)
//	}
//	reply(yes) // only now
//
// The caller's duties:
//
//  1. Answer "yes" (to the network, to a user) only after Write returned
//     nil. After an error the new content may or may not be on the disk:
//     treat the change as not made, and let a later Write settle it.
//  2. Write one path from one goroutine at a time (different paths may be
//     written at once), and keep the names path.tmp, path.prev and
//     path.prev.tmp free for Write.
//  3. Give Read a parse that rejects a torn or corrupt file (a checksum,
//     or a decoder that requires the whole document) and keeps nothing
//     from a call that fails.
//  4. Log Read's note; refuse to start on Read's error, showing it.
//  5. Probe the data directory at start and from time to time, and report
//     it with Reason, so that a full or read-only disk is known before a
//     write that matters fails.
package durable
