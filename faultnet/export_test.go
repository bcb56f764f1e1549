package faultnet

import "net"

// ReadsOnReady returns how many ReadOnReady calls the connections of nw served: a test sees
// through it that gRPC reads this way.
func ReadsOnReady(nw *Network) int64 { return nw.readsOnReady.Load() }

// Wrap makes inner a connection of nw, as Listen and DialContext do with a TCP socket: a test
// gives it a connection that is no syscall.Conn.
func Wrap(nw *Network, inner net.Conn) (net.Conn, error) { return nw.track(inner) }
