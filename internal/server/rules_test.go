package server

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	rpool "github.com/rewardpool/rewardpool"
	rpv1 "github.com/rewardpool/rewardpool/api/rewardpool/v1"
	"github.com/rewardpool/rewardpool/internal/config"
	"github.com/rewardpool/rewardpool/wal"
)

// rulesPools adds "banner" (every draw of a player is a forced ssr, three
// draws a day, two ssr_a at most per player) and "closed" (a window that
// ended) to the test pools.
func rulesPools(c *config.Config) {
	c.Pools = append(c.Pools,
		config.Pool{Name: "banner",
			Items: []config.Item{
				{ID: "ssr_a", Quantity: rpool.Unlimited, Weight: rpool.WeightUnit, Tier: "ssr", Featured: true},
				{ID: "ssr_b", Quantity: rpool.Unlimited, Weight: rpool.WeightUnit, Tier: "ssr"},
				{ID: "common", Quantity: rpool.Unlimited, Weight: 98 * rpool.WeightUnit},
			},
			Rules: &config.Rules{
				Pity:     []config.PityRule{{Tier: "ssr", Hard: 1}},
				PerUser:  config.PerUser{MaxDrawsPerDay: 3},
				ItemCaps: []config.ItemCap{{Item: "ssr_a", MaxPerUser: 2}},
			}},
		config.Pool{Name: "closed",
			Items: []config.Item{{ID: "x", Quantity: rpool.Unlimited, Weight: rpool.WeightUnit}},
			Rules: &config.Rules{Window: config.Window{Start: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC)}},
		})
}

func TestRulesHTTP(t *testing.T) {
	ts := startServer(t, serverOpts{configure: rulesPools})

	// A rules pool needs a user.
	code, b := ts.do("POST", "/v1/pools/banner/draw", "", `{"count": 1}`)
	if e := decodeError(t, b); code != http.StatusBadRequest || e.Code != "INVALID_ARGUMENT" || !strings.Contains(e.Message, "user_id") {
		t.Fatalf("draw without user_id: %d %s", code, b)
	}
	code, b = ts.do("POST", "/v1/pools/banner/draw", "", `{"user_id": "`+strings.Repeat("u", 129)+`"}`)
	if e := decodeError(t, b); code != http.StatusBadRequest || !strings.Contains(e.Message, "user_id") {
		t.Fatalf("draw with a long user_id: %d %s", code, b)
	}

	// Hard pity 1: every pull is an ssr and says why.
	var out struct {
		Draws []struct {
			RequestID uint64 `json:"request_id"`
			ItemID    string `json:"item_id"`
			Pity      string `json:"pity"`
		} `json:"draws"`
	}
	decodeStrict(t, ts.mustDo("POST", "/v1/pools/banner/draw", "", `{"count": 3, "user_id": "alice"}`, http.StatusOK), &out)
	for _, d := range out.Draws {
		if !strings.HasPrefix(d.ItemID, "ssr_") || !strings.Contains(d.Pity, "ssr hard pity") {
			t.Fatalf("draw %+v: want a forced ssr with its pity", d)
		}
	}
	before := ts.getPool("banner", "")

	// The daily cap: 429 USER_LIMIT naming the cap and its reset; no id taken.
	code, b = ts.do("POST", "/v1/pools/banner/draw", "", `{"user_id": "alice"}`)
	e := decodeError(t, b)
	if code != http.StatusTooManyRequests || e.Code != "USER_LIMIT" || !strings.Contains(e.Message, "max_draws_per_day") || !strings.Contains(e.Message, "resets at") {
		t.Fatalf("over the daily cap: %d %s", code, b)
	}
	if after := ts.getPool("banner", ""); after.LastRequestID != before.LastRequestID || after.Seq != before.Seq {
		t.Fatalf("a refused draw moved the pool: %+v -> %+v", before, after)
	}

	// Outside the window: 403 POOL_CLOSED with the window.
	code, b = ts.do("POST", "/v1/pools/closed/draw", "", `{}`)
	if e := decodeError(t, b); code != http.StatusForbidden || e.Code != "POOL_CLOSED" || !strings.Contains(e.Message, "2020-02-01T00:00:00Z") {
		t.Fatalf("closed pool: %d %s", code, b)
	}

	// The player's state.
	var p struct {
		Pool       string `json:"pool"`
		UserID     string `json:"user_id"`
		Known      bool   `json:"known"`
		Draws      int    `json:"draws"`
		DrawsToday int    `json:"draws_today"`
		Pity       []struct {
			Tier  string `json:"tier"`
			Count int    `json:"count"`
			Hard  int    `json:"hard"`
		} `json:"pity"`
		Held []struct {
			ItemID     string `json:"item_id"`
			Count      int    `json:"count"`
			MaxPerUser int    `json:"max_per_user"`
		} `json:"held"`
	}
	if err := json.Unmarshal(ts.mustDo("GET", "/v1/pools/banner/users/alice", "", "", http.StatusOK), &p); err != nil {
		t.Fatal(err)
	}
	if !p.Known || p.Draws != 3 || p.DrawsToday != 3 || len(p.Pity) != 1 || p.Pity[0].Count != 0 || p.Pity[0].Hard != 1 ||
		len(p.Held) != 1 || p.Held[0].ItemID != "ssr_a" || p.Held[0].MaxPerUser != 2 {
		t.Fatalf("player %+v", p)
	}
	held := p.Held[0].Count

	// The odds: a new player's base odds sum to 1; alice's follow her cap.
	var o struct {
		Items []struct {
			ItemID      string  `json:"item_id"`
			Probability float64 `json:"probability"`
		} `json:"items"`
		Pity       string `json:"pity"`
		ConfigHash string `json:"config_hash"`
	}
	if err := json.Unmarshal(ts.mustDo("GET", "/v1/pools/banner/odds?user_id=alice", "", "", http.StatusOK), &o); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"ssr_a": 0.5, "ssr_b": 0.5}
	if held >= 2 {
		want = map[string]float64{"ssr_b": 1}
	}
	got := map[string]float64{}
	for _, it := range o.Items {
		if it.Probability > 0 {
			got[it.ItemID] = it.Probability
		}
	}
	for id, pr := range want {
		if math.Abs(got[id]-pr) > 1e-12 {
			t.Errorf("odds %v, want %v (alice holds %d ssr_a)", got, want, held)
		}
	}
	if o.Pity != "ssr hard pity" || o.ConfigHash == "" {
		t.Errorf("odds pity %q hash %q", o.Pity, o.ConfigHash)
	}
	ts.mustDo("GET", "/v1/pools/prizes/odds", "", "", http.StatusOK)
	ts.mustDo("GET", "/v1/pools/nope/odds", "", "", http.StatusNotFound)
}

func TestRulesGRPC(t *testing.T) {
	ts := startServer(t, serverOpts{configure: rulesPools})
	ctx := testCtx(t)
	if _, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "banner"}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "user_id") {
		t.Fatalf("draw without user_id: %v", err)
	}
	res, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "banner", Count: 3, UserId: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.GetDraws() {
		if d.GetPity() != "ssr hard pity" && !strings.HasPrefix(d.GetPity(), "ssr hard pity") {
			t.Fatalf("draw %v: no pity", d)
		}
	}
	_, err = ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "banner", UserId: "bob"})
	if status.Code(err) != codes.ResourceExhausted || reason(err) != "USER_LIMIT" {
		t.Fatalf("over the daily cap: %v", err)
	}
	_, err = ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "closed"})
	if status.Code(err) != codes.FailedPrecondition || reason(err) != "POOL_CLOSED" {
		t.Fatalf("closed pool: %v", err)
	}
	p, err := ts.rp.GetPlayer(ctx, &rpv1.GetPlayerRequest{Pool: "banner", UserId: "bob"})
	if err != nil || !p.GetKnown() || p.GetDraws() != 3 {
		t.Fatalf("GetPlayer: %v %v", p, err)
	}
	if _, err := ts.rp.GetPlayer(ctx, &rpv1.GetPlayerRequest{Pool: "banner"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetPlayer without user_id: %v", err)
	}
	o, err := ts.rp.GetOdds(ctx, &rpv1.GetOddsRequest{Pool: "banner"})
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, it := range o.GetItems() {
		sum += it.GetProbability()
	}
	if math.Abs(sum-1) > 1e-9 || len(o.GetBaseItems()) != 3 {
		t.Fatalf("odds %v", o)
	}
}

// reason is the ErrorInfo reason of a gRPC error.
func reason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// The odds and player endpoints are reads: with a client token configured
// they need a token, over both transports.
func TestRulesEndpointsNeedAToken(t *testing.T) {
	ts := startServer(t, serverOpts{configure: func(c *config.Config) {
		rulesPools(c)
		c.AdminToken, c.ClientToken = "admin-secret", "client-secret"
	}})
	ctx := testCtx(t)
	if _, err := ts.rp.GetOdds(ctx, &rpv1.GetOddsRequest{Pool: "banner"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("GetOdds without a token: %v", err)
	}
	if _, err := ts.rp.GetPlayer(ctx, &rpv1.GetPlayerRequest{Pool: "banner", UserId: "u"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("GetPlayer without a token: %v", err)
	}
	if _, err := ts.rp.GetOdds(withToken(ctx, "client-secret"), &rpv1.GetOddsRequest{Pool: "banner"}); err != nil {
		t.Errorf("GetOdds with the client token: %v", err)
	}
	ts.mustDo("GET", "/v1/pools/banner/odds", "", "", http.StatusUnauthorized)
	ts.mustDo("GET", "/v1/pools/banner/users/u", "", "", http.StatusUnauthorized)
	ts.mustDo("GET", "/v1/pools/banner/users/u", "client-secret", "", http.StatusOK)
}

// An admin replaces a pool's rules (validated against its catalog) through
// the log; the new rules hold at once.
func TestRulesAdminHTTP(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, serverOpts{dataDir: dir, configure: func(c *config.Config) {
		rulesPools(c)
		c.AdminToken = "admin-secret"
	}})
	body := `{"items":[{"item":"gold","tier":"rare"}],"pity":[{"tier":"rare","hard":1}]}`
	ts.mustDo("PUT", "/v1/pools/prizes/rules", "", body, http.StatusUnauthorized)
	code, b := ts.do("PUT", "/v1/pools/prizes/rules", "admin-secret", `{"pity":[{"tier":"ur","hard":1}]}`)
	if e := decodeError(t, b); code != http.StatusBadRequest || !strings.Contains(e.Message, "pity[0].tier") {
		t.Fatalf("invalid rules: %d %s", code, b)
	}
	code, b = ts.do("PUT", "/v1/pools/prizes/rules", "admin-secret", `{"items":[{"item":"nope","tier":"x"}]}`)
	if e := decodeError(t, b); code != http.StatusBadRequest || !strings.Contains(e.Message, `unknown item "nope"`) {
		t.Fatalf("rules naming an unknown item: %d %s", code, b)
	}
	if got := string(ts.mustDo("PUT", "/v1/pools/prizes/rules", "admin-secret", body, http.StatusOK)); strings.TrimSpace(got) != body {
		t.Fatalf("PUT answered %s, want %s", got, body)
	}
	code, b = ts.do("POST", "/v1/pools/prizes/draw", "", `{}`)
	if code != http.StatusBadRequest || !strings.Contains(string(b), "user_id") {
		t.Fatalf("draw without a user after the rules: %d %s", code, b)
	}
	var out struct {
		Draws []struct {
			ItemID string `json:"item_id"`
			Pity   string `json:"pity"`
		} `json:"draws"`
	}
	if err := json.Unmarshal(ts.mustDo("POST", "/v1/pools/prizes/draw", "", `{"count": 3, "user_id": "u"}`, http.StatusOK), &out); err != nil {
		t.Fatal(err)
	}
	for _, d := range out.Draws {
		if d.ItemID != "gold" || d.Pity != "rare hard pity" {
			t.Fatalf("hard pity 1 on gold drew %+v", d)
		}
	}
	if got := string(ts.mustDo("GET", "/v1/pools/prizes/rules", "", "", http.StatusOK)); strings.TrimSpace(got) != body {
		t.Fatalf("GET rules %s", got)
	}
	if got := strings.TrimSpace(string(ts.mustDo("GET", "/v1/pools/other/rules", "", "", http.StatusOK))); got != "{}" {
		t.Fatalf("GET rules of a pool without any: %s", got)
	}
}

func TestRulesAdminGRPC(t *testing.T) {
	ts := startServer(t, serverOpts{configure: func(c *config.Config) {
		rulesPools(c)
		c.AdminToken = "admin-secret"
	}})
	ctx := testCtx(t)
	js := `{"items":[{"item":"gold","tier":"rare"}],"pity":[{"tier":"rare","hard":1}]}`
	if _, err := ts.rp.SetRules(ctx, &rpv1.PoolRules{Pool: "prizes", RulesJson: js}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("SetRules without the admin token: %v", err)
	}
	admin := withToken(ctx, "admin-secret")
	if _, err := ts.rp.SetRules(admin, &rpv1.PoolRules{Pool: "prizes", RulesJson: `{"pity":[{"tier":"rare","hard":0}]}`}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SetRules with invalid rules: %v", err)
	}
	got, err := ts.rp.SetRules(admin, &rpv1.PoolRules{Pool: "prizes", RulesJson: js})
	if err != nil || got.GetRulesJson() != js {
		t.Fatalf("SetRules: %v %v", got, err)
	}
	if got, err := ts.rp.GetRules(ctx, &rpv1.GetRulesRequest{Pool: "prizes"}); err != nil || got.GetRulesJson() != js {
		t.Fatalf("GetRules: %v %v", got, err)
	}
	res, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes", UserId: "u"})
	if err != nil || res.GetDraws()[0].GetItemId() != "gold" {
		t.Fatalf("draw under the new rules: %v %v", res, err)
	}
	if got, err := ts.rp.SetRules(admin, &rpv1.PoolRules{Pool: "prizes", RulesJson: "{}"}); err != nil || got.GetRulesJson() != "{}" {
		t.Fatalf("removing the rules: %v %v", got, err)
	}
	if _, err := ts.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "prizes"}); err != nil {
		t.Fatalf("draw without a user once the rules are gone: %v", err)
	}
}

// A replica derives the players from its primary's records and takes the
// rules from its log (or snapshot), never from its own configuration:
// equal digests, equal player state.
func TestRulesReplication(t *testing.T) {
	small := func(c *config.Config) {
		c.WAL.SegmentSize = config.MinSegmentSize
		c.SnapshotEvery = 200
		c.WAL.KeepSegments = 0
		rulesPools(c)
		c.Pools[2].Rules.PerUser.MaxDrawsPerDay = 1000
	}
	primary := startNode(t, "", "", small)
	ctx := testCtx(t)
	drawUsers := func(n int) {
		for i := range n {
			if _, err := primary.rp.Draw(ctx, &rpv1.DrawRequest{Pool: "banner", Count: uint32(1 + i%3), UserId: fmt.Sprintf("u%d", i%20)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	drawUsers(300)
	// The replica starts from a snapshot (players and rules in it): the
	// primary's first segments are gone.
	e, _ := primary.srv.pools.Load().get("banner")
	if err := e.ScanLog(1, func(*wal.Record) error { return nil }); err == nil {
		t.Fatal("primary still has seq 1: the test needs it deleted")
	}
	// The replica's own configuration says otherwise: it must not matter.
	r := startNode(t, "", primary.srv.Addr().String(), func(c *config.Config) {
		small(c)
		c.Pools[2].Rules.Pity[0].Hard = 7
	})
	waitSame(t, "banner", primary, r)
	drawUsers(50)
	if _, err := primary.rp.SetRules(ctx, &rpv1.PoolRules{Pool: "banner",
		RulesJson: `{"items":[{"item":"ssr_a","tier":"ssr","featured":true},{"item":"ssr_b","tier":"ssr"}],"pity":[{"tier":"ssr","hard":3}]}`}); err != nil {
		t.Fatal(err)
	}
	drawUsers(50)
	waitSame(t, "banner", primary, r)
	for i := range 20 {
		u := fmt.Sprintf("u%d", i)
		a, err := primary.rp.GetPlayer(ctx, &rpv1.GetPlayerRequest{Pool: "banner", UserId: u})
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.rp.GetPlayer(ctx, &rpv1.GetPlayerRequest{Pool: "banner", UserId: u})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(a, b) || a.GetDraws() == 0 || a.GetPity()[0].GetHard() != 3 {
			t.Fatalf("%s on the primary %v, on the replica %v", u, a, b)
		}
	}
}

// GET /v1/pools/{pool} shows a paced item's drawable units beside its
// remaining quantity.
func TestRulesReleaseHTTP(t *testing.T) {
	start := time.Now().Add(-30 * time.Minute).Truncate(time.Second).UTC()
	ts := startServer(t, serverOpts{configure: func(c *config.Config) {
		c.Pools = append(c.Pools, config.Pool{Name: "paced",
			Items: []config.Item{{ID: "gold", Quantity: 10, Weight: rpool.WeightUnit,
				Release: &config.Release{Every: config.Duration(time.Hour), Amount: 2}}},
			Rules: &config.Rules{Window: config.Window{Start: start}}})
	}})
	var p struct {
		Items []struct {
			ID        string `json:"id"`
			Quantity  int64  `json:"quantity"`
			Available *int64 `json:"available"`
		} `json:"items"`
	}
	get := func() (int64, int64) {
		if err := json.Unmarshal([]byte(ts.poolJSON("paced", "")), &p); err != nil {
			t.Fatal(err)
		}
		if p.Items[0].Available == nil {
			t.Fatalf("no available for a paced item: %+v", p)
		}
		return p.Items[0].Quantity, *p.Items[0].Available
	}
	if q, a := get(); q != 10 || a != 2 {
		t.Fatalf("before drawing: quantity %d available %d, want 10 and 2", q, a)
	}
	golds := 0
	for _, d := range ts.draw("paced", "", `{"count": 5}`) {
		if d.ItemID == "gold" {
			golds++
		}
	}
	if q, a := get(); golds != 2 || q != 8 || a != 0 {
		t.Fatalf("after 5 draws: %d golds, quantity %d available %d; want 2, 8, 0", golds, q, a)
	}
	if gp := ts.grpcPool(testCtx(t), "paced"); gp.GetItems()[0].Available == nil || gp.GetItems()[0].GetAvailable() != 0 {
		t.Fatalf("gRPC pool %v", gp)
	}
}
