package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewardpool/rewardpool"
)

// The offline tools on a real data directory: dump prints the canonical
// lines, verify reports a healthy log and names damage with the repair
// command, repair cuts it, snapshot inspect prints the newest snapshot.
func TestOfflineTools(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "p")
	o := rewardpool.Options{
		Items:  []rewardpool.Item{{ID: "gold", Quantity: 2, Weight: rewardpool.WeightUnit}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Codec:  "text",
	}
	e, err := rewardpool.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.Draw(context.Background(), rewardpool.DrawRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	run := func(f func([]string, io.Writer) error, args ...string) (string, error) {
		var out bytes.Buffer
		err := f(append(args, "--data-dir", dataDir, "--pool", "p"), &out)
		return out.String(), err
	}

	out, err := run(runWAL, "dump")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ADD gold 2 1", "DRAW 1 gold", "DRAW 2 gold", "DRAW 3 FAILED"} {
		if !strings.Contains(out, want+"\n") {
			t.Fatalf("wal dump lacks %q:\n%s", want, out)
		}
	}
	out, err = run(runWAL, "verify")
	var v struct {
		OK      bool `json:"ok"`
		Records int  `json:"records"`
	}
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || !v.OK || v.Records != 4 {
		t.Fatalf("wal verify = %s, %v", out, err)
	}
	out, err = run(runSnapshot, "inspect")
	var s struct {
		Seq           uint64 `json:"seq"`
		LastRequestID uint64 `json:"last_request_id"`
	}
	if err != nil || json.Unmarshal([]byte(out), &s) != nil || s.Seq != 4 || s.LastRequestID != 3 {
		t.Fatalf("snapshot inspect = %s, %v", out, err)
	}

	// Damage the second line of the log (a text segment: one line per record).
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("DRAW 1 gold"))
	b[i+5] = '9'
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(runWAL, "verify"); err == nil || !strings.Contains(err.Error(), "rewardpool wal repair") {
		t.Fatalf("verify of a damaged log = %v, want an error naming the repair command", err)
	}
	out, err = run(runWAL, "repair")
	var rep rewardpool.RepairReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || !strings.Contains(out, ".broken") {
		t.Fatalf("wal repair = %s, %v", out, err)
	}
	// It reports what it removed: the damaged draw 1 and the draws after it.
	if rep.Removed.Draws != 2 || rep.Removed.FirstRequestID != 2 || rep.Removed.LastRequestID != 3 ||
		rep.AuditFile == "" || rep.NextRequestIDAbove < 3 {
		t.Fatalf("wal repair report = %s", out)
	}
	if audit, err := os.ReadFile(rep.AuditFile); err != nil || !strings.Contains(string(audit), "DRAW 3 ") {
		t.Fatalf("audit file %s = %q, %v", rep.AuditFile, audit, err)
	}
	out, err = run(runWAL, "verify")
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || !v.OK || v.Records != 1 {
		t.Fatalf("verify after repair = %s, %v (want the one record before the damage)", out, err)
	}
	// The repaired log now ends before the newest snapshot: the engine
	// opens from the snapshot, which holds every draw, and ids go on above
	// every id that may ever have been handed out.
	e, err = rewardpool.Open(dir, o)
	if err != nil {
		t.Fatalf("Open after repair: %v", err)
	}
	defer e.Close()
	res, err := e.Draw(context.Background(), rewardpool.DrawRequest{})
	if err != nil || res[0].RequestID != rep.NextRequestIDAbove+1 {
		t.Fatalf("draw after repair = %+v, %v; want request id %d", res, err, rep.NextRequestIDAbove+1)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "wal.behind-*")); len(aside) != 1 {
		t.Fatalf("the cut log was not kept aside: %v", aside)
	}
}
