package gacha

import "fmt"

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
//	[4+P+C : ]    units drawn, one per paced item (used in the pool's row,
//	              PoolRow, only)
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
//
// Rows live in chunks of chunkPlayers players. A snapshot (Capture) takes
// the chunks as they are, in O(chunks), and the writer copies a chunk
// before its first change after a capture: a snapshot of ten million
// players costs the writer microseconds, not a 240 MB copy.
type Players struct {
	stride int
	index  map[string]uint32
	ids    []string
	chunks []*chunk
	gen    uint64 // raised by Capture: chunks of an older gen are shared

	// Undo journal since the last Commit: saved rows (old values) and the
	// player count at the first change.
	journal []journalEntry
	saved   []uint32
}

const chunkPlayers = 1024

type chunk struct {
	gen  uint64 // the Players gen it was made or copied in
	rows []uint32
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

// At returns the i-th player (first-draw order) and their row (read only).
func (p *Players) At(i int) (string, Row) { return p.ids[i], p.row(uint32(i)) }

// row is player i's row, to read.
func (p *Players) row(i uint32) Row {
	c := p.chunks[i/chunkPlayers]
	o := int(i%chunkPlayers) * p.stride
	return Row(c.rows[o : o+p.stride : o+p.stride])
}

// writable is player i's row, to change: its chunk is copied first if a
// snapshot holds it.
func (p *Players) writable(i uint32) Row {
	k := i / chunkPlayers
	for int(k) >= len(p.chunks) {
		p.chunks = append(p.chunks, &chunk{gen: p.gen, rows: make([]uint32, chunkPlayers*p.stride)})
	}
	if c := p.chunks[k]; c.gen != p.gen {
		p.chunks[k] = &chunk{gen: p.gen, rows: append([]uint32(nil), c.rows...)}
	}
	return p.row(i)
}

// Index returns user's place in the table, or ok false if they never drew.
func (p *Players) Index(user string) (i uint32, ok bool) {
	i, ok = p.index[user]
	return i, ok
}

// Row returns the row of the player at index i (from Index or EditIndex).
// It may be changed only after Edit or EditIndex of that player, and only
// until the next Capture.
func (p *Players) Row(i uint32) Row { return p.row(i) }

// Edit returns user's row for changing, adding the player if new. The old
// values go to the undo journal first.
func (p *Players) Edit(user string) Row {
	i, ok := p.index[user]
	return p.row(p.edit(user, i, ok))
}

// EditIndex is Edit for a player whose Index the caller has (ok false: a
// new player), without hashing the id again; it returns the index.
func (p *Players) EditIndex(user string, i uint32, ok bool) uint32 {
	return p.edit(user, i, ok)
}

func (p *Players) edit(user string, i uint32, ok bool) uint32 {
	if !ok {
		i = uint32(len(p.ids))
		p.journal = append(p.journal, journalEntry{row: i, players: len(p.ids), created: true})
		p.index[user] = i
		p.ids = append(p.ids, user)
		clear(p.writable(i)) // a rolled-back player may have left counters
		return i
	}
	p.journal = append(p.journal, journalEntry{row: i, players: len(p.ids)})
	p.saved = append(p.saved, p.writable(i)...)
	return i
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
			continue
		}
		n := len(p.saved) - p.stride
		copy(p.writable(e.row), p.saved[n:])
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
	}
	copy(p.writable(i), vals)
}

// Capture returns the players and their rows for a snapshot taken between
// batches, without copying: the id slice shares storage that later edits
// never change below its length, and the chunks are frozen (the writer
// copies a chunk before changing it again). Player i's row is
// chunks[i/ChunkPlayers][(i%ChunkPlayers)*stride:][:stride].
func (p *Players) Capture() (ids []string, chunks [][]uint32) {
	n := len(p.ids)
	chunks = make([][]uint32, len(p.chunks))
	for k, c := range p.chunks {
		chunks[k] = c.rows
	}
	p.gen++
	return p.ids[:n:n], chunks
}

// ChunkPlayers is the number of players per chunk of Capture.
const ChunkPlayers = chunkPlayers

// Flatten copies captured rows of n players into one slice.
func Flatten(chunks [][]uint32, n, stride int) []uint32 {
	out := make([]uint32, 0, n*stride)
	for i := 0; i < n; i += chunkPlayers {
		m := min(chunkPlayers, n-i)
		out = append(out, chunks[i/chunkPlayers][:m*stride]...)
	}
	return out
}

// Columns names the counters of a row, for snapshots: a later run whose
// rules differ keeps the counters whose names it still has.
func (t *Table) Columns() []string {
	cols := []string{"draws", "today", "day", "flags"}
	for _, p := range t.rules.Pity {
		cols = append(cols, "pity:"+p.Tier)
	}
	for _, c := range t.rules.ItemCaps {
		cols = append(cols, "cap:"+c.Item)
	}
	for _, it := range t.rules.Items {
		if it.Release != nil {
			cols = append(cols, "taken:"+it.Item)
		}
	}
	return cols
}

// Restore loads rows saved under cols (a snapshot's) into p, mapping columns
// by name; counters whose column the rules no longer have are dropped, new
// ones start at zero. A flag bit follows its pity rule.
func (t *Table) Restore(p *Players, cols, ids []string, rows []uint32) error {
	if len(rows) != len(ids)*len(cols) {
		return fmt.Errorf("gacha: %d counters for %d players of %d columns", len(rows), len(ids), len(cols))
	}
	mine := t.Columns()
	at := make(map[string]int, len(mine))
	for i, c := range mine {
		at[c] = i
	}
	// moves copy counters; flagMoves move a pity rule's flag bit from its
	// old rule index to its new one.
	type move struct{ from, to int }
	var moves, flagMoves []move
	oldPity, flagCol := 0, -1
	for i, c := range cols {
		if c == "flags" {
			flagCol = i
		}
		j, ok := at[c]
		if ok && i >= rowHeader && j >= rowHeader && len(c) > 5 && c[:5] == "pity:" {
			flagMoves = append(flagMoves, move{oldPity, j - rowHeader})
		}
		if len(c) > 5 && c[:5] == "pity:" {
			oldPity++
		}
		if ok && c != "flags" {
			moves = append(moves, move{i, j})
		}
	}
	vals := make([]uint32, t.stride)
	for k, id := range ids {
		if len(id) > MaxUserLen {
			return fmt.Errorf("gacha: player %d: bad id %q", k, id)
		}
		if _, dup := p.index[id]; dup {
			return fmt.Errorf("gacha: player %q twice", id)
		}
		row := rows[k*len(cols) : (k+1)*len(cols)]
		clear(vals)
		for _, m := range moves {
			vals[m.to] = row[m.from]
		}
		if flagCol >= 0 {
			for _, m := range flagMoves {
				if row[flagCol]&(1<<m.from) != 0 {
					vals[colFlags] |= 1 << m.to
				}
			}
		}
		p.Put(id, vals)
	}
	return nil
}
