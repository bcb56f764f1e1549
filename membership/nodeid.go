package membership

// This file holds the cluster's node identities: parsing and validating node ids
// (name@host:port) and seeds. It does no I/O and keeps no global mutable state.

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/meshnode/meshnode/internal/quote"
)

// Limits of the node id grammar (docs/reference.md, node identity).
const (
	maxNameLen  = 64
	maxHostLen  = 253
	maxLabelLen = 63
	maxPort     = 65535
)

// ErrInvalidNodeID is the sentinel for every node id or seed rejection:
// errors.Is(err, ErrInvalidNodeID) is true for any *IDError.
var ErrInvalidNodeID = errors.New("invalid node id")

// IDError is returned for every rejected node id, seed, address or port. It
// names the part that is wrong and the rule it breaks, and reads like
//
//	invalid node id "1app@h:1": name must start with a letter
//
// The message quotes at most the first 64 bytes of a longer input, then its
// length, so that it never echoes unbounded input back.
type IDError struct {
	// Input is the text that was rejected, whole.
	Input string
	// Part is the part that broke a rule: "id" (the overall shape), "name",
	// "host" or "port"; ParseSeed reports the overall shape as "seed", and
	// ParseAddress and ParseListenAddress as "address".
	Part string
	// Rule is the rule that was broken, e.g. "must start with a letter".
	Rule string

	// subject is what Input was meant to be: "" (a node id), "seed", "address",
	// "listen address" or "port".
	subject string
}

// Error reads `invalid node id "<input>": <part> <rule>` (or `invalid seed ...`,
// `invalid address ...`, `invalid listen address ...`, `invalid port ...` for
// errors from ParseSeed, ParseAddress, ParseListenAddress and ParseListenPort).
func (e *IDError) Error() string {
	subject := e.subject
	if subject == "" {
		subject = "node id"
	}
	return fmt.Sprintf("invalid %s %s: %s %s", subject, quote.Input(e.Input), e.Part, e.Rule)
}

// Is reports whether target is ErrInvalidNodeID, so that
// errors.Is(err, ErrInvalidNodeID) holds for every *IDError.
func (e *IDError) Is(target error) bool { return target == ErrInvalidNodeID }

// NodeID identifies a node as name@host:port. It is a comparable value type:
// two ids are equal exactly when their texts are equal (no case folding, no
// IPv6 canonicalisation). The zero value means "no id".
type NodeID struct {
	name string
	host string // IPv6 literals are kept without brackets
	port uint16
}

// ParseNodeID parses and validates s as name@host:port (docs/reference.md, node identity). An IPv6
// host must be in brackets, e.g. "node_2@[::1]:4369". Any rejection is an
// *IDError; ParseNodeID never panics.
func ParseNodeID(s string) (NodeID, error) {
	return parseID(s, "")
}

// NewNodeID builds and validates an id from its parts. An IPv6 host is given
// without brackets ("::1"). Any rejection is an *IDError.
func NewNodeID(name, host string, port int) (NodeID, error) {
	fail := func(part, rule string) (NodeID, error) {
		input := name + "@" + net.JoinHostPort(host, strconv.Itoa(port))
		return NodeID{}, &IDError{Input: input, Part: part, Rule: rule}
	}
	if rule := nameRule(name); rule != "" {
		return fail("name", rule)
	}
	if rule := hostRule(host); rule != "" {
		return fail("host", rule)
	}
	if port < 1 || port > maxPort {
		return fail("port", portRangeRule)
	}
	return NodeID{name: name, host: host, port: uint16(port)}, nil
}

// ValidateNodeID reports whether s is a valid node id: nil, or the *IDError
// ParseNodeID would return.
func ValidateNodeID(s string) error {
	_, err := ParseNodeID(s)
	return err
}

// MustParseNodeID is ParseNodeID that panics on error. It is meant for tests
// and examples with constant ids only.
func MustParseNodeID(s string) NodeID {
	id, err := ParseNodeID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// ParseSeed parses a seed, which is only an address to dial: either a full
// id "name@host:port" (whose id is returned too) or a plain "host:port"
// (returned id is zero). Host and port follow the node id rules, IPv6 hosts in
// brackets. addr is the dial address, as NodeID.Address formats it. Any
// rejection is an *IDError reading `invalid seed "<input>": ...`.
func ParseSeed(s string) (addr string, id NodeID, err error) {
	if strings.Contains(s, "@") {
		id, err = parseID(s, "seed")
		if err != nil {
			return "", NodeID{}, err
		}
		return id.Address(), id, nil
	}
	if s == "" {
		return "", NodeID{}, &IDError{Input: s, Part: "seed", Rule: "must not be empty", subject: "seed"}
	}
	host, port, perr := parseHostPort(s, false)
	if perr != nil {
		perr.Input, perr.subject = s, "seed"
		return "", NodeID{}, perr
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), NodeID{}, nil
}

// ParseAddress parses a dial address, host:port ([host]:port for IPv6), by the
// rules of a node id's host and port: what a client dials and a plain seed.
// It returns the address as NodeID.Address formats it. Any rejection is an
// *IDError reading `invalid address "<input>": ...`.
func ParseAddress(s string) (string, error) {
	if s == "" {
		return "", &IDError{Input: s, Part: "address", Rule: "must not be empty (expected host:port)", subject: "address"}
	}
	host, port, err := parseHostPort(s, false)
	if err != nil {
		err.Input, err.subject = s, "address"
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), nil
}

// ParseListenAddress parses the address a listener binds, host:port: the host
// may be empty (every interface, ":9469") and the port may be 0 (pick a free
// one); otherwise host and port follow the node id rules, an IPv6 host in
// brackets. It returns the host (without brackets) and the port. Any rejection
// is an *IDError reading `invalid listen address "<input>": ...`.
func ParseListenAddress(s string) (host string, port int, err error) {
	if s == "" {
		return "", 0, &IDError{Input: s, Part: "address", Rule: "must not be empty (expected host:port)", subject: "listen address"}
	}
	h, p, perr := parseHostPort(s, true)
	if perr != nil {
		perr.Input, perr.subject = s, "listen address"
		return "", 0, perr
	}
	return h, int(p), nil
}

// ParseListenPort parses a listen port as a flag or the environment gives it:
// "0" (pick a free port) or a port by the node id rule: decimal digits only, no
// sign, no leading zero, 1–65535. Any rejection is an *IDError reading
// `invalid port "<input>": port ...`.
func ParseListenPort(s string) (int, error) {
	port, rule := parsePort(s, true)
	if rule != "" {
		return 0, &IDError{Input: s, Part: "port", Rule: rule, subject: "port"}
	}
	return int(port), nil
}

// parseID parses name@host:port; subject selects how errors read.
func parseID(s, subject string) (NodeID, error) {
	fail := func(part, rule string) (NodeID, error) {
		return NodeID{}, &IDError{Input: s, Part: part, Rule: rule, subject: subject}
	}
	whole := "id"
	if subject != "" {
		whole = subject
	}
	switch n := strings.Count(s, "@"); {
	case s == "":
		return fail(whole, "must not be empty")
	case n == 0:
		return fail(whole, "must be name@host:port (missing '@')")
	case n > 1:
		return fail(whole, "must be name@host:port (more than one '@')")
	}
	name, hostPort, _ := strings.Cut(s, "@")
	if rule := nameRule(name); rule != "" {
		return fail("name", rule)
	}
	host, port, err := parseHostPort(hostPort, false)
	if err != nil {
		err.Input, err.subject = s, subject
		return NodeID{}, err
	}
	return NodeID{name: name, host: host, port: port}, nil
}

// parseHostPort splits and validates host:port ([v6]:port for IPv6). The
// returned host has no brackets. With listen, the host may be empty and the
// port 0. The error's Input is left for the caller.
func parseHostPort(s string, listen bool) (string, uint16, *IDError) {
	fail := func(part, rule string) (string, uint16, *IDError) {
		return "", 0, &IDError{Part: part, Rule: rule}
	}
	var host, portText string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return fail("host", "has '[' without a closing ']'")
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest == "" {
			return fail("port", "is missing (expected [host]:port)")
		}
		if rest[0] != ':' {
			return fail("host", "must be followed directly by ':port'")
		}
		portText = rest[1:]
		if !strings.Contains(host, ":") {
			return fail("host", "may use brackets only around an IPv6 address")
		}
	} else {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return fail("port", "is missing (expected host:port)")
		}
		host, portText = s[:i], s[i+1:]
		if strings.ContainsAny(host, "[]") {
			return fail("host", "may use brackets only around a whole IPv6 address")
		}
		if strings.Contains(host, ":") {
			return fail("host", "must put an IPv6 address in brackets, e.g. [::1]:4369")
		}
	}
	if rule := hostRule(host); rule != "" && (!listen || host != "") {
		return fail("host", rule)
	}
	port, rule := parsePort(portText, listen)
	if rule != "" {
		return fail("port", rule)
	}
	return host, port, nil
}

// portRangeRule is the rule broken by a port outside 1–65535.
const portRangeRule = "must be between 1 and 65535"

// parsePort parses a strict decimal port in 1–65535 (or exactly "0" when
// zero is allowed: a listener's "pick a free port"); on failure it returns the
// rule broken.
func parsePort(s string, zero bool) (uint16, string) {
	if s == "" {
		return 0, "must not be empty"
	}
	if zero && s == "0" {
		return 0, ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, "must contain only decimal digits"
		}
	}
	if strings.Trim(s, "0") == "" {
		return 0, portRangeRule
	}
	if s[0] == '0' {
		return 0, "must not have leading zeros"
	}
	if len(s) > len("65535") {
		return 0, portRangeRule
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPort {
		return 0, portRangeRule
	}
	return uint16(n), ""
}

// nameRule returns the rule a node name breaks, or "" if it is valid:
// 1–64 chars, an ASCII letter first, then ASCII letters, digits, '_' or '-'.
func nameRule(name string) string {
	switch {
	case name == "":
		return "must not be empty"
	case len(name) > maxNameLen:
		return fmt.Sprintf("must be at most %d characters (got %d)", maxNameLen, len(name))
	case !isLetter(name[0]):
		return "must start with a letter"
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isLetter(c) && !isDigit(c) && c != '_' && c != '-' {
			return fmt.Sprintf("must contain only letters, digits, '_' and '-' (found %s)", quoteByte(name, i))
		}
	}
	return ""
}

// hostRule returns the rule a bracket-less host breaks, or "" if it is valid:
// an IPv6 literal (anything with ':'), dotted IPv4 (anything made only of
// digits and dots), or else an RFC 1123 hostname.
func hostRule(host string) string {
	switch {
	case host == "":
		return "must not be empty"
	case strings.ContainsAny(host, "[]"):
		return "must be given without brackets"
	case strings.Contains(host, ":"):
		return ipv6Rule(host)
	case strings.Trim(host, "0123456789.") == "":
		return ipv4Rule(host)
	default:
		return hostnameRule(host)
	}
}

// ipv6Rule validates an IPv6 literal without brackets; zones are refused.
func ipv6Rule(host string) string {
	addr, err := netip.ParseAddr(host)
	switch {
	case err != nil || !addr.Is6():
		return "is not a valid IPv6 address"
	case addr.Zone() != "":
		return "must not have an IPv6 zone"
	}
	return ""
}

// ipv4Rule validates dotted-quad IPv4: four octets 0–255 without leading zeros.
func ipv4Rule(host string) string {
	// Counted and iterated rather than split: every id in every view a peer sends passes here.
	if n := strings.Count(host, ".") + 1; n != 4 {
		return fmt.Sprintf("is not a valid IPv4 address (must have 4 octets, got %d)", n)
	}
	for o := range strings.SplitSeq(host, ".") {
		switch {
		case o == "":
			return "is not a valid IPv4 address (empty octet)"
		case len(o) > 1 && o[0] == '0':
			return fmt.Sprintf("is not a valid IPv4 address (octet %s has a leading zero)", quote.Input(o))
		}
		if n, err := strconv.Atoi(o); err != nil || n > 255 {
			return fmt.Sprintf("is not a valid IPv4 address (octet %s is greater than 255)", quote.Input(o))
		}
	}
	return ""
}

// hostnameRule validates an RFC 1123 hostname: at most 253 chars of
// dot-separated labels, each 1–63 ASCII letters, digits or '-', not starting
// or ending with '-'.
func hostnameRule(host string) string {
	if len(host) > maxHostLen {
		return fmt.Sprintf("must be at most %d characters (got %d)", maxHostLen, len(host))
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !isLetter(c) && !isDigit(c) && c != '-' && c != '.' {
			return fmt.Sprintf("must contain only letters, digits, '-' and '.' (found %s)", quoteByte(host, i))
		}
	}
	for label := range strings.SplitSeq(host, ".") {
		switch {
		case label == "":
			return "must not have an empty label"
		case len(label) > maxLabelLen:
			return fmt.Sprintf("labels must be at most %d characters (got %d)", maxLabelLen, len(label))
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Sprintf("labels must not start or end with '-' (got %s)", quote.Input(label))
		}
	}
	return ""
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// quoteByte quotes the character starting at byte i of s: the whole rune if it
// is valid UTF-8, else the single byte.
func quoteByte(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[i])
	}
	return strconv.QuoteRune(r)
}

// Name returns the node name, e.g. "app1".
func (id NodeID) Name() string { return id.name }

// Host returns the host; an IPv6 address is returned without brackets ("::1").
func (id NodeID) Host() string { return id.host }

// Port returns the port, 1–65535 (0 for the zero id).
func (id NodeID) Port() int { return int(id.port) }

// Address returns host:port, what to dial (IPv6 in brackets); "" for the zero id.
func (id NodeID) Address() string {
	if id.IsZero() {
		return ""
	}
	return net.JoinHostPort(id.host, strconv.Itoa(int(id.port)))
}

// hostPort is an id's address as a comparable value: a map key that, unlike Address, costs
// no allocation.
type hostPort struct {
	host string
	port uint16
}

// hostPort returns id's address as a hostPort.
func (id NodeID) hostPort() hostPort { return hostPort{host: id.host, port: id.port} }

// String returns name@host:port with IPv6 hosts in brackets; "" for the zero
// id. ParseNodeID(id.String()) returns an id equal to id.
func (id NodeID) String() string {
	if id.IsZero() {
		return ""
	}
	var buf [96]byte
	return string(id.appendTo(buf[:0])) // one allocation: peers encode ids by the thousand
}

// IsZero reports whether id is the zero value ("no id").
func (id NodeID) IsZero() bool { return id == NodeID{} }

// appendTo appends String() to b; it allocates only to grow b.
func (id NodeID) appendTo(b []byte) []byte {
	if id.IsZero() {
		return b
	}
	b = append(append(b, id.name...), '@')
	if strings.IndexByte(id.host, ':') >= 0 { // as net.JoinHostPort brackets IPv6 hosts
		b = append(append(append(b, '['), id.host...), ']')
	} else {
		b = append(b, id.host...)
	}
	return strconv.AppendUint(append(b, ':'), uint64(id.port), 10)
}

// Compare orders ids by name, then host, then port: a total order every node computes the
// same way, used for deterministic tie breaks. It does not allocate.
func (id NodeID) Compare(other NodeID) int {
	if c := strings.Compare(id.name, other.name); c != 0 {
		return c
	}
	if c := strings.Compare(id.host, other.host); c != 0 {
		return c
	}
	return cmp.Compare(id.port, other.port)
}

// MarshalText implements encoding.TextMarshaler: the id's String() (empty for
// the zero id).
func (id NodeID) MarshalText() ([]byte, error) {
	return []byte(id.String()), nil
}

// AppendText implements encoding.TextAppender: it appends the id's String() (nothing for
// the zero id) to b, allocating only to grow b.
func (id NodeID) AppendText(b []byte) ([]byte, error) {
	return id.appendTo(b), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseNodeID. Empty
// text yields the zero id, mirroring MarshalText.
func (id *NodeID) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*id = NodeID{}
		return nil
	}
	parsed, err := ParseNodeID(string(text))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}
