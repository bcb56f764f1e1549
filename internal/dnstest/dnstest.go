// Package dnstest is a small authoritative DNS server on loopback for tests: A, AAAA and SRV
// records that a test changes while nodes resolve them (a pod added, a pod gone, the whole
// answer empty).
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// SRV is one SRV record's target and port.
type SRV struct {
	// Target is the host name the record points at.
	Target string
	// Port is the port the record gives.
	Port uint16
}

// Server answers A, AAAA and SRV queries from records the test sets, over UDP and TCP on one
// loopback port. Names are case-insensitive; a trailing dot is optional.
type Server struct {
	udp, tcp *dns.Server
	addr     string
	close    sync.Once
	closeErr error

	mu      sync.Mutex
	hosts   map[string][]net.IP // name → addresses
	srv     map[string][]SRV    // name → records
	queries map[string]int      // name → queries received
}

// Start starts a server on 127.0.0.1 at a free port (the same for UDP and TCP).
func Start() (*Server, error) {
	s := &Server{hosts: map[string][]net.IP{}, srv: map[string][]SRV{}, queries: map[string]int{}}
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("dnstest: listen udp: %w", err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			_ = pc.Close()
			lastErr = err
			continue // the TCP port is taken: try another
		}
		s.addr = pc.LocalAddr().String()
		s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
		s.tcp = &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serve)}
		if err := startServer(s.udp); err != nil {
			_ = pc.Close()
			_ = l.Close()
			return nil, err
		}
		if err := startServer(s.tcp); err != nil {
			_ = s.udp.Shutdown()
			_ = l.Close()
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("dnstest: no free port for UDP and TCP: %w", lastErr)
}

// startServer runs srv in the background and returns once it serves.
func startServer(srv *dns.Server) error {
	started := make(chan struct{})
	failed := make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(started) }
	go func() {
		if err := srv.ActivateAndServe(); err != nil {
			failed <- err
		}
	}()
	select {
	case <-started:
		return nil
	case err := <-failed:
		return fmt.Errorf("dnstest: serve: %w", err)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("dnstest: server did not start within 5s")
	}
}

// Addr returns the server's address, 127.0.0.1:port.
func (s *Server) Addr() string { return s.addr }

// Close stops the server; closing it again does nothing.
func (s *Server) Close() error {
	s.close.Do(func() {
		errU := s.udp.Shutdown()
		errT := s.tcp.Shutdown()
		switch {
		case errU != nil:
			s.closeErr = fmt.Errorf("dnstest: shut down udp: %w", errU)
		case errT != nil:
			s.closeErr = fmt.Errorf("dnstest: shut down tcp: %w", errT)
		}
	})
	return s.closeErr
}

// SetHost sets the addresses of name (A for IPv4, AAAA for IPv6); none removes the name.
func (s *Server) SetHost(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := canonical(name)
	if len(ips) == 0 {
		delete(s.hosts, key)
		return
	}
	parsed := make([]net.IP, 0, len(ips))
	for _, ip := range ips {
		p := net.ParseIP(ip)
		if p == nil {
			panic("dnstest: not an IP address: " + ip)
		}
		parsed = append(parsed, p)
	}
	s.hosts[key] = parsed
}

// SetSRV sets the SRV records of name; none leaves the name with no record (an empty
// answer).
func (s *Server) SetSRV(name string, records ...SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv[canonical(name)] = append([]SRV(nil), records...)
}

// Queries returns how many queries for name the server received.
func (s *Server) Queries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[canonical(name)]
}

// canonical returns name in lower case with a trailing dot.
func canonical(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// serve answers one query: the records set for the name, an empty answer for a name that
// has records of another kind, NXDOMAIN for a name it does not know.
func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) == 1 {
		s.answer(resp, req.Question[0])
	}
	_ = w.WriteMsg(resp)
}

func (s *Server) answer(resp *dns.Msg, q dns.Question) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := canonical(q.Name)
	s.queries[name]++
	ips, isHost := s.hosts[name]
	records, isSRV := s.srv[name]
	if !isHost && !isSRV {
		resp.Rcode = dns.RcodeNameError
		return
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 0}
	}
	switch q.Qtype {
	case dns.TypeA:
		for _, ip := range ips {
			if v4 := ip.To4(); v4 != nil {
				resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: v4})
			}
		}
	case dns.TypeAAAA:
		for _, ip := range ips {
			if ip.To4() == nil {
				resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: ip})
			}
		}
	case dns.TypeSRV:
		for _, r := range records {
			resp.Answer = append(resp.Answer, &dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: 0, Weight: 1, Port: r.Port, Target: canonical(r.Target)})
		}
	}
}
