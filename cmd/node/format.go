package main

import "strconv"

// plural counts n things: "1 node", "0 nodes", "3 processes".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
