package crashfs

import (
	"bytes"
	"fmt"
	"maps"
)

// Data says what survives of the file contents that were written but not
// fsynced when the machine went down.
type Data uint8

const (
	// DataLost: nothing; each file holds what its last fsync made durable
	// (a file never fsynced is empty).
	DataLost Data = iota
	// DataKept: everything written.
	DataKept
	// DataTorn: the first half of what was written, as when the size
	// reached the disk but only some of the blocks did.
	DataTorn
	// DataZeroed: as many bytes as were written, all zero, as when the
	// size reached the disk and none of the blocks did.
	DataZeroed
)

var dataNames = [...]string{DataLost: "lost", DataKept: "kept", DataTorn: "torn", DataZeroed: "zeroed"}

func (d Data) String() string {
	if int(d) < len(dataNames) {
		return dataNames[d]
	}
	return fmt.Sprintf("Data(%d)", uint8(d))
}

// Mode says what of the volatile state survives a Restart: durable state
// always does.
type Mode struct {
	// Entries is how many of the name changes (create, rename, remove)
	// not yet made durable by SyncDir survive, counted in the order they
	// were made: 0 none, and any number at least the pending count all of
	// them. A journaling file system commits them in order, so a later
	// change never survives without the earlier ones.
	Entries int
	// Data is what survives of unsynced file contents; the same for every
	// file.
	Data Data
}

func (m Mode) String() string {
	return fmt.Sprintf("name changes kept: %d, unsynced data %v", m.Entries, m.Data)
}

// Modes returns every Mode that gives a different state for f as it is
// now: each count of surviving name changes from none to all, each with
// every Data if some file has unsynced content.
func (f *FS) Modes() []Mode {
	f.mu.Lock()
	defer f.mu.Unlock()
	datas := []Data{DataLost}
	if f.anyDirty() {
		datas = []Data{DataLost, DataKept, DataTorn, DataZeroed}
	}
	modes := make([]Mode, 0, (len(f.pending)+1)*len(datas))
	for n := 0; n <= len(f.pending); n++ {
		for _, d := range datas {
			modes = append(modes, Mode{Entries: n, Data: d})
		}
	}
	return modes
}

// anyDirty reports whether a file that can be named after a restart has
// unsynced content. Called with f.mu held.
func (f *FS) anyDirty() bool {
	for _, ino := range f.durable {
		if ino.dirty() {
			return true
		}
	}
	for _, op := range f.pending {
		if op.ino.dirty() {
			return true
		}
	}
	return false
}

// Restart returns a new FS holding what the machine finds when it comes
// back after a crash (or a power cut) at this moment: the durable names
// plus the first m.Entries pending name changes, each file holding its
// synced content plus what m.Data says of the rest. Everything in the new
// FS is durable; it has no crash or faults set and counts steps from 0.
// f itself is not changed.
func (f *FS) Restart(m Mode) *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns := maps.Clone(f.durable)
	for i, op := range f.pending {
		if i >= m.Entries {
			break
		}
		op.apply(ns)
	}
	after := New()
	made := map[*inode]*inode{} // keep hard links linked
	for name, ino := range ns {
		n := made[ino]
		if n == nil {
			b := ino.survivor(m.Data)
			n = &inode{data: b, synced: bytes.Clone(b)}
			made[ino] = n
		}
		after.live[name] = n
		after.durable[name] = n
	}
	return after
}

// survivor returns the content of n after a crash.
func (n *inode) survivor(d Data) []byte {
	if !n.dirty() {
		return bytes.Clone(n.synced)
	}
	switch d {
	case DataKept:
		return bytes.Clone(n.data)
	case DataTorn:
		return bytes.Clone(n.data[:len(n.data)/2])
	case DataZeroed:
		return make([]byte, len(n.data))
	}
	return bytes.Clone(n.synced)
}
