package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/wallaroo-go/machida/internal/extframe"
	"github.com/wallaroo-go/machida/internal/linkauth"
	"github.com/wallaroo-go/machida/internal/ponyflag"
)

// errHelp is returned by parseFlags when --help was given.
var errHelp = errors.New("help requested")

// defaultTimeout bounds the connect and the wait for a reply.
const defaultTimeout = 10 * time.Second

// msgType is one --type: what to send and what reply to expect.
type msgType struct {
	name    string
	id      extframe.MsgID
	replies []extframe.MsgID // accepted reply ids; nil when there is no reply
	header  string           // printed before the JSON without --json
	payload func(message string) []byte
}

const (
	boundaryCountStatus        = "boundary-count-status"
	notInitializedClusterReply = `{"processing_messages": false}`
)

func text(m string) []byte { return []byte(m) }
func empty(string) []byte  { return nil }

// query returns a query type with an empty payload.
func query(name string, id extframe.MsgID, header string, replies ...extframe.MsgID) msgType {
	return msgType{name: name, id: id, replies: replies, header: header, payload: empty}
}

// msgTypes lists the --type values in the order usage shows them.
var msgTypes = []msgType{
	{name: "print", id: extframe.MsgPrint, payload: text},
	{name: "rotate-log", id: extframe.MsgRotateLog, payload: text},
	{name: "clean-shutdown", id: extframe.MsgCleanShutdown, payload: text},
	query("partition-query", extframe.MsgPartitionQuery, "Partition query response:", extframe.MsgPartitionQueryResponse),
	query("partition-count-query", extframe.MsgPartitionCountQuery, "Partition count query response:", extframe.MsgPartitionCountQueryResponse),
	query("cluster-status-query", extframe.MsgClusterStatusQuery, "Cluster status query response:",
		extframe.MsgClusterStatusQueryResponse, extframe.MsgClusterStatusQueryResponseNotInitialized),
	query("source-ids-query", extframe.MsgSourceIDsQuery, "Source ids query response:", extframe.MsgSourceIDsQueryResponse),
	{name: boundaryCountStatus, id: extframe.MsgReportStatus, payload: func(string) []byte { return []byte(boundaryCountStatus) }},
	query("state-entity-query", extframe.MsgStateEntityQuery, "State entity query response:", extframe.MsgStateEntityQueryResponse),
	query("state-entity-count-query", extframe.MsgStateEntityCountQuery, "State entity count query response:", extframe.MsgStateEntityCountQueryResponse),
	query("stateless-partition-query", extframe.MsgStatelessPartitionQuery, "Stateless partition query response:", extframe.MsgStatelessPartitionQueryResponse),
	query("stateless-partition-count-query", extframe.MsgStatelessPartitionCountQuery, "Stateless partition count query response:",
		extframe.MsgStatelessPartitionCountQueryResponse),
}

// typeNames returns the valid --type values, comma-separated.
func typeNames() string {
	names := make([]string, len(msgTypes))
	for i, t := range msgTypes {
		names[i] = t.name
	}
	return strings.Join(names, ", ")
}

// config is the validated command line.
type config struct {
	external string
	typ      msgType
	message  string
	json     bool
	timeout  time.Duration
	sec      linkauth.ToolOptions
}

// usage is the --help text. TestUsage_ListsEveryFlagAndType keeps it in
// step with parseFlags and msgTypes.
const usage = `Usage: external_sender --external H:P --type T [--message M] [--json]

Sends one message to a Wallaroo worker's external channel. For queries it
waits for the reply and prints it.

Options:
  -e, --external H:P     the worker's external channel address (required)
  -t, --type T           message type (default print), one of:
                           print                  log M on the worker
                           rotate-log             rotate worker M's event log
                           clean-shutdown         shut the whole cluster down
                           boundary-count-status  the worker logs boundary counts
                         queries, answered with JSON:
                           partition-query, partition-count-query,
                           cluster-status-query, source-ids-query,
                           state-entity-query, state-entity-count-query,
                           stateless-partition-query,
                           stateless-partition-count-query
  -m, --message M        text for print, worker name for rotate-log
  -j, --json             print only the JSON of a query reply
      --timeout D        connect and reply timeout (default 10s)
` + linkauth.ToolUsage + `      --help             print this help and exit

Pony runtime options (--ponythreads N, --ponynoblock, any --pony*) are
accepted and ignored.
`

// parseFlags parses and validates args (without the program name).
func parseFlags(args []string) (*config, error) {
	cfg := &config{timeout: defaultTimeout}
	var typ string
	var help bool
	fs := pflag.NewFlagSet("external_sender", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVarP(&cfg.external, "external", "e", "", "")
	fs.StringVarP(&typ, "type", "t", "print", "")
	fs.StringVarP(&cfg.message, "message", "m", "", "")
	fs.BoolVarP(&cfg.json, "json", "j", false, "")
	fs.DurationVar(&cfg.timeout, "timeout", defaultTimeout, "")
	fs.BoolVar(&help, "help", false, "")
	cfg.sec.Register(fs)
	if err := fs.Parse(ponyflag.Strip(args)); err != nil {
		return nil, err
	}
	if help {
		return nil, errHelp
	}
	if err := cfg.sec.RefuseEmpty(fs); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !fs.Changed("external") {
		return nil, errors.New("--external is required")
	}
	if _, _, err := net.SplitHostPort(cfg.external); err != nil {
		return nil, fmt.Errorf("--external must be host:port: %w", err)
	}
	found := false
	name := strings.ToLower(typ) // 0.6's tool took any case
	for _, t := range msgTypes {
		if t.name == name {
			cfg.typ, found = t, true
		}
	}
	if !found {
		return nil, fmt.Errorf("unknown --type %q; valid types: %s", typ, typeNames())
	}
	if cfg.typ.id == extframe.MsgRotateLog && cfg.message == "" {
		return nil, errors.New("--type rotate-log needs --message <worker name>")
	}
	if cfg.timeout <= 0 {
		return nil, errors.New("--timeout must be greater than 0")
	}
	return cfg, nil
}
