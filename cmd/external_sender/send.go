package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/wallaroo-go/machida/internal/extframe"
	"github.com/wallaroo-go/machida/internal/linkauth"
)

// send writes cfg's message to the worker and, for a query, prints the
// reply on stdout.
func send(cfg *config, stdout io.Writer) error {
	g, err := cfg.sec.Guard(cfg.timeout)
	if err != nil {
		return err
	}
	conn, err := linkauth.DialTool(g, cfg.external, cfg.timeout)
	if err != nil {
		return fmt.Errorf("unable to connect to %s: %w", cfg.external, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(cfg.timeout))
	if _, err := conn.Write(extframe.Append(nil, cfg.typ.id, cfg.typ.payload(cfg.message))); err != nil {
		return fmt.Errorf("unable to send %s to %s: %w", cfg.typ.name, cfg.external, err)
	}
	if cfg.typ.replies == nil {
		return nil
	}
	reply, err := awaitReply(conn, cfg)
	if err != nil {
		return err
	}
	if !cfg.json {
		if _, err := fmt.Fprintln(stdout, cfg.typ.header); err != nil {
			return fmt.Errorf("write stdout: %w", err)
		}
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", reply); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	return nil
}

// awaitReply reads the reply to cfg's query and returns the JSON to
// print, compacted to one line.
func awaitReply(conn net.Conn, cfg *config) ([]byte, error) {
	f, err := extframe.Read(conn, extframe.MaxReplyLen)
	id, payload := f.ID, f.Payload
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, fmt.Errorf("no reply from %s within %v", cfg.external, cfg.timeout)
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%s closed the connection without replying to %s", cfg.external, cfg.typ.name)
	case errors.Is(err, extframe.ErrMalformed) && !cfg.sec.Set():
		return nil, fmt.Errorf("invalid reply from %s: %w%s", cfg.external, err, linkauth.Hint)
	case err != nil:
		return nil, fmt.Errorf("invalid reply from %s: %w", cfg.external, err)
	case !slices.Contains(cfg.typ.replies, id):
		return nil, fmt.Errorf("unexpected reply from %s: message id %d, want %d", cfg.external, uint16(id), uint16(cfg.typ.replies[0]))
	case id == extframe.MsgClusterStatusQueryResponseNotInitialized:
		return []byte(notInitializedClusterReply), nil
	}
	var line bytes.Buffer
	if err := json.Compact(&line, payload); err != nil {
		return nil, fmt.Errorf("invalid reply from %s: message id %d: payload is not JSON (%v): %q", cfg.external, uint16(id), err, truncate(payload, 200))
	}
	return line.Bytes(), nil
}

// truncate returns at most n bytes of b, marking a cut with "...".
func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
