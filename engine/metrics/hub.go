package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sort"
	"time"

	"github.com/wallaroo-go/machida/internal/hubproto"
)

// HubConfig configures the reporter to a 0.6 metrics hub (spec 5.1).
type HubConfig struct {
	Addr     string // the worker's --metrics
	App      string // the application's name: the topic is "metrics:<App>"
	Registry *Registry
	Log      *slog.Logger
	// Retry is how long a lost or refused connection waits before the
	// next attempt (0.6: 10 s); Period the length of a reporting period
	// (2 s, aligned to multiples of it of wall-clock time). Zero values
	// take those defaults.
	Retry, Period time.Duration
	// Now reads the wall clock (nil: time.Now).
	Now func() time.Time
}

// WriteTimeout bounds one period's write: a hub that stops reading is
// dropped (and retried) rather than allowed to hold records back.
const WriteTimeout = 5 * time.Second

// RunHub reports cfg.Registry to the hub until ctx ends: it connects
// (Connect, then Join with the worker's name), and at the end of every
// period sends one record per histogram that had samples in it, even
// when no message arrives after the period ends. While disconnected the
// registry is not consumed by the hub (nothing is timed for it) and what
// is recorded is discarded at each period's end; there is no buffering
// and no backpressure on the pipeline. When ctx ends, the period under
// way is sent before it returns (end ctx once the worker has stopped
// processing, and wait for the return). One goroutine (the caller's);
// the connection's reader is a second, which only detects its end.
func RunHub(ctx context.Context, cfg HubConfig) {
	if cfg.Retry <= 0 {
		cfg.Retry = 10 * time.Second
	}
	if cfg.Period <= 0 {
		cfg.Period = time.Duration(hubproto.Period)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	topic := "metrics:" + cfg.App
	var (
		conn    net.Conn
		release func()
		lost    chan struct{} // closed by the reader when the hub hangs up
		nextTry time.Time
		logged  bool // the current outage was reported
	)
	drop := func(why string, err error) {
		if conn == nil {
			return
		}
		cfg.Log.Warn("metrics: connection lost; retrying every "+cfg.Retry.String(), "addr", cfg.Addr, "reason", why, "err", err)
		conn.Close()
		conn, lost = nil, nil
		release()
		nextTry = cfg.Now().Add(cfg.Retry)
		logged = true
	}
	defer func() {
		if conn != nil {
			conn.Close()
			release()
		}
	}()
	dial := func() {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp", cfg.Addr)
		if err != nil {
			if !logged && ctx.Err() == nil {
				cfg.Log.Info("metrics: cannot connect; retrying every "+cfg.Retry.String(), "addr", cfg.Addr, "err", err)
				logged = true
			}
			nextTry = cfg.Now().Add(cfg.Retry)
			return
		}
		b := hubproto.AppendConnect(nil)
		b = hubproto.AppendJoin(b, topic, cfg.Registry.Worker())
		c.SetWriteDeadline(time.Now().Add(WriteTimeout))
		if _, err := c.Write(b); err != nil {
			c.Close()
			nextTry = cfg.Now().Add(cfg.Retry)
			return
		}
		conn, release, logged = c, cfg.Registry.Acquire(), false
		cfg.Registry.TakePeriod() // samples from before are not this period's
		lost = make(chan struct{})
		go func(c net.Conn, lost chan struct{}) {
			io.Copy(io.Discard, c)
			close(lost)
		}(c, lost)
		cfg.Log.Info("metrics: connected", "addr", cfg.Addr, "topic", topic)
	}

	dial()
	for {
		now := cfg.Now()
		end := now.Truncate(cfg.Period).Add(cfg.Period)
		wait := end.Sub(now)
		if conn == nil && nextTry.Before(end) {
			wait = max(nextTry.Sub(now), 0)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			// The period under way is sent as it is: what the worker
			// did last (it has stopped processing, or left the
			// cluster) counts too.
			if recs := cfg.Registry.TakePeriod(); conn != nil && len(recs) > 0 {
				if err := writePeriod(conn, topic, cfg.Registry.Worker(), uint64(cfg.Period), end, recs); err != nil {
					cfg.Log.Warn("metrics: the last period was not sent", "addr", cfg.Addr, "err", err)
				}
			}
			return
		case <-lost:
			timer.Stop()
			drop("the hub closed the connection", io.EOF)
			continue
		case <-timer.C:
		}
		if conn == nil && !cfg.Now().Before(nextTry) {
			dial()
		}
		if t := cfg.Now(); t.Before(end) {
			continue // woke for a retry, not a period's end
		}
		recs := cfg.Registry.TakePeriod()
		if conn == nil || len(recs) == 0 {
			continue
		}
		if err := writePeriod(conn, topic, cfg.Registry.Worker(), uint64(cfg.Period), end, recs); err != nil {
			drop("write failed", err)
		}
	}
}

// writePeriod sends one Payload per histogram, in a stable order.
func writePeriod(c net.Conn, topic, worker string, period uint64, end time.Time, hs map[Key]*Histogram) error {
	keys := make([]Key, 0, len(hs))
	for k := range hs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Category != b.Category {
			return a.Category < b.Category
		}
		if a.Pipeline != b.Pipeline {
			return a.Pipeline < b.Pipeline
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Name < b.Name
	})
	var buf []byte
	for _, k := range keys {
		h := hs[k]
		r := hubproto.Record{Name: k.Name, Category: k.Category, Worker: worker, Pipeline: k.Pipeline,
			ID: k.ID, Bins: h.Bins, Min: h.Min, Max: h.Max, Period: period, PeriodEnd: uint64(end.UnixNano())}
		buf = hubproto.AppendPayload(buf, topic, &r)
	}
	c.SetWriteDeadline(time.Now().Add(WriteTimeout))
	_, err := c.Write(buf)
	return err
}
