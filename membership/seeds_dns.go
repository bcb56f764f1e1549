package membership

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/quote"
)

// DNS seed prefixes (Config.Seeds).
const (
	// DNSSeedPrefix starts a seed dialled at every A/AAAA address of a name:
	// "dns+host:port".
	DNSSeedPrefix = "dns+"
	// DNSSRVSeedPrefix starts a seed read from DNS SRV records, whose targets are then
	// resolved to addresses, each dialled at the port its record gives:
	// "dnssrv+_service._proto.domain".
	DNSSRVSeedPrefix = "dnssrv+"
)

// MaxDNSSeedAddresses caps the addresses one DNS seed resolves to; the rest of a larger
// answer is ignored (the nodes behind it are learned through the ones dialled).
const MaxDNSSeedAddresses = 256

// DNSSeed is a seed resolved through DNS (see ParseDNSSeed).
type DNSSeed struct {
	// Text is the seed as configured, e.g. "dns+meshnode.default.svc:4369".
	Text string
	// SRV is set for a dnssrv+ seed: Name is read as SRV records, whose targets are
	// resolved and dialled at the ports the records give.
	SRV bool
	// Name is the DNS name looked up, without a trailing dot.
	Name string
	// Port is the port dialled at every address of a dns+ seed; 0 for a dnssrv+ seed.
	Port int
}

// IsDNSSeed reports whether s is written as a DNS seed (dns+… or dnssrv+…), valid or not.
func IsDNSSeed(s string) bool {
	return strings.HasPrefix(s, DNSSeedPrefix) || strings.HasPrefix(s, DNSSRVSeedPrefix)
}

// ParseDNSSeed parses a DNS seed: "dns+host:port" (every A/AAAA address of host, at port;
// host an RFC 1123 hostname or an IP address, a trailing dot allowed) or
// "dnssrv+_service._proto.domain" (the SRV records of that name, then the addresses of
// their targets; labels of letters, digits, '-' and '_'). Any rejection is an *IDError
// reading `invalid seed "<input>": ...`.
func ParseDNSSeed(s string) (DNSSeed, error) {
	fail := func(part, rule string) (DNSSeed, error) {
		return DNSSeed{}, &IDError{Input: s, Part: part, Rule: rule, subject: "seed"}
	}
	switch {
	case strings.HasPrefix(s, DNSSRVSeedPrefix):
		name := strings.TrimSuffix(strings.TrimPrefix(s, DNSSRVSeedPrefix), ".")
		if rule := srvNameRule(name); rule != "" {
			return fail("SRV name", rule)
		}
		return DNSSeed{Text: s, SRV: true, Name: name}, nil
	case strings.HasPrefix(s, DNSSeedPrefix):
		rest := strings.TrimPrefix(s, DNSSeedPrefix)
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return fail("port", "is missing (expected dns+host:port)")
		}
		host, portText := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(rest[:i], "["), "]"), "."), rest[i+1:]
		if rule := hostRule(host); rule != "" {
			return fail("host", rule)
		}
		port, err := ParseListenPort(portText)
		if err != nil || port == 0 {
			return fail("port", portRangeRule)
		}
		return DNSSeed{Text: s, Name: host, Port: port}, nil
	default:
		return fail("seed", fmt.Sprintf("must start with %q or %q", DNSSeedPrefix, DNSSRVSeedPrefix))
	}
}

// srvNameRule validates the name of an SRV lookup: at most 253 chars of dot-separated
// labels, each 1–63 ASCII letters, digits, '-' or '_' ("_peer._tcp.meshnode.default.svc").
func srvNameRule(name string) string {
	if name == "" {
		return "must not be empty (expected dnssrv+_service._proto.domain)"
	}
	if len(name) > maxHostLen {
		return fmt.Sprintf("must be at most %d characters (got %d)", maxHostLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isLetter(c) && !isDigit(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Sprintf("must contain only letters, digits, '-', '_' and '.' (found %s)", quoteByte(name, i))
		}
	}
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "":
			return "must not have an empty label"
		case len(label) > maxLabelLen:
			return fmt.Sprintf("labels must be at most %d characters (got %d)", maxLabelLen, len(label))
		}
	}
	return ""
}

// dialAddress returns the dial address of ip (an address a resolver returned) at port, as
// NodeID.Address formats it; "" if ip is no IP address a node can be dialled at (a zone, a
// name, the unspecified address).
func dialAddress(ip string, port int) string {
	addr, err := parseIP(ip)
	if err != "" {
		return ""
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

// parseIP checks that s is a plain IP address and returns its text, or a reason it is not.
func parseIP(s string) (string, string) {
	ip := net.ParseIP(s)
	if ip == nil || ip.IsUnspecified() || strings.Contains(s, "%") {
		return "", "not an IP address: " + quote.Input(s)
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String(), ""
	}
	return ip.String(), ""
}
