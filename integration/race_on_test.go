//go:build race

package integration

// raceEnabled: the tests run under the race detector (5-10x slower):
// tests whose bounds assume full speed widen them or skip phases.
const raceEnabled = true
