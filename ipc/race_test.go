//go:build race

package ipc

// raceEnabled: the race detector allocates on its own, so allocation
// counts are checked only without it (.ci/run runs those tests again).
const raceEnabled = true
