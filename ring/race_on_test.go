//go:build race

package ring

// raceEnabled is true under -race, where the studies run fewer clusters.
const raceEnabled = true
