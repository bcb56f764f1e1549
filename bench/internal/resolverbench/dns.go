package resolverbench

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// dnsServer is an authoritative DNS server on loopback for one name, whose A records the
// benchmark changes as backends come and go. grpc-go's dns:/// resolver is pointed at it
// with an authority (dns://127.0.0.1:PORT/name:port), so the comparison needs no network
// and no change to the machine's resolver configuration.
type dnsServer struct {
	name   string // fully qualified, with the final dot
	server *dns.Server
	done   chan struct{}

	mu      sync.Mutex
	ips     []string
	queries int
}

// startDNS serves name on 127.0.0.1 (UDP, a free port) with no record yet.
func startDNS(name string) (*dnsServer, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dns server: %w", err)
	}
	s := &dnsServer{name: dns.Fqdn(name), done: make(chan struct{})}
	s.server = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.answer)}
	started := make(chan struct{})
	s.server.NotifyStartedFunc = func() { close(started) }
	go func() {
		defer close(s.done)
		_ = s.server.ActivateAndServe()
	}()
	<-started
	return s, nil
}

// addr is the server's address, the authority of a dns:// target.
func (s *dnsServer) addr() string { return s.server.PacketConn.LocalAddr().String() }

// set replaces the A records.
func (s *dnsServer) set(ips []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ips = slices.Clone(ips)
}

// queryCount returns how many A queries were answered.
func (s *dnsServer) queryCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// answer answers A queries for the name with the current records (TTL 0); anything else
// gets an empty answer.
func (s *dnsServer) answer(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	for _, q := range req.Question {
		if q.Qtype != dns.TypeA || !strings.EqualFold(q.Name, s.name) {
			continue
		}
		s.mu.Lock()
		s.queries++
		for _, ip := range s.ips {
			resp.Answer = append(resp.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   net.ParseIP(ip),
			})
		}
		s.mu.Unlock()
	}
	_ = w.WriteMsg(resp)
}

// close stops the server.
func (s *dnsServer) close() {
	_ = s.server.Shutdown()
	<-s.done
}
