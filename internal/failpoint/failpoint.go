// Package failpoint lets tests outside the engine's package inject write
// and sync failures into an engine's write-ahead log. The hooks live in an
// unexported field of rewardpool.Options, out of the public API (bbolt and
// etcd keep their failpoints out of theirs too); this internal package is
// the only door to them, so only this module's tests can use it.
package failpoint

import "github.com/rewardpool/rewardpool/wal"

// access is installed by package rewardpool: it returns the hooks of
// opts, a *rewardpool.Options, for the caller to change.
var access func(opts any) *wal.Hooks

// Register is called once by package rewardpool.
func Register(fn func(opts any) *wal.Hooks) { access = fn }

// OnSync makes fn run before each file, mapping or directory sync of the
// log of an engine opened with opts (a *rewardpool.Options); an error from
// fn fails that sync.
func OnSync(opts any, fn func() error) { access(opts).Sync = fn }

// OnWrite makes fn run before each write to the log; see wal.Hooks.Write.
func OnWrite(opts any, fn func(p []byte) (keep int, err error)) { access(opts).Write = fn }
