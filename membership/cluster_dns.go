package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Resolver looks up the DNS seeds' names; *net.Resolver satisfies it. Tests and embedding
// applications may pass their own with WithResolver.
type Resolver interface {
	// LookupHost returns the addresses of host.
	LookupHost(ctx context.Context, host string) ([]string, error)
	// LookupSRV returns the SRV records of name when service and proto are empty.
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// WithResolver sets the resolver of DNS seeds (default: one asking Config.DNSServer if set,
// else the system's resolver).
func WithResolver(r Resolver) Option { return func(c *Cluster) { c.resolver = r } }

// Timing of DNS seed lookups.
const (
	// dnsRetryMin is the first delay between two lookups while they are needed; it applies
	// again whenever an answer changes.
	dnsRetryMin = time.Second
	// dnsRetryMax caps the doubling delay between lookups that keep giving the same answer.
	dnsRetryMax = 30 * time.Second
	// dnsIdleCheck is how often a node that needs no lookup checks whether it needs one (a
	// check of the node's state under its lock, no DNS query).
	dnsIdleCheck = time.Second
	// dnsLookupTimeout bounds one round of lookups of one DNS seed.
	dnsLookupTimeout = 5 * time.Second
	// maxSRVTargets caps the SRV targets of one answer that are resolved.
	maxSRVTargets = MaxDNSSeedAddresses
)

// newResolver returns the resolver of DNS seeds for cfg: one asking cfg.DNSServer, else the
// system's.
func newResolver(cfg *Config) Resolver {
	if cfg.DNSServer == "" {
		return net.DefaultResolver
	}
	server := cfg.DNSServer
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// hasDNSSeeds reports whether cfg has a DNS seed.
func hasDNSSeeds(cfg *Config) bool { return slices.ContainsFunc(cfg.Seeds, IsDNSSeed) }

// resolveSeeds looks up every DNS seed of the configuration, each within dnsLookupTimeout.
func (c *Cluster) resolveSeeds(ctx context.Context) []seedResolution {
	var out []seedResolution
	for _, text := range c.cfg.Seeds {
		if !IsDNSSeed(text) {
			continue
		}
		ds, err := ParseDNSSeed(text)
		if err != nil {
			continue // Validate refused it already
		}
		lookupCtx, cancel := context.WithTimeout(ctx, dnsLookupTimeout)
		addrs, err := lookupSeed(lookupCtx, c.resolver, ds)
		cancel()
		r := seedResolution{seed: text, addrs: addrs}
		if err != nil {
			r.addrs, r.err = nil, err.Error()
		}
		out = append(out, r)
	}
	return out
}

// lookupSeed returns the dial addresses of ds, sorted, deduplicated and at most
// MaxDNSSeedAddresses. A name that does not exist, or has no record of the kind asked, is an
// answer with no address, not an error. For an SRV seed, a target whose addresses cannot be
// looked up is an error only if no target could be.
func lookupSeed(ctx context.Context, r Resolver, ds DNSSeed) ([]string, error) {
	var addrs []string
	if !ds.SRV {
		ips, err := r.LookupHost(ctx, ds.Name)
		if err != nil {
			if isNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("look up %s: %w", ds.Name, err)
		}
		for _, ip := range ips {
			if a := dialAddress(ip, ds.Port); a != "" {
				addrs = append(addrs, a)
			}
		}
		return tidyAddresses(addrs), nil
	}
	_, records, err := r.LookupSRV(ctx, "", "", ds.Name)
	if err != nil && len(records) == 0 {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("look up SRV %s: %w", ds.Name, err)
	}
	var failed []string
	for i, rec := range records {
		if i == maxSRVTargets {
			break
		}
		target := strings.TrimSuffix(rec.Target, ".")
		if target == "" || rec.Port == 0 {
			continue
		}
		ips, err := r.LookupHost(ctx, target)
		if err != nil {
			failed = append(failed, target)
			continue
		}
		for _, ip := range ips {
			if a := dialAddress(ip, int(rec.Port)); a != "" {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 && len(failed) > 0 {
		return nil, fmt.Errorf("look up SRV %s: no target resolved (%s)", ds.Name, strings.Join(failed, ", "))
	}
	return tidyAddresses(addrs), nil
}

// isNotFound reports whether err says the name has no record of the kind asked.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// tidyAddresses sorts and deduplicates addrs and keeps at most MaxDNSSeedAddresses.
func tidyAddresses(addrs []string) []string {
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	return addrs[:min(len(addrs), MaxDNSSeedAddresses)]
}

// resolutionKey sums up a round of lookups, to tell whether an answer changed.
func resolutionKey(results []seedResolution) string {
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "%s=%s|%s;", r.seed, strings.Join(r.addrs, ","), r.err)
	}
	return b.String()
}

// startDNSLocked starts the lookups of the DNS seeds after the first round, initial.
func (c *Cluster) startDNSLocked(initial []seedResolution) {
	if !hasDNSSeeds(c.cfg) {
		return
	}
	c.dnsCtx, c.dnsCancel = context.WithCancel(context.Background())
	c.dnsLast, c.dnsDelay = resolutionKey(initial), dnsRetryMin
	c.scheduleDNSLocked(dnsRetryMin)
}

// stopDNSLocked stops the lookups; waitDNS waits for a round under way to end.
func (c *Cluster) stopDNSLocked() {
	if c.dnsCancel != nil {
		c.dnsCancel()
	}
	if c.dnsTimer != nil {
		c.dnsTimer.Stop()
		c.dnsTimer = nil
	}
}

// scheduleDNSLocked checks again after d whether the DNS seeds need a lookup.
func (c *Cluster) scheduleDNSLocked(d time.Duration) {
	core, ctx := c.core, c.dnsCtx
	c.dnsTimer = c.clock.AfterFunc(d, func() { c.checkDNS(core, ctx) })
}

// checkDNS starts a round of lookups if the node needs one (see core.needsResolution);
// otherwise it checks again after dnsIdleCheck, and the next lookup needed goes out at once.
func (c *Cluster) checkDNS(core *core, ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.core != core || ctx.Err() != nil || (c.status != ClusterRunning && c.status != ClusterStarting) {
		return
	}
	if !core.needsResolution() {
		c.dnsDelay = dnsRetryMin
		c.scheduleDNSLocked(dnsIdleCheck)
		return
	}
	c.dnsRounds.Add(1)
	go func() {
		defer c.dnsRounds.Done()
		results := c.resolveSeeds(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.core != core || ctx.Err() != nil {
			return
		}
		if key := resolutionKey(results); key != c.dnsLast {
			c.dnsLast, c.dnsDelay = key, dnsRetryMin
		} else {
			c.dnsDelay = min(2*c.dnsDelay, dnsRetryMax)
		}
		c.stepLocked(func(now time.Time) { core.seedsResolved(now, results) })
		c.scheduleDNSLocked(c.dnsDelay)
	}()
}
