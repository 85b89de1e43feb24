package server

import (
	"strings"
	"testing"

	"github.com/rewardpool/rewardpool/internal/config"
)

// TestMetricsPerItemOnlyForSmallCatalogs: a pool with more items than
// metrics.per_item_max_items gets per-pool draw series and no per-item
// remaining quantities (a million-item catalog would otherwise export a
// million series); smaller pools keep their per-item series.
func TestMetricsPerItemOnlyForSmallCatalogs(t *testing.T) {
	ts := startServer(t, serverOpts{configure: func(c *config.Config) { c.Metrics.PerItemMaxItems = 2 }})
	for range 4 {
		ts.draw("prizes", "", `{"count": 3}`) // 3 items: above the limit
	}
	ts.draw("other", "", `{"count": 2}`) // 1 item: per item
	m := ts.scrape()

	if got := m[`rewardpool_draws_total{item="",pool="prizes",result="ok"}`]; got != 12 {
		t.Errorf(`rewardpool_draws_total{item="",pool="prizes",result="ok"} = %v, want 12`, got)
	}
	for k := range m {
		if !strings.Contains(k, `pool="prizes"`) {
			continue
		}
		if strings.HasPrefix(k, "rewardpool_item_remaining{") ||
			(strings.HasPrefix(k, "rewardpool_draws_total{") && !strings.Contains(k, `item=""`)) {
			t.Errorf("per-item series %s for a pool above per_item_max_items", k)
		}
	}
	if got := m[`rewardpool_draws_total{item="x",pool="other",result="ok"}`]; got != 2 {
		t.Errorf(`rewardpool_draws_total{item="x",pool="other",result="ok"} = %v, want 2`, got)
	}
	if v, ok := m[`rewardpool_item_remaining{item="x",pool="other"}`]; !ok || v != 3 {
		t.Errorf("other/x remaining = %v (present %v), want 3", v, ok)
	}
}
