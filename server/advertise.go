package server

import (
	"net"
	"net/netip"
)

// advertiseHost picks the host other nodes dial (docs/reference.md, node identity): the configured advertise host
// if any, else the bind host when it is a specific address, else the machine's first private
// non-loopback address, else 127.0.0.1.
func advertiseHost(advertise, bind string) string {
	if advertise != "" {
		return advertise
	}
	if ip, err := netip.ParseAddr(bind); err != nil || !ip.IsUnspecified() {
		return bind
	}
	if ip, ok := firstPrivateAddr(); ok {
		return ip
	}
	return "127.0.0.1"
}

// firstPrivateAddr returns the first private, non-loopback unicast address of the machine.
func firstPrivateAddr() (string, bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", false
	}
	for _, a := range addrs {
		prefix, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := prefix.Addr()
		if ip.IsPrivate() && !ip.IsLoopback() && ip.Is4() {
			return ip.String(), true
		}
	}
	return "", false
}
