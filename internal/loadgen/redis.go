package loadgen

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rewardpool/rewardpool/internal/resp"
)

// DrawScript is redis_draw.lua, embedded: the Redis side of the side-by-side
// benchmark (O(log n) Fenwick selection over a hash, one INCR per draw).
//
//go:embed redis_draw.lua
var DrawScript string

// noopScript is the Redis floor for --noop: same call shape and reply
// size as draw.lua, no reads or writes.
const noopScript = `local out = {}
for d = 1, (tonumber(ARGV[1]) or 1) do out[#out + 1] = 0; out[#out + 1] = 'noop' end
return out`

// setupScript replaces the catalog under KEYS[1] with ARGV = id1, qty1,
// weight1, id2, ... and builds the Fenwick tree in O(n).
const setupScript = `local p = KEYS[1]
local tk, ik, qk, wk = p .. ':tree', p .. ':item', p .. ':qty', p .. ':w'
redis.call('DEL', tk, ik, qk, wk, p .. ':rid')
local n = #ARGV / 3
local tree, total = {}, 0
for i = 1, n do
  local q, w = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  if q ~= 0 then tree[i] = w; total = total + w else tree[i] = 0 end
end
for i = 1, n do
  local j = i + bit.band(i, -i)
  if j <= n then tree[j] = tree[j] + tree[i] end
end
local function flush(key, args)
  if #args > 0 then redis.call('HSET', key, unpack(args)) end
end
local ta, ia, qa, wa = {}, {}, {}, {}
for i = 1, n do
  ta[#ta + 1] = i; ta[#ta + 1] = tree[i]
  ia[#ia + 1] = i; ia[#ia + 1] = ARGV[3 * i - 2]
  qa[#qa + 1] = i; qa[#qa + 1] = ARGV[3 * i - 1]
  wa[#wa + 1] = i; wa[#wa + 1] = ARGV[3 * i]
  if #ta >= 1000 then
    flush(tk, ta); flush(ik, ia); flush(qk, qa); flush(wk, wa)
    ta, ia, qa, wa = {}, {}, {}, {}
  end
end
flush(tk, ta); flush(ik, ia); flush(qk, qa); flush(wk, wa)
redis.call('HSET', tk, 'n', n, 't', total)
redis.call('SET', p .. ':rid', 0)
redis.call('SET', p .. ':bench', 'seeded by rewardpool bench --redis-setup')
return n`

// CatalogItem is one item of a benchmark catalog. Redis needs integer
// weights.
type CatalogItem struct {
	ID       string  `json:"id"`
	Quantity int64   `json:"quantity"` // -1 unlimited
	Weight   float64 `json:"weight"`
}

// StandardCatalog is the 6-item comparison catalog: every item limited
// with 1e9 units, so every draw writes.
func StandardCatalog() []CatalogItem {
	ws := []float64{10, 20, 30, 15, 5, 20}
	ids := []string{"diamond", "ruby", "gold", "silver", "emerald", "bronze"}
	items := make([]CatalogItem, len(ws))
	for i := range ws {
		items[i] = CatalogItem{ID: ids[i], Quantity: 1e9, Weight: ws[i]}
	}
	return items
}

// GenCatalog is an n-item catalog, every item limited with 1e9 units and
// weights 1..100 (deterministic). GenCatalog(6) is StandardCatalog.
func GenCatalog(n int) []CatalogItem {
	if n == 6 {
		return StandardCatalog()
	}
	items := make([]CatalogItem, n)
	for i := range items {
		items[i] = CatalogItem{ID: fmt.Sprintf("item%05d", i+1), Quantity: 1e9, Weight: float64(i*37%100 + 1)}
	}
	return items
}

// LoadCatalog reads a catalog: "gen:N" generates GenCatalog(N); anything
// else is a JSON file holding either a list of {id, quantity, weight} or
// an object with such a list under "items" (the shape of a pool in the
// server's config, written as JSON).
func LoadCatalog(spec string) ([]CatalogItem, error) {
	if rest, ok := strings.CutPrefix(spec, "gen:"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || n > 1_000_000 {
			return nil, fmt.Errorf("catalog %q: want gen:N with 1 <= N <= 1000000", spec)
		}
		return GenCatalog(n), nil
	}
	b, err := os.ReadFile(spec)
	if err != nil {
		return nil, err
	}
	var items []CatalogItem
	if err := json.Unmarshal(b, &items); err != nil {
		var obj struct {
			Items []CatalogItem `json:"items"`
		}
		if err2 := json.Unmarshal(b, &obj); err2 != nil {
			return nil, fmt.Errorf("catalog %s: %w", spec, err)
		}
		items = obj.Items
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("catalog %s: no items", spec)
	}
	for i, it := range items {
		switch {
		case it.ID == "":
			return nil, fmt.Errorf("catalog %s: item %d: empty id", spec, i+1)
		case it.Quantity < -1:
			return nil, fmt.Errorf("catalog %s: item %q: quantity %d", spec, it.ID, it.Quantity)
		case it.Weight <= 0 || it.Weight != math.Trunc(it.Weight) || it.Weight > 1<<40:
			return nil, fmt.Errorf("catalog %s: item %q: weight %v: Redis needs a positive integer", spec, it.ID, it.Weight)
		}
	}
	return items, nil
}

// SeedRedis replaces the catalog stored under prefix.
func SeedRedis(c *resp.Conn, prefix string, items []CatalogItem) error {
	args := make([]string, 0, 4+3*len(items))
	args = append(args, "EVAL", setupScript, "1", prefix)
	for _, it := range items {
		args = append(args, it.ID, strconv.FormatInt(it.Quantity, 10), strconv.FormatFloat(it.Weight, 'f', 0, 64))
	}
	v, err := c.Do(args...)
	if err != nil {
		return fmt.Errorf("seeding the catalog: %w", err)
	}
	if v.Int != int64(len(items)) {
		return fmt.Errorf("seeding the catalog: script answered %v, want %d", v, len(items))
	}
	return nil
}

// ErrNoCatalog: redis mode without --redis-setup found no catalog that
// bench seeded under the key prefix.
var ErrNoCatalog = errors.New("redis catalog not set up")

type redisTarget struct {
	cfg   *Config
	sha   string
	count string
}

func newRedisTarget(ctx context.Context, cfg *Config) (*redisTarget, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := resp.Dial(dctx, cfg.Addr, cfg.TLS)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if cfg.Token != "" {
		if _, err := c.Do("AUTH", cfg.Token); err != nil {
			return nil, err
		}
	}
	if cfg.RedisSetup != nil {
		if err := SeedRedis(c, cfg.RedisPrefix, cfg.RedisSetup); err != nil {
			return nil, err
		}
	} else if !cfg.Noop {
		// Drawing from a catalog bench did not seed measures nothing useful:
		// against a missing one every draw is POOL_EMPTY and would still be
		// reported as throughput. The setup script leaves a marker.
		v, err := c.Do("EXISTS", cfg.RedisPrefix+":bench")
		if err != nil {
			return nil, fmt.Errorf("checking the catalog under %q: %w", cfg.RedisPrefix, err)
		}
		if v.Int != 1 {
			return nil, fmt.Errorf("%w: no catalog seeded by bench under %q: run once with --redis-setup gen:6 (or a catalog file) to create it",
				ErrNoCatalog, cfg.RedisPrefix)
		}
	}
	script := cfg.RedisScript
	if script == "" {
		script = DrawScript
	}
	if cfg.Noop {
		script = noopScript
	}
	v, err := c.Do("SCRIPT", "LOAD", script)
	if err != nil {
		return nil, fmt.Errorf("SCRIPT LOAD: %w", err)
	}
	return &redisTarget{cfg: cfg, sha: v.Str, count: strconv.Itoa(cfg.Count)}, nil
}

func (t *redisTarget) Close() error { return nil }

func (t *redisTarget) NewClient(ctx context.Context, w int) (Client, error) {
	c := &redisClient{t: t}
	return c, c.dial(ctx)
}

// redisClient is one connection; a batch of Pipeline EVALSHAs is written
// at once and the replies read in order. The connection is closed when the
// run's context ends, which unblocks a pending read.
type redisClient struct {
	t    *redisTarget
	c    *resp.Conn
	stop func() bool
}

func (c *redisClient) dial(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := resp.Dial(dctx, c.t.cfg.Addr, c.t.cfg.TLS)
	if err != nil {
		return err
	}
	if c.t.cfg.Token != "" {
		if _, err := conn.Do("AUTH", c.t.cfg.Token); err != nil {
			conn.Close()
			return err
		}
	}
	c.c = conn
	c.stop = context.AfterFunc(ctx, func() { conn.Close() })
	return nil
}

func (c *redisClient) drop() {
	if c.c != nil {
		c.stop()
		c.c.Close()
		c.c = nil
	}
}

func (c *redisClient) Do(ctx context.Context, res []Result) {
	failAll := func(from int, err error) {
		for i := from; i < len(res); i++ {
			res[i].Err = err
		}
		c.drop()
	}
	if c.c == nil {
		if err := c.dial(ctx); err != nil {
			failAll(0, err)
			return
		}
	}
	start := time.Now()
	for range res {
		if err := c.c.Send("EVALSHA", c.t.sha, "1", c.t.cfg.RedisPrefix, c.t.count); err != nil {
			failAll(0, err)
			return
		}
	}
	if err := c.c.Flush(); err != nil {
		failAll(0, err)
		return
	}
	for i := range res {
		v, err := c.c.Receive()
		res[i].Latency = time.Since(start)
		if err != nil {
			var re resp.Error
			if errors.As(err, &re) {
				res[i].Err = &KindError{"redis:" + re.Prefix(), string(re)}
				continue
			}
			failAll(i, err)
			return
		}
		c.fill(&res[i], v)
	}
}

func (c *redisClient) fill(r *Result, v resp.Value) {
	if v.Kind != resp.Array || len(v.Array) != 2*c.t.cfg.Count {
		r.Err = &KindError{"bad_response", fmt.Sprintf("reply %.100s, want %d (request id, item) pairs", v.String(), c.t.cfg.Count)}
		return
	}
	for i := 1; i < len(v.Array); i += 2 {
		if v.Array[i].Str == "FAILED" {
			r.FailedDraw++
			r.FailKind = "POOL_EMPTY"
		}
	}
	r.Draws = c.t.cfg.Count
}

func (c *redisClient) Close() error {
	c.drop()
	return nil
}
