//go:build !race

package rewardpool

const raceEnabled = false
