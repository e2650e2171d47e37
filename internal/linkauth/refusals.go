package linkauth

import (
	"net"
	"sync"
	"time"
)

// What a listener logs of the connections it refuses, bounded: a scan or
// a flood of connections that do not authenticate (or, on the external
// channel, send what cannot be read) must not fill the log. The cluster's
// control and data listeners and the external channel each keep one.

// RefusalBurst and RefusalEvery bound the log of refused connections:
// from one host, the first RefusalBurst of each RefusalEvery are logged,
// the rest counted and said in the next line logged about that host.
const (
	RefusalBurst = 5
	RefusalEvery = 10 * time.Second
)

// RefusalLog counts, by remote host, the connections refused (they did
// not authenticate, or sent what cannot be read), for the log. The zero
// value is ready; safe for concurrent use.
type RefusalLog struct {
	mu     sync.Mutex
	byHost map[string]*refusalCount
}

type refusalCount struct {
	period   time.Time // when the current period began
	n        int       // refusals in it
	unlogged int       // refusals not logged since the last line
}

// maxRefusingHosts bounds the hosts a RefusalLog keeps apart; past it (once
// those whose period ended are forgotten), the others share one count,
// otherHosts.
const (
	maxRefusingHosts = 1024
	otherHosts       = "other hosts"
)

// Note records a refusal of a connection from remote (host:port) at now,
// and reports whether to log it, with how many from that host went
// unlogged before it.
func (r *RefusalLog) Note(remote string, now time.Time) (unlogged int, log bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	return r.NoteKey(host, now)
}

// NoteKey is Note for refusals counted by another key than the remote
// host (a peer's name and host, say).
func (r *RefusalLog) NoteKey(host string, now time.Time) (unlogged int, log bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byHost == nil {
		r.byHost = map[string]*refusalCount{}
	}
	c := r.byHost[host]
	if c == nil && len(r.byHost) >= maxRefusingHosts-1 { // (one place kept for otherHosts)
		for h, old := range r.byHost {
			if h != otherHosts && old.unlogged == 0 && now.Sub(old.period) >= RefusalEvery {
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
	if now.Sub(c.period) >= RefusalEvery {
		c.period, c.n = now, 0
	}
	c.n++
	if c.n > RefusalBurst {
		c.unlogged++
		return 0, false
	}
	unlogged, c.unlogged = c.unlogged, 0
	return unlogged, true
}
