package journal

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/rewardpool/rewardpool/internal/fsys"
	"github.com/rewardpool/rewardpool/wal"
)

// recover reads every segment, oldest first, into j.redo and j.ckpt. A
// frame that does not check out ends the data; in the last segment that is
// a torn round (cut here) unless a later round follows it, which is damage.
func (j *Journal) recover() error {
	ents, err := j.fs.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("journal: read %s: %w", j.dir, err)
	}
	var idxs []uint64
	for _, e := range ents {
		if idx, ok := parseSegName(e.Name()); ok {
			idxs = append(idxs, idx)
		} else if filepath.Ext(e.Name()) == ".tmp" {
			fsys.Remove(j.fs, filepath.Join(j.dir, e.Name())) // an unfinished prepare
		}
	}
	for i, idx := range idxs {
		name := segName(idx)
		data, err := fsys.ReadFile(j.fs, filepath.Join(j.dir, name))
		if err != nil {
			return fmt.Errorf("journal: read %s: %w", name, err)
		}
		seg := &segInfo{idx: idx, name: name, maxSeq: map[string]uint64{}}
		j.segs = append(j.segs, seg)
		off := 0
		for off < len(data) {
			body, size, ok := parseFrame(data[off:], j.seed)
			if !ok {
				break
			}
			round, entries, err := decodeBody(body)
			if err != nil {
				return fmt.Errorf("%w: segment %s offset %d: %w", ErrCorrupt, name, off, err)
			}
			if j.round != 0 && round != j.round+1 {
				return fmt.Errorf("%w: segment %s offset %d: round %d follows round %d", ErrCorrupt, name, off, round, j.round)
			}
			j.round = round
			if err := j.replayEntries(seg, entries); err != nil {
				return fmt.Errorf("%w: segment %s offset %d: %w", ErrCorrupt, name, off, err)
			}
			off += size
		}
		if off >= len(data) {
			continue
		}
		if i < len(idxs)-1 {
			// A sealed segment ends in zeros: its rounds were all durable
			// before the next segment's first round was written. Unless no
			// later segment holds a round: those are only prepared ahead
			// (zero-filled in the background), this one was still being
			// written, and its bad tail is a torn round like any other.
			if allZero(data[off:]) {
				continue
			}
			used, err := j.laterSegmentUsed(idxs[i+1:])
			if err != nil {
				return err
			}
			if used != "" {
				return fmt.Errorf("%w: segment %s offset %d: a damaged round before segment %s", ErrCorrupt, name, off, used)
			}
		}
		if later := j.laterRound(data, off); later > 0 {
			return fmt.Errorf("%w: segment %s offset %d: a damaged round, and round %d after it at offset %d", ErrCorrupt, name, off, j.round+1, later)
		}
		if !allZero(data[off:]) {
			j.log.Warn("journal: cutting a torn last round", "segment", name, "offset", off, "round", j.round+1)
			if err := fsys.TruncateSync(j.fs, filepath.Join(j.dir, name), int64(off)); err != nil {
				return fmt.Errorf("journal: cut %s at %d: %w", name, off, err)
			}
		}
	}
	if len(j.redo) > 0 {
		j.known = map[string]bool{}
		for p := range j.redo {
			j.known[p] = true
		}
	}
	for p, st := range j.redo {
		st.drop()
		if len(st.batches) == 0 {
			delete(j.redo, p)
		}
	}
	return nil
}

// laterSegmentUsed returns the name of the first of idxs that holds
// anything but zeros, "" if they are all unused.
func (j *Journal) laterSegmentUsed(idxs []uint64) (string, error) {
	for _, idx := range idxs {
		name := segName(idx)
		data, err := fsys.ReadFile(j.fs, filepath.Join(j.dir, name))
		if err != nil {
			return "", fmt.Errorf("journal: read %s: %w", name, err)
		}
		if !allZero(data) {
			return name, nil
		}
	}
	return "", nil
}

// laterRound returns the offset of a valid frame after off whose round is
// past the last good one, 0 if there is none. Rounds are written one after
// another, each only once the one before is durable, so such a frame means
// the bad one was durable once: damage, not a torn write.
func (j *Journal) laterRound(data []byte, off int) int {
	for o := off + sectorSize; o+frameHeader <= len(data); o += sectorSize {
		body, _, ok := parseFrame(data[o:], j.seed)
		if !ok {
			continue
		}
		if round, _, err := decodeBody(body); err == nil && round > j.round {
			return o
		}
	}
	return 0
}

func allZero(p []byte) bool {
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// replayEntries applies one recovered round to the recovery state.
func (j *Journal) replayEntries(seg *segInfo, entries []entry) error {
	for _, e := range entries {
		st := j.redo[e.pool]
		if st == nil {
			st = &redoState{}
			j.redo[e.pool] = st
		}
		switch e.typ {
		case entryBatch:
			last := e.recs[len(e.recs)-1].Seq
			if n := len(st.batches); n > 0 {
				prev := st.batches[n-1]
				if want := prev[len(prev)-1].Seq + 1; e.seq != want {
					return fmt.Errorf("pool %q: batch from seq %d follows one ending at %d", e.pool, e.seq, want-1)
				}
			}
			st.batches = append(st.batches, e.recs)
			seg.maxSeq[e.pool] = max(seg.maxSeq[e.pool], last)
		case entryCheckpoint:
			st.ckpt = max(st.ckpt, e.seq)
			j.ckpt[e.pool] = max(j.ckpt[e.pool], e.seq)
			st.drop()
		case entryReset:
			st.ckpt, st.batches = e.seq, nil
			j.ckpt[e.pool] = e.seq
			for _, s := range j.segs {
				delete(s.maxSeq, e.pool)
			}
		}
	}
	return nil
}

// drop forgets the batches the checkpoint covers.
func (st *redoState) drop() {
	i := 0
	for i < len(st.batches) && st.batches[i][len(st.batches[i])-1].Seq <= st.ckpt {
		i++
	}
	st.batches = st.batches[i:]
}

// startSegment opens a fresh segment for this run's rounds: an old last
// segment is never appended to, so a torn round cut above stays the end of
// its segment.
func (j *Journal) startSegment() error {
	idx := uint64(1)
	if n := len(j.segs); n > 0 {
		idx = j.segs[n-1].idx + 1
	}
	j.prep = make(chan prepared, 1)
	go j.prepare(idx, j.opts.SegmentSize)
	return j.rotate()
}

// rotate switches to the prepared segment and starts preparing the next.
func (j *Journal) rotate() error {
	if j.prep == nil {
		return fmt.Errorf("journal: no next segment (an earlier one failed)")
	}
	p := <-j.prep
	if p.err != nil {
		j.prep = nil // nothing is preparing now; Close must not wait
		return p.err
	}
	if j.afile != nil {
		j.afile.Close()
	}
	j.afile, j.off, j.size, j.activeName = p.f, 0, p.size, p.name
	j.mu.Lock()
	j.segs = append(j.segs, &segInfo{idx: p.idx, name: p.name, maxSeq: map[string]uint64{}})
	j.mu.Unlock()
	go j.prepare(p.idx+1, j.opts.SegmentSize)
	return nil
}

// prepare creates segment idx zero-filled and durable, off the commit path:
// rounds then overwrite blocks that exist, so an fdatasync has no extent
// metadata to commit.
func (j *Journal) prepare(idx uint64, size int64) {
	name := segName(idx)
	p := prepared{idx: idx, name: name, size: size}
	p.f, p.err = j.create(name, size)
	j.prep <- p
}

func (j *Journal) create(name string, size int64) (fsys.File, error) {
	path := filepath.Join(j.dir, name)
	tmp := path + ".tmp"
	f, err := j.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal: create %s: %w", name, err)
	}
	zeros := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size && err == nil; off += int64(len(zeros)) {
		_, err = f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = fsys.Rename(j.fs, tmp, path)
	}
	if err != nil {
		f.Close()
		j.fs.Remove(tmp)
		return nil, fmt.Errorf("journal: prepare %s: %w", name, err)
	}
	return f, nil
}

// Redo brings a pool's own log up to date with the journal before the pool
// opens it: the log is cut after the record just before the journal's
// first batch for it (the log holds everything up to there durably;
// anything it has beyond was written but never acknowledged, or is the
// same batch again), then the journal's batches are appended and fsynced.
// It returns how many records it appended: 0 when the journal holds
// nothing newer than the pool's checkpoint.
func (j *Journal) Redo(pool, logDir string, opts wal.Options) (n int, err error) {
	j.mu.Lock()
	st := j.redo[pool]
	delete(j.redo, pool)
	j.mu.Unlock()
	if st == nil || len(st.batches) == 0 {
		return 0, nil
	}
	defer func() {
		if err != nil {
			// The log may now lack what was cut: a retry must redo it all.
			j.mu.Lock()
			j.redo[pool] = st
			j.mu.Unlock()
		}
	}()
	from := st.batches[0][0].Seq
	if err := wal.CutAfter(logDir, from-1, opts); err != nil {
		return 0, fmt.Errorf("journal: redo %q: cut its log after seq %d: %w", pool, from-1, err)
	}
	l, err := wal.Open(logDir, opts)
	if err != nil {
		return 0, fmt.Errorf("journal: redo %q: %w", pool, err)
	}
	if last := l.LastSeq(); last != from-1 && last != 0 {
		l.Close()
		return 0, fmt.Errorf("%w: pool %q: its log ends at seq %d, the journal continues at %d", ErrCorrupt, pool, last, from)
	}
	for _, b := range st.batches {
		if err := l.Append(b); err != nil {
			l.Close()
			return n, fmt.Errorf("journal: redo %q: append seq %d: %w", pool, b[0].Seq, err)
		}
		n += len(b)
	}
	err = l.Sync()
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("journal: redo %q: %w", pool, err)
	}
	return n, nil
}

// Pending reports whether the journal holds batches for pool that Redo
// has not applied yet.
func (j *Journal) Pending(pool string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.redo[pool] != nil
}

// loadSeed reads the journal's checksum seed, making one for a journal
// that has no segment yet.
func (j *Journal) loadSeed() error {
	path := filepath.Join(j.dir, "SEED")
	data, err := fsys.ReadFile(j.fs, path)
	if err == nil {
		v, perr := strconv.ParseUint(strings.TrimSpace(string(data)), 16, 32)
		if perr != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, perr)
		}
		j.seed = uint32(v)
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal: read %s: %w", path, err)
	}
	ents, err := j.fs.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("journal: read %s: %w", j.dir, err)
	}
	for _, e := range ents {
		if _, ok := parseSegName(e.Name()); ok {
			return fmt.Errorf("%w: %s holds segments but no SEED: their checksums cannot be checked", ErrCorrupt, j.dir)
		}
	}
	var b [4]byte
	if _, err := crand.Read(b[:]); err != nil {
		return fmt.Errorf("journal: seed: %w", err)
	}
	j.seed = binary.LittleEndian.Uint32(b[:])
	if err := fsys.WriteFileAtomic(j.fs, path, []byte(fmt.Sprintf("%08x\n", j.seed)), 0o600); err != nil {
		return fmt.Errorf("journal: write %s: %w", path, err)
	}
	return nil
}

// Segments lists the segment files in dir (none if dir does not exist).
// A journal that closed with every pool detached leaves none.
func Segments(dir string) []string {
	ents, err := fsys.OS.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if _, ok := parseSegName(e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	return names
}

// Unclaimed lists the pools whose batches the journal holds but whose Redo
// has not run: pools not opened in this run. Their segments cannot be
// deleted until they are opened, or forgotten (Forget).
func (j *Journal) Unclaimed() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var names []string
	for p := range j.redo {
		names = append(names, p)
	}
	sort.Strings(names)
	return names
}
