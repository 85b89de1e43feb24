package rewardpool

import "github.com/rewardpool/rewardpool/snapshot"

// idempotency remembers the answers to the most recent idempotency keys, so
// a retried draw gets its original results instead of a second draw.
//
// Keys are kept in arrival order in a queue; the oldest are forgotten once
// there are more than the window. Eviction only happens after a batch is
// durable, so undoing a failed batch never has to bring a key back.
type idempotency struct {
	answers map[string][]snapshot.Draw
	order   []string // arrival order; order[head:] are live
	head    int
}

func (m *idempotency) lookup(key string) ([]snapshot.Draw, bool) {
	d, ok := m.answers[key]
	return d, ok
}

// insert remembers key; the draws slice must not change afterwards.
func (m *idempotency) insert(key string, draws []snapshot.Draw) {
	if m.answers == nil {
		m.answers = make(map[string][]snapshot.Draw)
	}
	m.answers[key] = draws
	m.order = append(m.order, key)
}

// unInsert forgets the newest key: the undo of insert for a failed batch.
func (m *idempotency) unInsert(key string) {
	delete(m.answers, key)
	m.order[len(m.order)-1] = ""
	m.order = m.order[:len(m.order)-1]
}

// evict forgets the oldest keys until at most window remain.
func (m *idempotency) evict(window int) {
	for len(m.order)-m.head > window {
		delete(m.answers, m.order[m.head])
		m.order[m.head] = ""
		m.head++
	}
	// Compact once the dead prefix dominates, so memory stays bounded.
	if m.head > 1024 && m.head > len(m.order)/2 {
		n := copy(m.order, m.order[m.head:])
		clear(m.order[n:])
		m.order = m.order[:n]
		m.head = 0
	}
}

// capture returns the window, oldest first, for a snapshot. The draws
// slices are shared: they never change once inserted.
func (m *idempotency) capture() []snapshot.Key {
	live := m.order[m.head:]
	if len(live) == 0 {
		return nil
	}
	keys := make([]snapshot.Key, len(live))
	for i, k := range live {
		keys[i] = snapshot.Key{Key: k, Draws: m.answers[k]}
	}
	return keys
}
