package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rewardpool/rewardpool/pool"
)

func sample() *State {
	return &State{
		Seq: 1234, Epoch: 2, LastRequestID: 999,
		Slots: []pool.Slot{
			{Item: pool.Item{ID: "gold", Quantity: 12, Weight: 20_000_000}},
			{Item: pool.Item{ID: "mud", Quantity: -1, Weight: 500_000}},
			{Item: pool.Item{ID: "gone", Quantity: 0, Weight: 1}, Removed: true},
		},
		Keys: []Key{
			{Key: "order-1", Draws: []Draw{{RequestID: 5, Slot: 0}, {RequestID: 6, Slot: -1}}},
			{Key: "order-2", Draws: []Draw{{RequestID: 7, Slot: 1}}},
		},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, st := range []*State{sample(), {Seq: 1, Epoch: 1}} {
		got, err := Decode(Encode(nil, st))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st) {
			t.Fatalf("round trip:\ngot  %+v\nwant %+v", got, st)
		}
	}
}

func TestPlayersRoundTrip(t *testing.T) {
	st := sample()
	st.Rules = `{"pity":[{"tier":"ssr","hard":90}]}`
	st.Players = &Players{
		Columns: []string{"draws", "today", "day", "flags", "pity:ssr"},
		IDs:     []string{"alice", "bob \"the\" é"},
		Rows:    []uint32{90, 3, 20423, 1, 0, 1, 1, 20424, 0, 1<<32 - 1},
	}
	got, err := Decode(Encode(nil, st))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("round trip:\ngot  %+v\nwant %+v", got.Players, st.Players)
	}
	// Answers that said why pity acted keep it, one text per draw; a key
	// whose answer had none stays nil. Without rules (removed since) the
	// pity section still round-trips behind an empty rules section.
	st.Keys[1].Pity = []string{"ssr hard pity"}
	st.Keys = append(st.Keys, Key{Key: "order-3", Draws: []Draw{{RequestID: 8, Slot: 0}, {RequestID: 9, Slot: 1}}, Pity: []string{"", "sr soft pity, featured guarantee"}})
	for _, rules := range []bool{true, false} {
		c := *st
		if !rules {
			c.Rules, c.Players = "", nil
		}
		got, err := Decode(Encode(nil, &c))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Keys, c.Keys) || got.Keys[0].Pity != nil {
			t.Fatalf("rules %v: keys round trip:\ngot  %+v\nwant %+v", rules, got.Keys, c.Keys)
		}
	}
	st.Keys = st.Keys[:2]
	st.Keys[1].Pity = nil
	// A snapshot without players decodes without them (and older
	// snapshots, which never had the section, still load).
	st.Players, st.Rules = nil, ""
	if got, err := Decode(Encode(nil, st)); err != nil || got.Players != nil {
		t.Fatalf("no players: %+v, %v", got, err)
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	good := Encode(nil, sample())
	cases := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXSNAP1\n"), good[8:]...),
		"truncated": good[:len(good)-5],
		"flipped":   func() []byte { b := append([]byte(nil), good...); b[20] ^= 1; return b }(),
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Decode = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestWriteLoadPrune(t *testing.T) {
	dir := t.TempDir()
	for _, seq := range []uint64{10, 20, 30} {
		st := sample()
		st.Seq = seq
		if _, err := Write(dir, st); err != nil {
			t.Fatal(err)
		}
	}
	st, info, err := LoadNewest(dir, nil)
	if err != nil || st.Seq != 30 || info.Name != FileName(30) {
		t.Fatalf("LoadNewest = %v %+v %v", st, info, err)
	}
	// Damage the newest: LoadNewest falls back and sets the damaged one aside.
	p := filepath.Join(dir, FileName(30))
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	os.WriteFile(p, b, 0o644)
	st, _, err = LoadNewest(dir, nil)
	if err != nil || st.Seq != 20 {
		t.Fatalf("fallback LoadNewest = %+v, %v; want seq 20", st, err)
	}
	if _, err := os.Stat(p + ".broken"); err != nil {
		t.Fatalf("damaged snapshot not set aside: %v", err)
	}
	// A leftover temp file is ignored by List and removed by Prune.
	os.WriteFile(filepath.Join(dir, FileName(40)+".tmp-123"), []byte("junk"), 0o644)
	kept, err := Prune(dir, 1)
	if err != nil || len(kept) != 1 || kept[0].Seq != 20 {
		t.Fatalf("Prune = %+v, %v", kept, err)
	}
	infos, _ := List(dir)
	if len(infos) != 1 {
		t.Fatalf("after prune: %+v", infos)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName(40)+".tmp-123")); !os.IsNotExist(err) {
		t.Fatalf("temp file survived Prune")
	}
}

func TestLoadNewestEmptyDir(t *testing.T) {
	st, _, err := LoadNewest(filepath.Join(t.TempDir(), "missing"), nil)
	if st != nil || err != nil {
		t.Fatalf("LoadNewest on missing dir = %v, %v", st, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, sample()))
	f.Add(Encode(nil, &State{Seq: 1, Epoch: 1}))
	withPlayers := sample()
	withPlayers.Players = &Players{Columns: []string{"draws", "pity:ssr"}, IDs: []string{"alice", "bob"}, Rows: []uint32{3, 1, 9, 0}}
	f.Add(Encode(nil, withPlayers))
	f.Add([]byte("RPSNAP1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must survive an encode/decode round trip.
		again, err := Decode(Encode(nil, st))
		if err != nil || !reflect.DeepEqual(again, st) {
			t.Fatalf("round trip of a decoded snapshot failed: %v", err)
		}
	})
}
