package gacha

// A player's state is one fixed-size row of uint32 counters, stored with
// every other player's in one flat slice (no pointer per player, nothing
// for the garbage collector to scan but the id strings):
//
//	[0] draws over the pool's life
//	[1] draws on the UTC day in [2]
//	[2] that day, as days since 1970-01-01 (the writer's clock)
//	[3] flags: bit i set = pity rule i owes a featured item
//	[4 : 4+P]     pity counters, one per pity rule
//	[4+P : 4+P+C] items held, one per item cap
//
// The row is derived only from the draw records (Table.Apply), so the log
// alone rebuilds it.
const (
	colDraws = iota
	colToday
	colDay
	colFlags
	rowHeader
)

// Row is one player's counters, a view into Players' storage.
type Row []uint32

// Players holds the state of every player who has drawn from a pool, in the
// order they first drew (so iteration, snapshots and digests are
// deterministic). It keeps an undo journal so that a batch whose write
// fails can be taken back.
type Players struct {
	stride int
	index  map[string]uint32
	ids    []string
	rows   []uint32

	// Undo journal since the last Commit: saved rows (old values) and the
	// player count at the first change.
	journal []journalEntry
	saved   []uint32
}

type journalEntry struct {
	row     uint32
	players int // len(ids) before this entry; a new player is an entry too
	created bool
}

// NewPlayers returns an empty table for rows of stride counters
// (Table.Stride).
func NewPlayers(stride int) *Players {
	return &Players{stride: stride, index: map[string]uint32{}}
}

// Stride is the number of counters per player.
func (p *Players) Stride() int { return p.stride }

// Len is the number of players.
func (p *Players) Len() int { return len(p.ids) }

// Lookup returns user's row, or ok false if they never drew. The row must
// not be changed.
func (p *Players) Lookup(user string) (Row, bool) {
	i, ok := p.index[user]
	if !ok {
		return nil, false
	}
	return p.row(i), true
}

// At returns the i-th player (first-draw order) and their row.
func (p *Players) At(i int) (string, Row) { return p.ids[i], p.row(uint32(i)) }

func (p *Players) row(i uint32) Row {
	o := int(i) * p.stride
	return Row(p.rows[o : o+p.stride : o+p.stride])
}

// Edit returns user's row for changing, adding the player if new. The old
// values go to the undo journal first.
func (p *Players) Edit(user string) Row {
	i, ok := p.index[user]
	if !ok {
		i = uint32(len(p.ids))
		p.journal = append(p.journal, journalEntry{row: i, players: len(p.ids), created: true})
		p.index[user] = i
		p.ids = append(p.ids, user)
		for range p.stride {
			p.rows = append(p.rows, 0)
		}
		return p.row(i)
	}
	r := p.row(i)
	p.journal = append(p.journal, journalEntry{row: i, players: len(p.ids)})
	p.saved = append(p.saved, r...)
	return r
}

// Mark is a point in the undo journal.
type Mark int

// Mark returns the current point of the undo journal.
func (p *Players) Mark() Mark { return Mark(len(p.journal)) }

// Rollback undoes every Edit since m, newest first.
func (p *Players) Rollback(m Mark) {
	for j := len(p.journal) - 1; j >= int(m); j-- {
		e := p.journal[j]
		if e.created {
			delete(p.index, p.ids[e.row])
			p.ids = p.ids[:e.row]
			p.rows = p.rows[:int(e.row)*p.stride]
			continue
		}
		n := len(p.saved) - p.stride
		copy(p.row(e.row), p.saved[n:])
		p.saved = p.saved[:n]
	}
	p.journal = p.journal[:m]
}

// Commit forgets the undo journal: the edits are durable.
func (p *Players) Commit() {
	p.journal = p.journal[:0]
	p.saved = p.saved[:0]
}

// Put sets a player's row wholesale (snapshot load). It is not journaled.
func (p *Players) Put(user string, vals []uint32) {
	i, ok := p.index[user]
	if !ok {
		i = uint32(len(p.ids))
		p.index[user] = i
		p.ids = append(p.ids, user)
		for range p.stride {
			p.rows = append(p.rows, 0)
		}
	}
	copy(p.row(i), vals)
}

// Capture returns the players and a copy of their rows for a snapshot
// taken between batches: the id slice shares storage that later edits
// never change below its length, the rows are copied.
func (p *Players) Capture() (ids []string, rows []uint32) {
	n := len(p.ids)
	return p.ids[:n:n], append([]uint32(nil), p.rows...)
}
