package membership

import (
	"log/slog"
	"slices"
	"strings"
	"time"
)

// seedResolution is what one DNS seed resolved to: the runtime looks the names up (I/O) and
// hands the core plain dial addresses.
type seedResolution struct {
	seed  string   // the DNS seed as configured
	addrs []string // dial addresses (host:port), sorted and deduplicated, when err is ""
	err   string   // why the lookup failed; "" if it answered (with no address, perhaps)
}

// dnsSeedState is what the core knows of one DNS seed of the configuration.
type dnsSeedState struct {
	text     string
	addrs    []string // the addresses of the last answer (kept while lookups fail)
	err      string   // why the last lookup failed; "" if it answered
	resolved bool     // a lookup has answered at least once
	logged   string   // the outcome last logged, so each change is logged once
}

// maxLoggedAddresses caps the addresses a "DNS seed resolved" line lists.
const maxLoggedAddresses = 16

// seedsResolved takes the outcome of a round of DNS lookups: the addresses a seed resolved to
// become seeds of their own, dialled as plain addresses; those gone from the answers are no
// longer dialled (the nodes behind them, once met, are redialled as members). A failed
// lookup keeps the addresses of the last answer. Every change of a seed's outcome (an error,
// no address, another set of addresses) is logged once.
func (c *core) seedsResolved(now time.Time, results []seedResolution) {
	for _, r := range results {
		i := slices.IndexFunc(c.dnsSeeds, func(d *dnsSeedState) bool { return d.text == r.seed })
		if i < 0 {
			continue
		}
		d := c.dnsSeeds[i]
		if r.err != "" {
			d.err = r.err
		} else {
			d.err, d.addrs, d.resolved = "", r.addrs, true
		}
		c.logResolution(d)
	}
	c.syncDNSSeeds(now)
	c.runDials(now)
}

// logResolution logs d's outcome if it changed since it was last logged.
func (c *core) logResolution(d *dnsSeedState) {
	outcome := "addrs:" + strings.Join(d.addrs, ",")
	if d.err != "" {
		outcome = "err:" + d.err
	}
	if outcome == d.logged {
		return
	}
	d.logged = outcome
	switch {
	case d.err != "":
		c.log(slog.LevelWarn, "DNS seed did not resolve; retrying with backoff while the node is alone or cannot reach part of the cluster",
			"seed", d.text, "err", d.err, "kept_addresses", len(d.addrs))
	case len(d.addrs) == 0:
		c.log(slog.LevelWarn, "DNS seed resolved to no address; retrying with backoff while the node is alone or cannot reach part of the cluster",
			"seed", d.text)
	default:
		shown := d.addrs[:min(len(d.addrs), maxLoggedAddresses)]
		c.log(slog.LevelInfo, "DNS seed resolved", "seed", d.text, "addresses", len(d.addrs), "addrs", strings.Join(shown, ","))
	}
}

// syncDNSSeeds makes the seeds resolved from DNS the addresses of the last answers: new ones
// are dialled, those gone are dropped. The node's own address and addresses configured as
// seeds are left out; a seed that stays keeps its state (a seed found to be the node itself
// is never dialled again).
func (c *core) syncDNSSeeds(now time.Time) {
	want := map[string]string{} // address → the DNS seed that gave it
	var order []string
	for _, d := range c.dnsSeeds {
		for _, addr := range d.addrs {
			if _, dup := want[addr]; !dup && addr != c.self.Address() {
				want[addr] = d.text
				order = append(order, addr)
			}
		}
	}
	have := map[string]bool{}
	kept := c.seeds[:0]
	for _, s := range c.seeds {
		switch {
		case s.via == "":
			delete(want, s.addr) // configured as an address too: dialled as such
		case want[s.addr] == "":
			continue // gone from the answers
		default:
			s.via = want[s.addr]
			have[s.addr] = true
		}
		kept = append(kept, s)
	}
	clear(c.seeds[len(kept):])
	c.seeds = kept
	for _, addr := range order {
		if via, ok := want[addr]; ok && !have[addr] {
			c.seeds = append(c.seeds, &seed{text: addr, via: via, addr: addr, nextDial: now})
			c.wantDialAt(now)
		}
	}
}

// needsResolution reports whether the DNS seeds should be looked up again: while the node is
// alone (no node connected), while a DNS seed never answered, and while one of the addresses
// they gave leads to no connected node (a node gone, or a part of the cluster cut off).
func (c *core) needsResolution() bool {
	if len(c.dnsSeeds) == 0 || c.leaving {
		return false
	}
	if c.connected == 0 {
		return true
	}
	for _, d := range c.dnsSeeds {
		if !d.resolved {
			return true
		}
	}
	for _, s := range c.seeds {
		if s.via != "" && !s.self && !c.seedStatus(s).Reachable {
			return true
		}
	}
	return false
}

// dnsSeedStatuses reports the DNS seeds that give no seed address to report: the lookup
// failed, or answered with no address but the node's own.
func (c *core) dnsSeedStatuses() []SeedStatus {
	var out []SeedStatus
	for _, d := range c.dnsSeeds {
		if slices.ContainsFunc(c.seeds, func(s *seed) bool { return s.via == d.text && !s.self }) {
			continue
		}
		switch {
		case d.err != "":
			out = append(out, SeedStatus{Seed: d.text, LastError: "lookup failed: " + d.err})
		case !d.resolved:
			out = append(out, SeedStatus{Seed: d.text, LastError: "not looked up yet"})
		case len(d.addrs) == 0:
			out = append(out, SeedStatus{Seed: d.text, LastError: "resolved to no address"})
		}
	}
	return out
}
