package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/wallaroo-go/machida/internal/extframe"
	"github.com/wallaroo-go/machida/internal/linkauth"
)

// shrinkRequest is the JSON payload of a ShrinkRequest.
type shrinkRequest struct {
	Query     bool     `json:"query"`
	NodeNames []string `json:"node_names"`
	NodeCount int      `json:"node_count"`
}

// shrinkQueryResponse is the JSON payload of a ShrinkQueryResponse.
type shrinkQueryResponse struct {
	NodeNames []string `json:"node_names"`
	NodeCount int      `json:"node_count"`
}

// request returns the ShrinkRequest payload for cfg's mode.
func request(cfg *config) []byte {
	req := shrinkRequest{Query: cfg.query, NodeNames: []string{}}
	switch {
	case cfg.query:
	case len(cfg.workers) > 0:
		req.NodeNames = cfg.workers
	default:
		req.NodeCount = cfg.count
	}
	b, err := json.Marshal(req)
	if err != nil {
		panic(fmt.Sprintf("cluster_shrinker: encode %+v: %v", req, err)) // strings and ints only
	}
	return b
}

// shrink sends cfg's request and prints the reply on stdout.
func shrink(cfg *config, stdout io.Writer) error {
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
	if _, err := conn.Write(extframe.Append(nil, extframe.MsgShrinkRequest, request(cfg))); err != nil {
		return fmt.Errorf("unable to send the shrink request to %s: %w", cfg.external, err)
	}

	want := extframe.MsgShrinkErrorResponse
	if cfg.query {
		want = extframe.MsgShrinkQueryResponse
	}
	f, err := extframe.Read(conn, extframe.MaxReplyLen)
	id, payload := f.ID, f.Payload
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no reply from %s within %v", cfg.external, cfg.timeout)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%s closed the connection without replying", cfg.external)
	case errors.Is(err, extframe.ErrMalformed) && !cfg.sec.Set():
		return fmt.Errorf("invalid reply from %s: %w%s", cfg.external, err, linkauth.Hint)
	case err != nil:
		return fmt.Errorf("invalid reply from %s: %w", cfg.external, err)
	case id != want:
		return fmt.Errorf("unexpected reply from %s: message id %d (%q), want %d", cfg.external, uint16(id), truncate(payload, 200), uint16(want))
	}

	var line string
	if cfg.query {
		var resp shrinkQueryResponse
		if err := json.Unmarshal(payload, &resp); err != nil {
			return fmt.Errorf("invalid reply from %s: %w: %q", cfg.external, err, truncate(payload, 200))
		}
		var nodes strings.Builder
		for _, n := range resp.NodeNames {
			nodes.WriteString(n + ",")
		}
		line = fmt.Sprintf("Eligible for shrink: Node count: %d, Nodes: |%s|", resp.NodeCount, nodes.String())
	} else {
		line = "Cluster shrink response: " + string(payload)
	}
	if _, err := fmt.Fprintln(stdout, line); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	return nil
}

// truncate returns at most n bytes of b, marking a cut with "...".
func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
