package rewardpool

import (
	"github.com/rewardpool/rewardpool/internal/failpoint"
	"github.com/rewardpool/rewardpool/wal"
)

// The log's failpoints are set through internal/failpoint, never through a
// public option.
func init() {
	failpoint.Register(func(opts any) *wal.Hooks { return &opts.(*Options).walHooks })
}
