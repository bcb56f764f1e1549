//go:build race

package membership

// raceEnabled says the tests run with the race detector, which slows the simulation about
// tenfold: the scale simulation then defaults to fewer nodes.
const raceEnabled = true
