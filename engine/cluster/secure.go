package cluster

import (
	"context"
	"net"
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
// was closed, and logged within the bounds of linkauth.RefusalLog).
func (m *Member) accepted(ctx context.Context, c net.Conn, what string) (net.Conn, bool) {
	sc, err := m.cfg.Guard.Server(ctx, c, linkKind(what))
	if err != nil {
		c.Close()
		if ctx.Err() == nil {
			remote := c.RemoteAddr().String()
			if more, log := m.refused.Note(remote, time.Now()); log {
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
