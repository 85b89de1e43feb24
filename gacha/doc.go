// Package gacha holds a pool's player rules: pity per tier (hard, soft,
// featured guarantee), per-user caps, item caps and the draw window. It is
// pure and deterministic: no I/O, no clock of its own (the writer passes
// the time it logs), no randomness but the source it is given.
//
// A Table is the rules compiled for drawing; Players holds each player's
// fixed-size row of counters. The engine calls, for each draw of a player,
// Check (caps and window, all or nothing for a request), Draw (which tier
// and item), then Apply (the row's change, the same call replay makes from
// the logged record). Odds reports the probabilities of the next draw from
// the same plan Draw samples, so what a player is shown is what they get.
package gacha
