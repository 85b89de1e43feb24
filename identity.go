package rewardpool

import (
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rewardpool/rewardpool/internal/fsys"
)

// identityFile names the file that says a data directory was created and
// bounds every seq and request id it has ever handed out.
const identityFile = "IDENTITY"

// identity is the content of IDENTITY. A directory without one that holds
// no log and no snapshot is new; every other directory is used, and a used
// directory whose snapshot and log cannot prove its state refuses to start
// instead of being seeded again.
//
// The ceilings make ids unique whatever is later lost: the writer raises
// them (durably) before it writes a record beyond them, so no seq or request
// id above a ceiling was ever written, acknowledged or streamed. (A new
// pool's seed is written before its IDENTITY, which is created with
// ceilings above it: nothing is acknowledged or streamed before Open
// returns, and a seed that survives without IDENTITY is recovered as a
// directory written before identities existed; see create.) When records
// are lost (wal repair, an override of a lost directory), the ceilings become
// floors, and the next seq and request id start above them.
type identity struct {
	UID     string    // random, fixed at creation
	Created time.Time // when the directory was created
	Gen     uint64    // bumped at each store; the newer valid slot wins

	SeqCeiling uint64 // no record with a higher seq was ever written
	IDCeiling  uint64 // no draw with a higher request id was ever written

	// FloorSeq and FloorID, set by repair and by reseed: the next record
	// written takes a seq above FloorSeq, the next draw an id above FloorID.
	FloorSeq uint64
	FloorID  uint64
	// Reseed allows seeding a directory whose state was set aside on
	// purpose (`rewardpool wal reseed`), above the floors.
	Reseed bool
	// Written is set once the first batch is durable: from then on the
	// directory has state to prove, and an empty log without a snapshot
	// means it was lost. (A ceiling alone proves nothing: it is raised
	// before the write it covers, which a crash may cut.)
	Written bool
	// Unsynced is set while a run that answers draws before their fsync
	// (DurabilityInterval, DurabilityNone) has the directory open, and
	// cleared when it closes cleanly. Found set at Open, it means such a
	// run ended in a crash that may have lost acknowledged draws: request
	// ids continue above the ceiling.
	Unsynced bool
	// Journaled is set while a run that commits through a node journal
	// (Options.Journal) has the directory open, and cleared when it closes
	// cleanly. Found set, the last acknowledged batches may be only in the
	// journal: only an Open with the journal (which replays them) may use
	// the directory.
	Journaled bool
}

// identity slots: the file holds two copies, each one sector, written in
// turn with pwrite and fdatasync. A torn write can damage only the slot being
// written; the other still holds the previous generation.
const (
	identitySlot  = 512
	identityMagic = "rewardpool-identity v1"
	// ceilingStep is how far past the current seq or request id the writer
	// reserves, so the identity is written about once per million records.
	ceilingStep = 1 << 20
)

// errIdentityMissing: the directory has no IDENTITY file (new, or written
// before identities existed).
var errIdentityMissing = errors.New("no identity file")

func (id *identity) encode() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nuid=%s\ncreated=%s\ngen=%d\nwritten=%t\nunsynced=%t\njournaled=%t\nseq_ceiling=%d\nrequest_id_ceiling=%d\nfloor_seq=%d\nfloor_request_id=%d\nreseed=%t\n",
		identityMagic, id.UID, id.Created.UTC().Format(time.RFC3339Nano), id.Gen, id.Written, id.Unsynced, id.Journaled,
		id.SeqCeiling, id.IDCeiling, id.FloorSeq, id.FloorID, id.Reseed)
	body := b.String()
	line := fmt.Sprintf("crc=%08x", crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli)))
	out := []byte(body + line)
	for len(out) < identitySlot-1 {
		out = append(out, ' ')
	}
	return append(out, '\n')
}

func decodeIdentity(b []byte) (identity, error) {
	var id identity
	if len(b) != identitySlot {
		return id, fmt.Errorf("slot is %d bytes", len(b))
	}
	text := strings.TrimRight(string(b), " \n")
	i := strings.LastIndex(text, "crc=")
	if i < 0 {
		return id, errors.New("no checksum")
	}
	body := text[:i]
	want, err := strconv.ParseUint(text[i+4:], 16, 32)
	if err != nil || crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli)) != uint32(want) {
		return id, errors.New("checksum mismatch")
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) == 0 || lines[0] != identityMagic {
		return id, errors.New("not an identity file")
	}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, "=")
		var err error
		switch k {
		case "uid":
			id.UID = v
		case "created":
			id.Created, err = time.Parse(time.RFC3339Nano, v)
		case "gen":
			id.Gen, err = strconv.ParseUint(v, 10, 64)
		case "seq_ceiling":
			id.SeqCeiling, err = strconv.ParseUint(v, 10, 64)
		case "request_id_ceiling":
			id.IDCeiling, err = strconv.ParseUint(v, 10, 64)
		case "floor_seq":
			id.FloorSeq, err = strconv.ParseUint(v, 10, 64)
		case "floor_request_id":
			id.FloorID, err = strconv.ParseUint(v, 10, 64)
		case "reseed":
			id.Reseed, err = strconv.ParseBool(v)
		case "written":
			id.Written, err = strconv.ParseBool(v)
		case "unsynced":
			id.Unsynced, err = strconv.ParseBool(v)
		case "journaled":
			id.Journaled, err = strconv.ParseBool(v)
		}
		if err != nil {
			return id, fmt.Errorf("field %s: %w", k, err)
		}
	}
	return id, nil
}

// loadIdentity reads dir/IDENTITY: the valid slot with the highest
// generation. errIdentityMissing when there is no file.
func loadIdentity(fs fsys.FS, dir string) (identity, error) {
	path := filepath.Join(dir, identityFile)
	b, err := fsys.ReadFile(fs, path)
	if errors.Is(err, fsErrNotExist) {
		return identity{}, errIdentityMissing
	}
	if err != nil {
		return identity{}, fmt.Errorf("rewardpool: read %s: %w", path, err)
	}
	var best identity
	found := false
	var errs []error
	for s := 0; s+identitySlot <= len(b); s += identitySlot {
		id, err := decodeIdentity(b[s : s+identitySlot])
		if err != nil {
			errs = append(errs, fmt.Errorf("slot %d: %w", s/identitySlot, err))
			continue
		}
		if !found || id.Gen > best.Gen {
			best, found = id, true
		}
	}
	if !found {
		return identity{}, fmt.Errorf("%w: %s is damaged (%v): restore it from a backup or a replica's copy, "+
			"or rebuild the directory from a replica", ErrRecovery, path, errors.Join(errs...))
	}
	return best, nil
}

var fsErrNotExist = fs.ErrNotExist

// createIdentity writes a new identity atomically (both slots; temp file,
// fsync, rename, fsync dir): from here on the directory is used.
func createIdentity(fs fsys.FS, dir string, id identity) (identity, error) {
	return writeNewIdentity(fs, dir, id, fsys.WriteFileAtomic)
}

// writeNewIdentity fills in a new identity's UID, creation time and first
// generation and writes it with write: WriteFileAtomic, or WriteFileSynced
// when the caller fsyncs the directory itself (a new pool, see create).
func writeNewIdentity(fs fsys.FS, dir string, id identity,
	write func(fsys.FS, string, []byte, os.FileMode) error) (identity, error) {
	if id.UID == "" {
		var u [8]byte
		crand.Read(u[:])
		id.UID = hex.EncodeToString(u[:])
	}
	if id.Created.IsZero() {
		id.Created = time.Now()
	}
	id.Gen = 1
	slot := id.encode()
	data := append(append([]byte(nil), slot...), slot...)
	if err := write(fs, filepath.Join(dir, identityFile), data, 0o644); err != nil {
		return id, fmt.Errorf("rewardpool: create identity: %w", err)
	}
	return id, nil
}

// storeIdentity writes the next generation of id into the slot that does
// not hold the current one, and fdatasyncs it. On success id.Gen is bumped.
func storeIdentity(fs fsys.FS, dir string, id *identity) error {
	next := *id
	next.Gen++
	path := filepath.Join(dir, identityFile)
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("rewardpool: store identity: %w", err)
	}
	_, err = f.WriteAt(next.encode(), int64(next.Gen%2)*identitySlot)
	if err == nil {
		err = f.Datasync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("rewardpool: store identity: %w", err)
	}
	*id = next
	return nil
}

// markWritten records, once in the directory's life, that a batch is
// durable.
func (id *identity) markWritten(fs fsys.FS, dir string) error {
	if id.Written {
		return nil
	}
	next := *id
	next.Written = true
	if err := storeIdentity(fs, dir, &next); err != nil {
		return err
	}
	*id = next
	return nil
}

// setRun records durably how the run now opening (or closing) answers:
// before its fsync (unsynced) and through a node journal (journaled).
func (id *identity) setRun(fs fsys.FS, dir string, unsynced, journaled bool) error {
	if id.Unsynced == unsynced && id.Journaled == journaled {
		return nil
	}
	next := *id
	next.Unsynced, next.Journaled = unsynced, journaled
	if err := storeIdentity(fs, dir, &next); err != nil {
		return err
	}
	*id = next
	return nil
}

// checkJournal refuses a directory whose last run committed through a
// node journal and did not close cleanly, unless the journal is at hand.
func (id *identity) checkJournal(dir string, haveJournal bool) error {
	if id.Journaled && !haveJournal {
		return fmt.Errorf("%w: %s was last run with a node journal and did not close cleanly; "+
			"its last acknowledged batches may be only there. Open it with the journal (the server "+
			"does with group_commit: node) once, then close it", ErrJournalPending, dir)
	}
	return nil
}

// covers reports whether the ceilings cover seq and request id.
func (id *identity) covers(seq, reqID uint64) bool {
	return seq <= id.SeqCeiling && reqID <= id.IDCeiling
}

// reserve raises the ceilings past seq and reqID by ceilingStep and stores
// them durably.
func (id *identity) reserve(fs fsys.FS, dir string, seq, reqID uint64) error {
	next := *id
	next.SeqCeiling = max(id.SeqCeiling, seq+ceilingStep)
	next.IDCeiling = max(id.IDCeiling, reqID+ceilingStep)
	if err := storeIdentity(fs, dir, &next); err != nil {
		return err
	}
	*id = next
	return nil
}
