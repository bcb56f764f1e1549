//go:build !race

package membership

// raceEnabled says the tests run with the race detector.
const raceEnabled = false
