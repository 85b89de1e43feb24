package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rewardpool/rewardpool"
	"github.com/rewardpool/rewardpool/pool"
	"io"
	"os"
	"path/filepath"

	"github.com/rewardpool/rewardpool/snapshot"
	"github.com/rewardpool/rewardpool/wal"
)

func formatWeight(units uint64) string { return pool.FormatWeight(units) }

func runWAL(args []string, stdout io.Writer) error {
	op, err := subcommand("wal", args,
		[2]string{"dump", "print the log's records as JSON lines"},
		[2]string{"verify", "check every record; report the first damage with its location"},
		[2]string{"repair", "cut a damaged tail, saving what it removes"},
		[2]string{"reseed", "override: set aside a directory that cannot prove its state, so the next start seeds it"})
	if err != nil {
		return err
	}
	var pf poolFlags
	fs := newFlagSet("wal "+op, "", &pf, true)
	var from *uint64
	if op == "dump" {
		from = fs.Uint64("from", 0, "first seq to print (default: the oldest on disk)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir := pf.dir()
	if op == "reseed" {
		// The override for a directory that refuses to start because its
		// state cannot be proven: the old files are kept in lost-<time>/.
		lost, err := rewardpool.ReseedLog(dir, pf.logger())
		if errors.Is(err, rewardpool.ErrLocked) {
			return fmt.Errorf("%w: stop the server first", err)
		}
		if err != nil {
			return err
		}
		return printJSON(stdout, map[string]any{"set_aside_to": lost,
			"next_start": "seeds the pool from its configuration, above every seq and request id ever handed out"})
	}
	if _, err := os.Stat(filepath.Join(dir, "wal")); err != nil {
		return fmt.Errorf("no log for pool %q in %s: %w", pf.pool, pf.dataDir, err)
	}
	if op == "repair" {
		rep, err := rewardpool.RepairLog(dir, pf.logger())
		if errors.Is(err, rewardpool.ErrLocked) {
			return fmt.Errorf("%w: stop the server first", err)
		}
		if err != nil {
			return err
		}
		return printJSON(stdout, rep)
	}
	unlock, err := rewardpool.LockDir(dir)
	if err != nil {
		return fmt.Errorf("%w: stop the server first", err)
	}
	defer unlock()
	opts := wal.Options{Logger: pf.logger()}
	l, err := wal.Open(filepath.Join(dir, "wal"), opts)
	if err != nil {
		return err
	}
	defer l.Close()
	// The binary codec logs draws by catalog slot. A slot's id never
	// changes, so the ids come from the newest snapshot and the ADD records.
	ids := map[int32]string{}
	if st, _, err := snapshot.LoadNewest(filepath.Join(dir, "snapshots"), nil); err == nil && st != nil {
		for i, s := range st.Slots {
			ids[int32(i)] = s.ID
		}
	}
	start := l.FirstSeq()
	if from != nil && *from > start {
		start = *from
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	n := 0
	if l.LastSeq() >= start && start > 0 {
		err = l.Scan(start, func(r *wal.Record) error {
			n++
			if r.Kind == wal.KindAdd && r.Item >= 0 {
				ids[r.Item] = r.ItemID
			}
			if r.ItemID == "" && r.Item >= 0 {
				r.ItemID = ids[r.Item]
			}
			if op == "dump" {
				_, err := fmt.Fprintln(out, r.String())
				return err
			}
			return nil
		})
	}
	if err != nil {
		var ce *wal.CorruptError
		if errors.As(err, &ce) {
			return fmt.Errorf("%w\nrepair with: rewardpool wal repair --data-dir %s --pool %s", err, pf.dataDir, pf.pool)
		}
		return err
	}
	if op == "verify" {
		return printJSON(stdout, map[string]any{
			"ok": true, "records": n, "first_seq": l.FirstSeq(), "last_seq": l.LastSeq(),
			"segments": len(l.Segments()),
		})
	}
	return nil
}

func runSnapshot(args []string, stdout io.Writer) error {
	if _, err := subcommand("snapshot", args, [2]string{"inspect", "print a snapshot (the pool's newest, or --file) as JSON"}); err != nil {
		return err
	}
	var pf poolFlags
	fs := newFlagSet("snapshot inspect", "[--file F]", &pf, false)
	file := fs.String("file", "", "snapshot file (default: the pool's newest)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	path := *file
	if path == "" {
		infos, err := snapshot.List(filepath.Join(pf.dir(), "snapshots"))
		if err != nil {
			return err
		}
		if len(infos) == 0 {
			return fmt.Errorf("pool %q in %s has no snapshot", pf.pool, pf.dataDir)
		}
		path = filepath.Join(pf.dir(), "snapshots", infos[len(infos)-1].Name)
	}
	st, err := snapshot.Read(path)
	if err != nil {
		return err
	}
	type slotJSON struct {
		itemJSON
		Removed bool `json:"removed,omitempty"`
	}
	slots := make([]slotJSON, len(st.Slots))
	for i, s := range st.Slots {
		slots[i] = slotJSON{itemJSON{s.ID, s.Quantity, []byte(formatWeight(s.Weight))}, s.Removed}
	}
	out := map[string]any{
		"file": filepath.Base(path), "seq": st.Seq, "epoch": st.Epoch,
		"last_request_id": st.LastRequestID, "slots": slots, "idempotency_keys": len(st.Keys),
	}
	if st.Rules != "" {
		out["rules"] = json.RawMessage(st.Rules)
		if st.Players != nil {
			out["players"] = len(st.Players.IDs)
		}
	}
	return printJSON(stdout, out)
}
