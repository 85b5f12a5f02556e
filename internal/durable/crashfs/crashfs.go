package crashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/peerq/peerq/internal/durable"
)

// ErrCrashed is the error of every step from the crash on: the process is
// dead and nothing it does reaches the disk.
var ErrCrashed = errors.New("crashfs: crashed")

// FS is an in-memory durable.FS that remembers what would survive a crash.
// It is safe for concurrent use, but a workload that Explore drives must
// take its steps in a deterministic order, so from one goroutine.
//
// Directories are implicit: every directory exists and is empty until a
// file is created in it.
type FS struct {
	mu sync.Mutex

	live    map[string]*inode // what the running process sees
	durable map[string]*inode // the names that survive a crash
	pending []*dirOp          // name changes not yet made durable, in order

	log      []string // every mutating step taken, described
	crashAt  int      // 0: never
	crashed  bool
	faults   map[int]error
	readOnly bool
	full     bool
	readErr  map[string]error
}

var _ durable.FS = (*FS)(nil)

// inode is a file's content. A name points to an inode; a rename moves the
// pointer, so a name sees the old file or the new one, never a mix.
type inode struct {
	data   []byte // as written: what the process reads
	synced []byte // as of the last fsync: what surely survives a crash
}

func (n *inode) dirty() bool { return !bytes.Equal(n.data, n.synced) }

type opKind uint8

const (
	opLink opKind = iota
	opUnlink
	opRename
)

// dirOp is a change of names that survives a crash only once every
// directory it touches has been fsynced since.
type dirOp struct {
	kind     opKind
	name, to string
	ino      *inode
	unsynced []string
}

func (op *dirOp) String() string {
	switch op.kind {
	case opLink:
		return "create " + op.name
	case opUnlink:
		return "remove " + op.name
	}
	return "rename " + op.name + " → " + op.to
}

// apply makes op's change in ns. A name is removed only if it still points
// to op's inode: a later change, made durable first by an fsync of another
// directory, may have reused it.
func (op *dirOp) apply(ns map[string]*inode) {
	switch op.kind {
	case opLink:
		ns[op.name] = op.ino
	case opUnlink:
		if ns[op.name] == op.ino {
			delete(ns, op.name)
		}
	case opRename:
		if ns[op.name] == op.ino {
			delete(ns, op.name)
		}
		ns[op.to] = op.ino
	}
}

// New returns an empty file system.
func New() *FS {
	return &FS{
		live:    map[string]*inode{},
		durable: map[string]*inode{},
		faults:  map[int]error{},
		readErr: map[string]error{},
	}
}

// Put makes name hold data, durably, as if written and synced long ago. It
// is not a step: use it to set up the state a test starts from (a corrupt
// file, a leftover path.prev from older code).
func (f *FS) Put(name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	ino := &inode{data: bytes.Clone(data), synced: bytes.Clone(data)}
	f.live[name] = ino
	f.durable[name] = ino
}

// CrashAt makes step k (counted from 1 since New) and every later step
// fail with ErrCrashed, as if the process died just before step k. Once
// crashed, ReadFile fails too. k ≤ 0 cancels it.
func (f *FS) CrashAt(k int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashAt = k
}

// FailAt makes step k alone fail with err (wrapped in an *fs.PathError or
// *os.LinkError, as the os package does), without effect; the file system
// goes on after it. Typical errors are syscall.ENOSPC, syscall.EROFS and
// syscall.EIO.
func (f *FS) FailAt(k int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[k] = err
}

// SetReadOnly makes every later mutating step fail with syscall.EROFS, as
// a file system remounted read-only after errors does, until
// SetReadOnly(false).
func (f *FS) SetReadOnly(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readOnly = on
}

// SetFull makes every later Create, and every Write of at least one byte,
// fail with syscall.ENOSPC until SetFull(false). Renames, removes and
// fsyncs still work, as on a real full disk.
func (f *FS) SetFull(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.full = on
}

// SetReadErr makes ReadFile(name) fail with err (syscall.EACCES, say), or
// work again if err is nil.
func (f *FS) SetReadErr(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if err == nil {
		delete(f.readErr, name)
		return
	}
	f.readErr[name] = err
}

// Steps returns the number of mutating steps taken so far, the crashed
// one included.
func (f *FS) Steps() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.log)
}

// Step describes step k (counted from 1), such as "rename /d/x.tmp →
// /d/x", or returns "" if there was no such step.
func (f *FS) Step(k int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k < 1 || k > len(f.log) {
		return ""
	}
	return f.log[k-1]
}

// Crashed reports whether the crash set by CrashAt has happened.
func (f *FS) Crashed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashed
}

// Names returns the names the running process sees, sorted.
func (f *FS) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(func(yield func(string) bool) {
		for name := range f.live {
			if !yield(name) {
				return
			}
		}
	})
}

// String describes the state: every name with its size and whether its
// content and its name are durable, then the name changes not yet
// durable. Explore prints it when a check fails.
func (f *FS) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	names := make([]string, 0, len(f.live)+len(f.durable))
	for name := range f.live {
		names = append(names, name)
	}
	for name := range f.durable {
		if f.live[name] == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		ino, dino := f.live[name], f.durable[name]
		switch {
		case ino == nil:
			fmt.Fprintf(&b, "  %s: removed (%d bytes survive a crash)\n", name, len(dino.synced))
		default:
			state := "synced"
			if ino.dirty() {
				state = fmt.Sprintf("not synced (%d bytes synced)", len(ino.synced))
			}
			entry := "durable name"
			if dino != ino {
				entry = "name not durable"
			}
			fmt.Fprintf(&b, "  %s: %d bytes, %s, %s\n", name, len(ino.data), state, entry)
		}
	}
	for i, op := range f.pending {
		fmt.Fprintf(&b, "  pending %d: %v (fsync %s)\n", i+1, op, strings.Join(op.unsynced, ", "))
	}
	return b.String()
}

// step counts one mutating step and says whether it fails. Called with
// f.mu held.
func (f *FS) step(desc string) error {
	if f.crashed {
		return ErrCrashed
	}
	f.log = append(f.log, desc)
	k := len(f.log)
	if k == f.crashAt {
		f.crashed = true
		return ErrCrashed
	}
	if err, ok := f.faults[k]; ok {
		delete(f.faults, k)
		return err
	}
	if f.readOnly {
		return syscall.EROFS
	}
	return nil
}

func (f *FS) record(op *dirOp, dirs ...string) {
	for _, d := range dirs {
		if !slices.Contains(op.unsynced, d) {
			op.unsynced = append(op.unsynced, d)
		}
	}
	f.pending = append(f.pending, op)
}

// Create implements durable.FS.
func (f *FS) Create(name string) (durable.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if err := f.step("create " + name); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if f.full {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	ino := f.live[name]
	if ino != nil {
		// O_TRUNC: the same file, emptied; the emptying is not durable
		// until an fsync, like any other change of content.
		ino.data = nil
	} else {
		ino = &inode{}
		f.live[name] = ino
		f.record(&dirOp{kind: opLink, name: name, ino: ino}, filepath.Dir(name))
	}
	return &file{fs: f, name: name, ino: ino}, nil
}

// ReadFile implements durable.FS. It is not a step.
func (f *FS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if f.crashed {
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrCrashed}
	}
	if err := f.readErr[name]; err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	ino := f.live[name]
	if ino == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(ino.data), nil
}

// Rename implements durable.FS.
func (f *FS) Rename(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	if err := f.step("rename " + oldname + " → " + newname); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	ino := f.live[oldname]
	if ino == nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	if oldname == newname {
		return nil
	}
	delete(f.live, oldname)
	f.live[newname] = ino
	f.record(&dirOp{kind: opRename, name: oldname, to: newname, ino: ino},
		filepath.Dir(oldname), filepath.Dir(newname))
	return nil
}

// Remove implements durable.FS.
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if err := f.step("remove " + name); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	ino := f.live[name]
	if ino == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(f.live, name)
	f.record(&dirOp{kind: opUnlink, name: name, ino: ino}, filepath.Dir(name))
	return nil
}

// SyncDir implements durable.FS: the name changes in dir become durable,
// and with them, in order, every change whose directories have now all
// been fsynced.
func (f *FS) SyncDir(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir = filepath.Clean(dir)
	if err := f.step("fsync dir " + dir); err != nil {
		return &fs.PathError{Op: "sync", Path: dir, Err: err}
	}
	kept := f.pending[:0]
	for _, op := range f.pending {
		op.unsynced = slices.DeleteFunc(op.unsynced, func(d string) bool { return d == dir })
		if len(op.unsynced) == 0 {
			op.apply(f.durable)
			continue
		}
		kept = append(kept, op)
	}
	clear(f.pending[len(kept):])
	f.pending = kept
	return nil
}

// file is an open file of FS.
type file struct {
	fs     *FS
	name   string
	ino    *inode
	closed bool
}

func (h *file) Write(p []byte) (int, error) {
	f := h.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if h.closed {
		return 0, &fs.PathError{Op: "write", Path: h.name, Err: fs.ErrClosed}
	}
	if err := f.step(fmt.Sprintf("write %d bytes to %s", len(p), h.name)); err != nil {
		return 0, &fs.PathError{Op: "write", Path: h.name, Err: err}
	}
	if f.full && len(p) > 0 {
		return 0, &fs.PathError{Op: "write", Path: h.name, Err: syscall.ENOSPC}
	}
	h.ino.data = append(h.ino.data, p...)
	return len(p), nil
}

func (h *file) Sync() error {
	f := h.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if h.closed {
		return &fs.PathError{Op: "sync", Path: h.name, Err: fs.ErrClosed}
	}
	if err := f.step("fsync " + h.name); err != nil {
		return &fs.PathError{Op: "sync", Path: h.name, Err: err}
	}
	h.ino.synced = bytes.Clone(h.ino.data)
	return nil
}

func (h *file) Close() error {
	f := h.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if h.closed {
		return &fs.PathError{Op: "close", Path: h.name, Err: fs.ErrClosed}
	}
	h.closed = true // even when the step fails, as with os.File
	if err := f.step("close " + h.name); err != nil {
		return &fs.PathError{Op: "close", Path: h.name, Err: err}
	}
	return nil
}
