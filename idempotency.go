package rewardpool

import (
	"unsafe"

	"github.com/rewardpool/rewardpool/snapshot"
)

// idempotency remembers the answers to the most recent idempotency keys, so
// a retried draw gets its original results instead of a second draw.
//
// Keys are kept in arrival order in a queue; the oldest are forgotten once
// there are more than the window, or once the answers' estimated memory
// (answerCost) is over the byte budget: a key can hold up to MaxDrawCount
// draws, so a count alone does not bound memory or snapshot size. The
// accounting is integer arithmetic on insert and delete, nothing on the
// lookup path. A key that was forgotten and used again
// is in the queue twice: each answer remembers its position, and evicting
// the old position leaves the newer answer alone. Eviction only happens
// after a batch is durable, so undoing a failed batch never has to bring a
// key back.
type idempotency struct {
	answers map[string]answer
	order   []string // arrival order; order[head:] are in the window
	head    int
	base    uint64 // absolute position of order[0]

	bytes    int64 // answerCost of every answer in answers
	maxBytes int64 // byte budget; 0 means none (set by Open)
}

// Memory per remembered key, for the byte budget. drawBytes is the size of
// one snapshot.Draw; the allocator rounds the draws slice up to its size
// class, which costs up to an eighth more; keyOverhead is the rest of a
// key's share of the heap (map entry and its slack, queue slot, the key's
// own allocation), measured by BenchmarkIdempotencyMemory (BENCHMARKS.md)
// and rounded up, so the budget never counts less than the heap holds.
const (
	drawBytes   = int64(unsafe.Sizeof(snapshot.Draw{}))
	keyOverhead = 200
)

// answerCost is the estimated memory of one remembered answer.
func answerCost(keyLen, draws int) int64 {
	d := int64(draws) * drawBytes
	return int64(keyLen) + d + d/8 + keyOverhead
}

type answer struct {
	draws []snapshot.Draw
	// pity is each draw's DrawResult.Pity as first answered, nil when no
	// draw had one (a pool without rules never allocates it). Its texts are
	// the rules table's own, shared: only the slice costs memory.
	pity []string
	pos  uint64 // absolute position of this key in the queue
}

// cost is the answer's estimated memory, for the byte budget.
func (a answer) cost(key string) int64 {
	return answerCost(len(key), len(a.draws)) + int64(len(a.pity))*int64(unsafe.Sizeof(""))
}

func (m *idempotency) lookup(key string) (draws []snapshot.Draw, pity []string, ok bool) {
	a, ok := m.answers[key]
	return a.draws, a.pity, ok
}

// insert remembers key; the draws and pity slices (pity nil, or one per
// draw) must not change afterwards.
func (m *idempotency) insert(key string, draws []snapshot.Draw, pity []string) {
	if m.answers == nil {
		m.answers = make(map[string]answer)
	}
	if old, ok := m.answers[key]; ok {
		// Replaced (replay of a log where the key came again): its old
		// queue entry no longer owns an answer.
		m.bytes -= old.cost(key)
	}
	a := answer{draws: draws, pity: pity, pos: m.base + uint64(len(m.order))}
	m.bytes += a.cost(key)
	m.answers[key] = a
	m.order = append(m.order, key)
}

// unInsert forgets the newest key: the undo of insert for a failed batch.
// It does nothing if key is not the newest entry, which happens when the
// batch failed before the key's draws were complete (replica apply).
func (m *idempotency) unInsert(key string) {
	n := len(m.order)
	if n == m.head || m.order[n-1] != key {
		return
	}
	if a, ok := m.answers[key]; ok && a.pos == m.base+uint64(n-1) {
		delete(m.answers, key)
		m.bytes -= a.cost(key)
	}
	m.order[n-1] = ""
	m.order = m.order[:n-1]
}

// live is how many queue entries are in the window.
func (m *idempotency) live() int { return len(m.order) - m.head }

// evict forgets the oldest keys until at most window remain and their
// answers fit the byte budget.
func (m *idempotency) evict(window int) {
	for m.live() > window || (m.maxBytes > 0 && m.bytes > m.maxBytes && m.live() > 0) {
		k := m.order[m.head]
		if a, ok := m.answers[k]; ok && a.pos == m.base+uint64(m.head) {
			delete(m.answers, k)
			m.bytes -= a.cost(k)
		}
		m.order[m.head] = ""
		m.head++
	}
	// Compact once the dead prefix dominates, so memory stays bounded.
	if m.head > 1024 && m.head > len(m.order)/2 {
		n := copy(m.order, m.order[m.head:])
		clear(m.order[n:])
		m.order = m.order[:n]
		m.base += uint64(m.head)
		m.head = 0
	}
}

// capture returns the window, oldest first, for a snapshot. The draws
// slices are shared: they never change once inserted.
func (m *idempotency) capture() []snapshot.Key {
	if m.live() == 0 {
		return nil
	}
	keys := make([]snapshot.Key, 0, m.live())
	for i := m.head; i < len(m.order); i++ {
		k := m.order[i]
		if a, ok := m.answers[k]; ok && a.pos == m.base+uint64(i) {
			keys = append(keys, snapshot.Key{Key: k, Draws: a.draws, Pity: a.pity})
		}
	}
	return keys
}
