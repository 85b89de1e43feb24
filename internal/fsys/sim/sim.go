// Package sim is a power-loss simulator: an in-memory fsys.FS that keeps,
// for every file and directory, what is durable apart from what was only
// written, and on PowerCut forgets whatever was not fsynced.
//
// The model of a power cut (the assumptions wal/doc.go argues from, and
// etcd's torn-write rule):
//
//   - File data is kept or lost per 512-byte sector. A sector written since
//     the file's last Sync/Datasync comes back either as it was written or
//     as it was at that sync (zeros beyond the synced size): an unsynced
//     write can be torn at any sector boundary, in any order.
//   - A file's size comes back as either its synced or its current size.
//   - Directory entries created, renamed or removed since the directory's
//     last SyncDir come back as a random prefix of those changes, in order
//     (a journaling file system commits metadata in order): none, some or
//     all. A file's fsync does not make its name durable.
//
// It can also fail operations on demand (EIO, ENOSPC: see Fault and
// Capacity), flip bits in durable data, and die at a chosen operation
// (CrashAfter), after which every call fails, as a process that lost power.
package sim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// SectorSize is the unit in which unsynced file data survives or not.
const SectorSize = 512

// ErrDead is returned by every call after the power was cut.
var ErrDead = errors.New("sim: power is off")

// Op names an operation for Fault.
type Op string

const (
	OpOpen     Op = "open"     // OpenFile with O_CREATE of a new file
	OpWrite    Op = "write"    // Write, WriteAt
	OpSync     Op = "sync"     // Sync, Datasync
	OpTruncate Op = "truncate" // Truncate
	OpAllocate Op = "allocate" // Allocate
	OpMkdir    Op = "mkdir"
	OpRename   Op = "rename"
	OpRemove   Op = "remove"
	OpSyncDir  Op = "syncdir"
)

// FS is the simulated file system. The zero value is not usable: call New.
type FS struct {
	mu   sync.Mutex
	root *inode
	rng  *rand.Rand
	dead bool
	now  time.Time

	// crashAfter counts down the mutating operations left before the power
	// goes; 0 means never.
	crashAfter int
	held       int // > 0: operations do not count down to the crash
	crashed    chan struct{}
	cut        *FS // the state after the cut, computed when the power went

	fault    func(op Op, name string) error
	trace    func(op Op, name string, err error)
	capacity int64 // bytes of file data allowed; 0: unlimited
	locks    map[string]bool
}

type inode struct {
	dir bool
	// files
	data    []byte // what reads see
	durable []byte // what survives a power cut
	// directories
	entries    map[string]*inode
	durEntries map[string]*inode
	journal    []dirOp // entry changes since the last SyncDir, in order
}

// dirOp is one entry change, or two for a rename inside one directory,
// which a power cut keeps or drops as a whole.
type dirOp struct {
	name string
	node *inode // nil: removal
	also *dirOp // the other half of a rename
}

// New returns an empty file system (just "/") whose power cuts draw their
// randomness from seed.
func New(seed uint64) *FS {
	return &FS{
		root:    newDir(),
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		crashed: make(chan struct{}),
		locks:   map[string]bool{},
		now:     time.Unix(1_700_000_000, 0),
	}
}

func newDir() *inode {
	return &inode{dir: true, entries: map[string]*inode{}, durEntries: map[string]*inode{}}
}

// SetFault installs fn, called before every mutating operation; an error it
// returns fails that operation (nothing is changed). Use it for EIO or
// ENOSPC on demand. nil removes it.
func (f *FS) SetFault(fn func(op Op, name string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fn
}

// SetTrace installs fn, called after every mutating operation with its
// outcome: for debugging a failing seed. nil removes it.
func (f *FS) SetTrace(fn func(op Op, name string, err error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trace = fn
}

// SetCapacity limits the bytes of file data the file system holds: a write
// or Allocate past it fails with ENOSPC. 0 means unlimited.
func (f *FS) SetCapacity(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.capacity = n
}

// CrashAfter cuts the power after n more mutating operations (the nth
// itself does not happen). From then on every call fails with ErrDead and
// Crashed is closed; AfterCrash returns the file system as it came back.
func (f *FS) CrashAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashAfter = n
}

// Hold runs fn with the CrashAfter countdown and the fault hook held: a
// test's own checks then cannot be where the power goes or a fault fires.
func (f *FS) Hold(fn func()) {
	f.mu.Lock()
	f.held++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.held--
		f.mu.Unlock()
	}()
	fn()
}

// Crashed is closed once the power was cut.
func (f *FS) Crashed() <-chan struct{} { return f.crashed }

// AfterCrash returns the file system as it came back after the cut made by
// CrashAfter, or nil if the power is still on.
func (f *FS) AfterCrash() *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut
}

// PowerCut cuts the power now and returns the file system as it comes back:
// a new FS holding only what survived. The old one is dead.
func (f *FS) PowerCut() *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dead {
		f.die()
	}
	return f.cut
}

// die computes the surviving state and kills f. Called with f.mu held.
func (f *FS) die() {
	f.dead = true
	seen := map[*inode]*inode{}
	root := f.survive(f.root, seen)
	f.cut = &FS{root: root, rng: rand.New(rand.NewPCG(f.rng.Uint64(), f.rng.Uint64())),
		crashed: make(chan struct{}), locks: map[string]bool{}, now: f.now, capacity: f.capacity, trace: f.trace}
	close(f.crashed)
}

// survive returns the durable copy of n after a power cut.
func (f *FS) survive(n *inode, seen map[*inode]*inode) *inode {
	if c, ok := seen[n]; ok {
		return c
	}
	if n.dir {
		c := newDir()
		seen[n] = c
		ents := maps(n.durEntries)
		keep := 0
		if len(n.journal) > 0 {
			keep = f.rng.IntN(len(n.journal) + 1)
		}
		for _, op := range n.journal[:keep] {
			for o := &op; o != nil; o = o.also {
				if o.node == nil {
					delete(ents, o.name)
				} else {
					ents[o.name] = o.node
				}
			}
		}
		for name, child := range ents {
			cc := f.survive(child, seen)
			c.entries[name] = cc
			c.durEntries[name] = cc
		}
		return c
	}
	c := &inode{}
	seen[n] = c
	size := len(n.durable)
	if len(n.data) != size && f.rng.IntN(2) == 0 {
		size = len(n.data)
	}
	out := make([]byte, size)
	copy(out, n.durable)
	for s := 0; s < size; s += SectorSize {
		e := min(s+SectorSize, size)
		if e > len(n.data) {
			e = len(n.data)
		}
		if s >= e {
			continue
		}
		var old []byte
		if s < len(n.durable) {
			old = n.durable[s:min(e, len(n.durable))]
		}
		changed := len(old) != e-s || string(old) != string(n.data[s:e])
		if changed && f.rng.IntN(2) == 0 {
			copy(out[s:e], n.data[s:e])
		}
	}
	c.data = out
	c.durable = slices.Clone(out)
	return c
}

func maps(m map[string]*inode) map[string]*inode {
	c := make(map[string]*inode, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// FlipBit flips one bit of the durable (and current) content of a file,
// for corruption tests. off must be inside the file.
func (f *FS) FlipBit(name string, off int64, bit uint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup(name)
	if err != nil {
		return err
	}
	if n.dir || off < 0 || off >= int64(len(n.data)) {
		return fmt.Errorf("sim: flip %s at %d: out of range", name, off)
	}
	n.data[off] ^= 1 << (bit % 8)
	if off < int64(len(n.durable)) {
		n.durable[off] ^= 1 << (bit % 8)
	}
	return nil
}

// step runs before each mutating operation: the crash countdown, then the
// fault hook. Called with f.mu held.
func (f *FS) step(op Op, name string) (err error) {
	if f.trace != nil {
		defer func() { f.trace(op, name, err) }()
	}
	if f.dead {
		return ErrDead
	}
	if f.crashAfter > 0 && f.held == 0 {
		f.crashAfter--
		if f.crashAfter == 0 {
			f.die()
			return ErrDead
		}
	}
	if f.fault != nil && f.held == 0 {
		if err := f.fault(op, name); err != nil {
			return err
		}
	}
	return nil
}

func clean(name string) string {
	name = filepath.ToSlash(filepath.Clean(name))
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	return name
}

// lookup finds the inode at name. Called with f.mu held.
func (f *FS) lookup(name string) (*inode, error) {
	name = clean(name)
	n := f.root
	if name == "/" {
		return n, nil
	}
	for _, part := range strings.Split(name[1:], "/") {
		if !n.dir {
			return nil, syscall.ENOTDIR
		}
		c, ok := n.entries[part]
		if !ok {
			return nil, fs.ErrNotExist
		}
		n = c
	}
	return n, nil
}

// parent finds the directory holding name and name's last element.
func (f *FS) parent(name string) (*inode, string, error) {
	name = clean(name)
	if name == "/" {
		return nil, "", fs.ErrExist
	}
	dir, base := path.Split(name)
	d, err := f.lookup(dir)
	if err != nil {
		return nil, "", err
	}
	if !d.dir {
		return nil, "", syscall.ENOTDIR
	}
	return d, base, nil
}

func (d *inode) link(name string, n *inode) {
	d.entries[name] = n
	d.journal = append(d.journal, dirOp{name: name, node: n})
}

func (d *inode) unlink(name string) {
	delete(d.entries, name)
	d.journal = append(d.journal, dirOp{name: name})
}

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

// used is the file data held, for Capacity. Called with f.mu held.
func (f *FS) used() int64 {
	var n int64
	seen := map[*inode]bool{}
	var walk func(*inode)
	walk = func(d *inode) {
		if seen[d] {
			return
		}
		seen[d] = true
		if !d.dir {
			n += int64(max(len(d.data), len(d.durable)))
			return
		}
		for _, c := range d.entries {
			walk(c)
		}
	}
	walk(f.root)
	return n
}

// grow checks that a file may grow from old to new bytes.
func (f *FS) grow(old, new int) error {
	if f.capacity > 0 && new > old && f.used()+int64(new-old) > f.capacity {
		return syscall.ENOSPC
	}
	return nil
}

// OpenFile implements fsys.FS. Supported flags: O_RDONLY, O_RDWR, O_WRONLY,
// O_CREATE, O_EXCL, O_TRUNC, O_APPEND.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (fsys.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return nil, pathErr("open", name, ErrDead)
	}
	n, err := f.lookup(name)
	switch {
	case errors.Is(err, fs.ErrNotExist) && flag&os.O_CREATE != 0:
		d, base, perr := f.parent(name)
		if perr != nil {
			return nil, pathErr("open", name, perr)
		}
		if err := f.step(OpOpen, name); err != nil {
			return nil, pathErr("open", name, err)
		}
		n = &inode{}
		d.link(base, n)
	case err != nil:
		return nil, pathErr("open", name, err)
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, pathErr("open", name, fs.ErrExist)
	}
	if n.dir && flag&(os.O_WRONLY|os.O_RDWR) != 0 {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	if flag&os.O_TRUNC != 0 && len(n.data) > 0 {
		if err := f.step(OpTruncate, name); err != nil {
			return nil, pathErr("open", name, err)
		}
		n.data = n.data[:0]
	}
	return &file{fs: f, n: n, name: clean(name), flag: flag}, nil
}

// Stat implements fsys.FS.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return nil, pathErr("stat", name, ErrDead)
	}
	n, err := f.lookup(name)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return info{name: path.Base(clean(name)), n: n, size: int64(len(n.data)), mod: f.now}, nil
}

// ReadDir implements fsys.FS.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return nil, pathErr("readdir", name, ErrDead)
	}
	n, err := f.lookup(name)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	if !n.dir {
		return nil, pathErr("readdir", name, syscall.ENOTDIR)
	}
	out := make([]fs.DirEntry, 0, len(n.entries))
	for base, c := range n.entries {
		out = append(out, fs.FileInfoToDirEntry(info{name: base, n: c, size: int64(len(c.data)), mod: f.now}))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// Mkdir implements fsys.FS.
func (f *FS) Mkdir(name string, perm fs.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return pathErr("mkdir", name, ErrDead)
	}
	d, base, err := f.parent(name)
	if err != nil {
		return pathErr("mkdir", name, err)
	}
	if _, ok := d.entries[base]; ok {
		return pathErr("mkdir", name, fs.ErrExist)
	}
	if err := f.step(OpMkdir, name); err != nil {
		return pathErr("mkdir", name, err)
	}
	d.link(base, newDir())
	return nil
}

// Rename implements fsys.FS. Renaming over an existing file replaces it;
// over a directory is refused.
func (f *FS) Rename(oldpath, newpath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return pathErr("rename", oldpath, ErrDead)
	}
	od, ob, err := f.parent(oldpath)
	if err != nil {
		return pathErr("rename", oldpath, err)
	}
	n, ok := od.entries[ob]
	if !ok {
		return pathErr("rename", oldpath, fs.ErrNotExist)
	}
	nd, nb, err := f.parent(newpath)
	if err != nil {
		return pathErr("rename", newpath, err)
	}
	if t, ok := nd.entries[nb]; ok && t.dir {
		return pathErr("rename", newpath, fs.ErrExist)
	}
	if err := f.step(OpRename, oldpath); err != nil {
		return pathErr("rename", oldpath, err)
	}
	if od == nd {
		delete(od.entries, ob)
		od.entries[nb] = n
		od.journal = append(od.journal, dirOp{name: ob, also: &dirOp{name: nb, node: n}})
		return nil
	}
	// Across directories the two entries are journalled apart: a cut may
	// keep either, both or neither.
	od.unlink(ob)
	nd.link(nb, n)
	return nil
}

// Remove implements fsys.FS.
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return pathErr("remove", name, ErrDead)
	}
	d, base, err := f.parent(name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	n, ok := d.entries[base]
	if !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	if n.dir && len(n.entries) > 0 {
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	if err := f.step(OpRemove, name); err != nil {
		return pathErr("remove", name, err)
	}
	d.unlink(base)
	return nil
}

// SyncDir implements fsys.FS.
func (f *FS) SyncDir(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return pathErr("sync", name, ErrDead)
	}
	n, err := f.lookup(name)
	if err != nil {
		return pathErr("sync", name, err)
	}
	if !n.dir {
		return pathErr("sync", name, syscall.ENOTDIR)
	}
	if err := f.step(OpSyncDir, name); err != nil {
		return pathErr("sync", name, err)
	}
	n.durEntries = maps(n.entries)
	n.journal = nil
	return nil
}

// Lock implements fsys.FS with an in-memory lock table (the file is
// created, as flock does).
func (f *FS) Lock(name string) (io.Closer, error) {
	h, err := f.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	h.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	key := clean(name)
	if f.locks[key] {
		return nil, fmt.Errorf("%w: %s", fsys.ErrLocked, name)
	}
	f.locks[key] = true
	return &lock{fs: f, key: key}, nil
}

type lock struct {
	fs   *FS
	key  string
	once sync.Once
}

func (l *lock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		delete(l.fs.locks, l.key)
		l.fs.mu.Unlock()
	})
	return nil
}

type info struct {
	name string
	n    *inode
	size int64
	mod  time.Time
}

func (i info) Name() string { return i.name }
func (i info) Size() int64  { return i.size }
func (i info) Mode() fs.FileMode {
	if i.n.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i info) ModTime() time.Time { return i.mod }
func (i info) IsDir() bool        { return i.n.dir }
func (i info) Sys() any           { return nil }

// file is an open handle. It refers to the inode, so it keeps working after
// a rename or removal, as on Unix.
type file struct {
	fs     *FS
	n      *inode
	name   string
	flag   int
	off    int64
	closed bool
}

func (h *file) Name() string { return h.name }

func (h *file) check(op string) error {
	if h.closed {
		return pathErr(op, h.name, fs.ErrClosed)
	}
	if h.fs.dead {
		return pathErr(op, h.name, ErrDead)
	}
	return nil
}

func (h *file) Read(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	n, err := h.readAt(p, h.off)
	h.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.readAt(p, off)
}

func (h *file) readAt(p []byte, off int64) (int, error) {
	if err := h.check("read"); err != nil {
		return 0, err
	}
	if off >= int64(len(h.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *file) Write(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	off := h.off
	if h.flag&os.O_APPEND != 0 {
		off = int64(len(h.n.data))
	}
	n, err := h.writeAt(p, off)
	h.off = off + int64(n)
	return n, err
}

func (h *file) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.writeAt(p, off)
}

func (h *file) writeAt(p []byte, off int64) (int, error) {
	if err := h.check("write"); err != nil {
		return 0, err
	}
	if h.flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return 0, pathErr("write", h.name, syscall.EBADF)
	}
	if err := h.fs.step(OpWrite, h.name); err != nil {
		return 0, pathErr("write", h.name, err)
	}
	end := int(off) + len(p)
	if end > len(h.n.data) {
		if err := h.fs.grow(len(h.n.data), end); err != nil {
			return 0, pathErr("write", h.name, err)
		}
		h.n.data = append(h.n.data, make([]byte, end-len(h.n.data))...)
	}
	copy(h.n.data[off:], p)
	return len(p), nil
}

func (h *file) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return pathErr("close", h.name, fs.ErrClosed)
	}
	h.closed = true
	return nil
}

func (h *file) Stat() (fs.FileInfo, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("stat"); err != nil {
		return nil, err
	}
	return info{name: path.Base(h.name), n: h.n, size: int64(len(h.n.data)), mod: h.fs.now}, nil
}

func (h *file) Sync() error { return h.sync("fsync") }

func (h *file) Datasync() error { return h.sync("fdatasync") }

func (h *file) sync(op string) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(op); err != nil {
		return err
	}
	if err := h.fs.step(OpSync, h.name); err != nil {
		return pathErr(op, h.name, err)
	}
	h.n.durable = append(h.n.durable[:0], h.n.data...)
	return nil
}

func (h *file) Truncate(size int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("truncate"); err != nil {
		return err
	}
	if err := h.fs.step(OpTruncate, h.name); err != nil {
		return pathErr("truncate", h.name, err)
	}
	if int(size) > len(h.n.data) {
		if err := h.fs.grow(len(h.n.data), int(size)); err != nil {
			return pathErr("truncate", h.name, err)
		}
		h.n.data = append(h.n.data, make([]byte, int(size)-len(h.n.data))...)
	} else {
		h.n.data = h.n.data[:size]
	}
	return nil
}

func (h *file) Allocate(size int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("fallocate"); err != nil {
		return err
	}
	if err := h.fs.step(OpAllocate, h.name); err != nil {
		return pathErr("fallocate", h.name, err)
	}
	if int(size) > len(h.n.data) {
		if err := h.fs.grow(len(h.n.data), int(size)); err != nil {
			return pathErr("fallocate", h.name, err)
		}
		h.n.data = append(h.n.data, make([]byte, int(size)-len(h.n.data))...)
	}
	return nil
}

var _ fsys.FS = (*FS)(nil)
