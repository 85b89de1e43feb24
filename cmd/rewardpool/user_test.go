package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// `rewardpool draw --user U` sends the player as user_id.
func TestDrawUserFlag(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &got)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"draws":[{"request_id":1,"item_id":"gold","pity":"ssr hard pity"}]}`))
	}))
	defer srv.Close()
	if err := runDraw([]string{"--addr", srv.URL, "--pool", "banner", "--user", "alice"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got["user_id"] != "alice" {
		t.Fatalf("body %v: want user_id alice", got)
	}
}
