package rewardpool

import "github.com/rewardpool/rewardpool/snapshot"

// idempotency remembers the answers to the most recent idempotency keys, so
// a retried draw gets its original results instead of a second draw.
//
// Keys are kept in arrival order in a queue; the oldest are forgotten once
// there are more than the window. A key that was forgotten and used again
// is in the queue twice: each answer remembers its position, and evicting
// the old position leaves the newer answer alone. Eviction only happens
// after a batch is durable, so undoing a failed batch never has to bring a
// key back.
type idempotency struct {
	answers map[string]answer
	order   []string // arrival order; order[head:] are in the window
	head    int
	base    uint64 // absolute position of order[0]
}

type answer struct {
	draws []snapshot.Draw
	pos   uint64 // absolute position of this key in the queue
}

func (m *idempotency) lookup(key string) ([]snapshot.Draw, bool) {
	a, ok := m.answers[key]
	return a.draws, ok
}

// insert remembers key; the draws slice must not change afterwards.
func (m *idempotency) insert(key string, draws []snapshot.Draw) {
	if m.answers == nil {
		m.answers = make(map[string]answer)
	}
	m.answers[key] = answer{draws: draws, pos: m.base + uint64(len(m.order))}
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
	}
	m.order[n-1] = ""
	m.order = m.order[:n-1]
}

// live is how many queue entries are in the window.
func (m *idempotency) live() int { return len(m.order) - m.head }

// evict forgets the oldest keys until at most window remain.
func (m *idempotency) evict(window int) {
	for m.live() > window {
		k := m.order[m.head]
		if a, ok := m.answers[k]; ok && a.pos == m.base+uint64(m.head) {
			delete(m.answers, k)
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
			keys = append(keys, snapshot.Key{Key: k, Draws: a.draws})
		}
	}
	return keys
}
