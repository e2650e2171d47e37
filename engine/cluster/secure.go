package cluster

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/wallaroo-go/machida/internal/linkauth"
)

// The links' protection (see package linkauth): with Config.Guard set,
// every control and data connection, in both directions, authenticates
// before its first Hello is read or written. A connection that fails is
// closed and logged with its address; nothing it sent reaches ReadFrame.
// These helpers keep that out of the formation and link code.

// linkKind maps an accept loop's label to the link's kind.
func linkKind(what string) linkauth.Kind {
	if what == "data" {
		return linkauth.Data
	}
	return linkauth.Control
}

// accepted authenticates a connection accepted by the listener named
// what, and reports whether to serve it (the returned conn) or not (it
// was closed, and logged within the bounds of refusals).
func (m *Member) accepted(ctx context.Context, c net.Conn, what string) (net.Conn, bool) {
	sc, err := m.cfg.Guard.Server(ctx, c, linkKind(what))
	if err != nil {
		c.Close()
		if ctx.Err() == nil {
			remote := c.RemoteAddr().String()
			if more, log := m.refused.note(remote, time.Now()); log {
				attrs := []any{"channel", what, "remote", remote, "err", err}
				if more > 0 {
					attrs = append(attrs, "more_from_that_host_unlogged", more)
				}
				m.log.Warn("connection refused: it did not authenticate", attrs...)
			}
		}
		return nil, false
	}
	return sc, true
}

// refusalBurst and refusalEvery bound the log of refused connections:
// from one host, the first refusalBurst of each refusalEvery are logged,
// the rest counted and said in the next line logged about that host (a
// scan or a flood of connections that do not authenticate must not fill
// the log).
const (
	refusalBurst = 5
	refusalEvery = 10 * time.Second
)

// refusals counts, by remote host, the connections refused, for the log.
// Safe for concurrent use.
type refusals struct {
	mu     sync.Mutex
	byHost map[string]*refusalCount
}

type refusalCount struct {
	period   time.Time // when the current period began
	n        int       // refusals in it
	unlogged int       // refusals not logged since the last line
}

// maxRefusingHosts bounds the hosts refusals keeps apart; past it (once
// those whose period ended are forgotten), the others share one count,
// otherHosts.
const (
	maxRefusingHosts = 1024
	otherHosts       = "other hosts"
)

// note records a refusal of a connection from remote (host:port) at now,
// and reports whether to log it, with how many from that host went
// unlogged before it.
func (r *refusals) note(remote string, now time.Time) (unlogged int, log bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byHost == nil {
		r.byHost = map[string]*refusalCount{}
	}
	c := r.byHost[host]
	if c == nil && len(r.byHost) >= maxRefusingHosts-1 { // (one place kept for otherHosts)
		for h, old := range r.byHost {
			if h != otherHosts && old.unlogged == 0 && now.Sub(old.period) >= refusalEvery {
				delete(r.byHost, h)
			}
		}
		if len(r.byHost) >= maxRefusingHosts-1 {
			c = r.byHost[otherHosts]
			host = otherHosts
		}
	}
	if c == nil {
		c = &refusalCount{period: now}
		r.byHost[host] = c
	}
	if now.Sub(c.period) >= refusalEvery {
		c.period, c.n = now, 0
	}
	c.n++
	if c.n > refusalBurst {
		c.unlogged++
		return 0, false
	}
	unlogged, c.unlogged = c.unlogged, 0
	return unlogged, true
}

// dialled authenticates a connection this worker dialled to addr; on
// failure conn is closed.
func dialled(ctx context.Context, g *linkauth.Guard, conn net.Conn, k linkauth.Kind, addr string) (net.Conn, error) {
	sc, err := g.Client(ctx, conn, k, addr)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return sc, nil
}
