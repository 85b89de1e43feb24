-- draw.lua: weighted draws for the Redis side of `rewardpool bench`.
--
--   EVALSHA <sha> 1 <prefix> <count>
--
-- performs <count> draws and returns a flat array
--   {request_id_1, item_1, request_id_2, item_2, ...}
-- where item is the drawn item id, or "FAILED" when no item had stock.
--
-- Keys (all derived from the prefix KEYS[1]; a single Redis, not cluster):
--   <prefix>:tree  hash: field "n" = number of items, field "t" = total
--                  weight of the items in stock, fields "1".."n" = the nodes
--                  of a Fenwick (binary indexed) tree over the weights of
--                  the items in stock (integer weights).
--   <prefix>:item  hash: "i" -> item id of slot i (1-based)
--   <prefix>:qty   hash: "i" -> remaining quantity, -1 = unlimited
--   <prefix>:w     hash: "i" -> weight
--   <prefix>:rid   string: request id counter, INCR'ed once per draw
--
-- Selection is O(log n): a descent of the Fenwick tree for a uniform
-- r in [0, total). Taking the last unit of a limited item removes its
-- weight from the tree (O(log n) HINCRBYs). The PRNG is seeded from the
-- first request id of the call, so a call is deterministic given the state.
-- Seeded by the setup script of internal/loadgen (bench --redis-setup).
-- Keep this file identical to internal/loadgen/redis_draw.lua (a test checks).
local p = KEYS[1]
local tk = p .. ':tree'
local qk = p .. ':qty'
local count = tonumber(ARGV[1]) or 1
local meta = redis.call('HMGET', tk, 'n', 't')
local n = tonumber(meta[1]) or 0
local total = tonumber(meta[2]) or 0
local top = 1
while top * 2 <= n do top = top * 2 end

local out = {}
for d = 1, count do
  local rid = redis.call('INCR', p .. ':rid')
  if d == 1 then math.randomseed(rid) end
  if total <= 0 then
    out[#out + 1] = rid
    out[#out + 1] = 'FAILED'
  else
    -- Descend: find the smallest i with prefix_sum(i) > r.
    local r = math.floor(math.random() * total)
    local pos, step = 0, top
    while step >= 1 do
      local nxt = pos + step
      if nxt <= n then
        local v = tonumber(redis.call('HGET', tk, nxt))
        if v <= r then
          pos = nxt
          r = r - v
        end
      end
      step = step / 2
    end
    local i = pos + 1
    local q = tonumber(redis.call('HGET', qk, i))
    if q ~= -1 then
      q = redis.call('HINCRBY', qk, i, -1)
      if q == 0 then
        -- Out of stock: take its weight out of the tree.
        local w = tonumber(redis.call('HGET', p .. ':w', i))
        local j = i
        while j <= n do
          redis.call('HINCRBY', tk, j, -w)
          j = j + bit.band(j, -j)
        end
        total = total - w
        redis.call('HSET', tk, 't', total)
      end
    end
    out[#out + 1] = rid
    out[#out + 1] = redis.call('HGET', p .. ':item', i)
  end
end
return out
