package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/wallaroo-go/machida/internal/hubproto"
)

// MaxMessage bounds the size of one hub message; a 0.6 metrics record is
// under 1 KiB plus its names.
const MaxMessage = 1 << 20

// Receiver accepts worker connections speaking the hub protocol and feeds
// their records to a Store. Each connection has its own goroutine; a
// malformed stream closes that connection with a logged reason and
// nothing else.
type Receiver struct {
	store *Store
	log   *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewReceiver returns a Receiver feeding store and logging to log.
func NewReceiver(store *Store, log *slog.Logger) *Receiver {
	return &Receiver{store: store, log: log, conns: map[net.Conn]struct{}{}}
}

// Serve accepts connections on ln until ctx is cancelled or ln fails,
// then closes ln and every connection and waits for their goroutines.
// It returns nil when ended by ctx.
func (rc *Receiver) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer func() {
		rc.mu.Lock()
		for c := range rc.conns {
			c.Close()
		}
		rc.mu.Unlock()
		rc.wg.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("metrics listener %s: %w", ln.Addr(), err)
		}
		rc.mu.Lock()
		rc.conns[c] = struct{}{}
		rc.mu.Unlock()
		rc.wg.Add(1)
		go func() {
			defer rc.wg.Done()
			err := rc.handle(c)
			rc.mu.Lock()
			delete(rc.conns, c)
			rc.mu.Unlock()
			c.Close()
			if err != nil && ctx.Err() == nil {
				rc.log.Warn(fmt.Sprintf("metrics connection from %s closed: %v", c.RemoteAddr(), err))
			} else {
				rc.log.Info(fmt.Sprintf("metrics connection from %s ended", c.RemoteAddr()))
			}
		}()
	}
}

// handle reads one connection until it ends. It returns nil at a clean
// end of stream and the reason otherwise.
func (rc *Receiver) handle(c net.Conn) error {
	br := bufio.NewReaderSize(c, 64<<10)
	var leaves []func()
	defer func() {
		for _, leave := range leaves {
			leave()
		}
	}()
	rejected := 0
	defer func() {
		if rejected > 1 {
			rc.log.Warn(fmt.Sprintf("metrics connection from %s: %d records were not kept", c.RemoteAddr(), rejected))
		}
	}()
	for n := 0; ; n++ {
		m, err := hubproto.ReadMessage(br, MaxMessage)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("message %d: %w", n+1, err)
		}
		switch m.Type {
		case hubproto.TypeConnect:
		case hubproto.TypeJoin:
			app, ok := AppFromTopic(m.Topic)
			if !ok {
				return fmt.Errorf("message %d: join of topic %q, want %q followed by an application name", n+1, m.Topic, hubproto.TopicPrefix)
			}
			leave, err := rc.store.Join(app, m.Worker)
			if err != nil {
				return fmt.Errorf("message %d: join: %w", n+1, err)
			}
			leaves = append(leaves, leave)
			rc.log.Info(fmt.Sprintf("metrics connection from %s joined %s as worker %q", c.RemoteAddr(), m.Topic, m.Worker))
		case hubproto.TypePayload:
			if m.Record == nil {
				continue // another event: not metrics
			}
			app, ok := AppFromTopic(m.Topic)
			if !ok {
				return fmt.Errorf("message %d: metrics payload on topic %q, want %q followed by an application name", n+1, m.Topic, hubproto.TopicPrefix)
			}
			if err := rc.store.Add(app, m.Record); err != nil {
				if rejected++; rejected == 1 {
					rc.log.Warn(fmt.Sprintf("metrics connection from %s: record not kept (further ones counted at close): %v", c.RemoteAddr(), err))
				}
			}
		}
	}
}
