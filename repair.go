package rewardpool

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rewardpool/rewardpool/internal/fsys"
	"github.com/rewardpool/rewardpool/snapshot"
	"github.com/rewardpool/rewardpool/wal"
)

// RepairReport says what RepairLog did to a pool's data directory.
type RepairReport struct {
	// Log is the log-level report: where the damage was, what was kept,
	// the .broken files that keep every byte removed.
	Log wal.RepairReport `json:"log"`
	// Removed summarises the records cut that could still be decoded:
	// any of them may have been acknowledged.
	Removed RemovedRecords `json:"removed"`
	// AuditFile holds every removed record that could be decoded, one per
	// line (seq, epoch, record), with item ids resolved; "" if none.
	AuditFile string `json:"audit_file,omitempty"`
	// NextSeqAbove and NextRequestIDAbove are the floors recorded in the
	// directory's IDENTITY: the next start continues above them, so no
	// seq or request id that may have been handed out is used again.
	NextSeqAbove       uint64 `json:"next_seq_above,omitempty"`
	NextRequestIDAbove uint64 `json:"next_request_id_above,omitempty"`
}

// RemovedRecords summarises what a repair cut.
type RemovedRecords struct {
	Records        int            `json:"records"`
	Draws          int            `json:"draws"` // including empty-pool draws
	FirstRequestID uint64         `json:"first_request_id,omitempty"`
	LastRequestID  uint64         `json:"last_request_id,omitempty"`
	Items          map[string]int `json:"items,omitempty"` // draws per item
	UndecodedBytes int64          `json:"undecoded_bytes,omitempty"`
}

// RepairLog repairs the log of the pool in dir (the engine must not have it
// open): it cuts the log at the first damage, as wal.Repair, and keeps every
// id unique: before anything is cut, the directory's floors are raised to
// its ceilings, so the next start continues above every seq and request id
// that may ever have been handed out. Every removed record that can be
// decoded is saved to an audit file and summarised in the report. A healthy
// log is left as it is.
func RepairLog(dir string, logger *slog.Logger) (RepairReport, error) {
	return repairLog(fsys.OS, dir, logger)
}

func repairLog(fs fsys.FS, dir string, logger *slog.Logger) (RepairReport, error) {
	var rep RepairReport
	if logger == nil {
		logger = slog.Default()
	}
	lock, err := lockDir(fs, dir)
	if err != nil {
		return rep, err
	}
	defer lock.Close()
	walPath := filepath.Join(dir, walDir)
	opts := wal.Options{Logger: logger, FS: fs}
	plan, err := wal.PlanRepair(walPath, opts)
	if err != nil {
		return rep, err
	}
	if plan.Segment == "" {
		rep.Log = plan
		return rep, nil
	}
	// Floors first: if the repair is interrupted after the cut, the ids
	// of what it cut must already be reserved.
	ident, err := loadIdentity(fs, dir)
	if errors.Is(err, errIdentityMissing) {
		ident, err = legacyIdentity(fs, dir, plan)
	} else if err == nil {
		err = ident.checkJournal(dir, false)
	}
	if err != nil {
		return rep, err
	}
	for _, r := range plan.Cut {
		ident.SeqCeiling = max(ident.SeqCeiling, r.Seq)
		ident.IDCeiling = max(ident.IDCeiling, r.RequestID)
	}
	ident.FloorSeq = max(ident.FloorSeq, ident.SeqCeiling)
	ident.FloorID = max(ident.FloorID, ident.IDCeiling)
	if err := storeIdentity(fs, dir, &ident); err != nil {
		return rep, err
	}
	rep.NextSeqAbove, rep.NextRequestIDAbove = ident.FloorSeq, ident.FloorID

	rep.Log, err = wal.Repair(walPath, opts)
	if err != nil {
		return rep, err
	}
	names := slotNames(fs, dir, opts)
	rep.Removed = summarise(rep.Log.Cut, names)
	rep.Removed.UndecodedBytes = rep.Log.UndecodedBytes
	if len(rep.Log.Cut) > 0 {
		rep.AuditFile = fsys.FreeName(fs, filepath.Join(dir, fmt.Sprintf("repaired-%d.log", time.Now().UnixNano())))
		if err := fsys.WriteFileAtomic(fs, rep.AuditFile, auditText(rep, names), 0o644); err != nil {
			return rep, fmt.Errorf("rewardpool: save the removed records: %w", err)
		}
	}
	logger.Warn("rewardpool: log repaired", "dir", dir, "segment", rep.Log.Segment, "offset", rep.Log.Offset,
		"reason", rep.Log.Reason, "records_removed", rep.Removed.Records, "draws_removed", rep.Removed.Draws,
		"audit_file", rep.AuditFile, "next_seq_above", rep.NextSeqAbove, "next_request_id_above", rep.NextRequestIDAbove)
	return rep, nil
}

// legacyIdentity builds the identity of a directory written before
// identities existed, from what plan (a dry run of repair) read: the
// highest seq found in its snapshots, the log it keeps and the records it
// would cut, plus a reserve for records that could not be read, at least
// one per undecoded byte (a damaged segment can hold millions of draws,
// more than ceilingStep). Before identities every draw took the next seq
// and the next request id, both from 1, so no request id exceeds its
// record's seq: the seq bound bounds the ids too, even when the snapshot
// that named the last id is damaged.
func legacyIdentity(fs fsys.FS, dir string, plan wal.RepairReport) (identity, error) {
	seq, id := plan.LastSeq, uint64(0)
	if st, _, err := snapshot.In(fs, filepath.Join(dir, snapDir)).LoadNewest(nil); err == nil && st != nil {
		seq, id = max(seq, st.Seq), st.LastRequestID
	}
	for _, r := range plan.Cut {
		seq, id = max(seq, r.Seq), max(id, r.RequestID)
	}
	id = max(id, seq)
	reserve := max(ceilingStep, uint64(max(plan.UndecodedBytes, 0)))
	return createIdentity(fs, dir, identity{Written: true, SeqCeiling: seq + reserve, IDCeiling: id + reserve})
}

// slotNames maps catalog slots to item ids (the binary codec logs draws by
// slot): the newest snapshot's slots, then the ADD records of the log.
func slotNames(fs fsys.FS, dir string, opts wal.Options) map[int32]string {
	names := map[int32]string{}
	if st, _, err := snapshot.In(fs, filepath.Join(dir, snapDir)).LoadNewest(nil); err == nil && st != nil {
		for i, s := range st.Slots {
			names[int32(i)] = s.ID
		}
	}
	l, err := wal.Open(filepath.Join(dir, walDir), opts)
	if err != nil {
		return names
	}
	defer l.Close()
	if first := l.FirstSeq(); first > 0 {
		l.Scan(first, func(r *wal.Record) error {
			if r.Kind == wal.KindAdd && r.Item >= 0 {
				names[r.Item] = r.ItemID
			}
			return nil
		})
	}
	return names
}

func summarise(cut []wal.Record, names map[int32]string) RemovedRecords {
	s := RemovedRecords{Records: len(cut)}
	for i := range cut {
		r := &cut[i]
		resolveName(r, names)
		switch r.Kind {
		case wal.KindDraw, wal.KindDrawFailed:
			s.Draws++
			if s.FirstRequestID == 0 {
				s.FirstRequestID = r.RequestID
			}
			s.LastRequestID = r.RequestID
			if r.Kind == wal.KindDraw {
				if s.Items == nil {
					s.Items = map[string]int{}
				}
				s.Items[r.ItemID]++
			}
		}
	}
	return s
}

// resolveName fills a record's ItemID from its slot, learning from ADDs.
func resolveName(r *wal.Record, names map[int32]string) {
	if r.Kind == wal.KindAdd && r.Item >= 0 {
		names[r.Item] = r.ItemID
	}
	if r.ItemID == "" && r.Item >= 0 {
		if n, ok := names[r.Item]; ok {
			r.ItemID = n
		} else {
			r.ItemID = fmt.Sprintf("slot:%d", r.Item)
		}
	}
}

func auditText(rep RepairReport, names map[int32]string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# records removed by `rewardpool wal repair` at %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# damage: segment %s offset %d: %s\n", rep.Log.Segment, rep.Log.Offset, rep.Log.Reason)
	fmt.Fprintf(&b, "# any of these may have been acknowledged; their seqs and request ids are never used again\n")
	fmt.Fprintf(&b, "# (next seq above %d, next request id above %d); undecodable bytes: %d (kept in %s)\n",
		rep.NextSeqAbove, rep.NextRequestIDAbove, rep.Log.UndecodedBytes, strings.Join(rep.Log.Broken, ", "))
	fmt.Fprintf(&b, "# seq\tepoch\trecord\n")
	for _, r := range rep.Log.Cut {
		fmt.Fprintf(&b, "%d\t%d\t%s\n", r.Seq, r.Epoch, r.String())
	}
	if len(rep.Removed.Items) > 0 {
		ids := make([]string, 0, len(rep.Removed.Items))
		for id := range rep.Removed.Items {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			fmt.Fprintf(&b, "# draws of %s removed: %d\n", id, rep.Removed.Items[id])
		}
	}
	return []byte(b.String())
}

// ReseedLog gives up the state of the pool in dir, on purpose: it moves the
// log and the snapshots into lost-<time>/ (nothing is deleted) and records
// floors at the directory's ceilings, so the next Open seeds the pool from
// Options.Items with seqs and request ids above every one ever handed out.
// It is the documented override for a directory that refuses to start with
// ErrUnprovable and cannot be rebuilt from a replica.
func ReseedLog(dir string, logger *slog.Logger) (string, error) {
	return reseedLog(fsys.OS, dir, logger)
}

func reseedLog(fs fsys.FS, dir string, logger *slog.Logger) (string, error) {
	if logger == nil {
		logger = slog.Default()
	}
	lock, err := lockDir(fs, dir)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	ident, err := loadIdentity(fs, dir)
	if err == nil {
		err = ident.checkJournal(dir, false)
	}
	if errors.Is(err, errIdentityMissing) {
		// The log bounds the ids it holds even when no snapshot is left.
		var plan wal.RepairReport
		if ok, eerr := fsys.Exists(fs, filepath.Join(dir, walDir)); eerr != nil {
			return "", eerr
		} else if ok {
			if plan, err = wal.PlanRepair(filepath.Join(dir, walDir), wal.Options{Logger: logger, FS: fs}); err != nil {
				return "", fmt.Errorf("rewardpool: reseed: read the log to bound its ids: %w", err)
			}
		}
		ident, err = legacyIdentity(fs, dir, plan)
	}
	if err != nil {
		return "", err
	}
	ident.FloorSeq = max(ident.FloorSeq, ident.SeqCeiling)
	ident.FloorID = max(ident.FloorID, ident.IDCeiling)
	ident.Reseed = true
	if err := storeIdentity(fs, dir, &ident); err != nil {
		return "", err
	}
	lost := fsys.FreeName(fs, filepath.Join(dir, fmt.Sprintf("lost-%d", time.Now().UnixNano())))
	if err := fsys.MkdirAll(fs, lost, 0o755); err != nil {
		return "", err
	}
	for _, d := range []string{walDir, snapDir} {
		if ok, err := fsys.Exists(fs, filepath.Join(dir, d)); err != nil {
			return "", err
		} else if ok {
			if err := fsys.Rename(fs, filepath.Join(dir, d), filepath.Join(lost, d)); err != nil {
				return "", fmt.Errorf("rewardpool: reseed: set %s aside: %w", d, err)
			}
		}
	}
	logger.Warn("rewardpool: pool state set aside; the next start seeds it from its configuration",
		"dir", dir, "moved_to", lost, "next_seq_above", ident.FloorSeq, "next_request_id_above", ident.FloorID)
	return lost, nil
}
