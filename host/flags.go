package host

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/wallaroo-go/machida/internal/linkauth"
	"github.com/wallaroo-go/machida/internal/ponyflag"
)

// Options are the engine options of the Wallaroo 0.6 command line (runtime
// spec 1.2) plus the host's own --application-module and --help.
type Options struct {
	Module             string
	Help               bool
	Metrics            string
	Control            string
	Data               string
	MyControl          string
	MyData             string
	External           string
	File               string
	WorkerCount        int
	ClusterInitializer bool
	Name               string
	ResilienceDir      string
	ResilienceDOS      string
	NoLocalFileIO      bool
	EnableIOJournal    bool
	RunWithResilience  bool
	KeepStateOnStop    bool
	OnError            string
	LogRotation        bool
	EventLogFileSize   int
	Join               string
	StopPause          int64
	SpikeSeed          int64
	SpikeDrop          bool
	SpikeProb          float64
	SpikeMargin        int
	TimeBetweenCkpt    int64
	// Beyond 0.6: the links' protection (see package linkauth).
	ClusterSecretFile string
	TLSCert           string
	TLSKey            string
	TLSCA             string
	// Beyond 0.6: observability.
	Prometheus string // HOST:PORT to serve /metrics on
	LogFormat  string // text or json
	LogLevel   string // debug, info, warn, error
	// ForeignLogLevel is a --log-level value the engine has no level
	// for (an application's own, such as "none" or "critical"): the
	// engine logs at info and the option is the application's alone.
	ForeignLogLevel string

	// AppArgs is what application_setup receives: argv[0] followed by every
	// argument that is neither an engine option (but the sharedFlags) nor
	// a --pony* flag, in order.
	AppArgs []string
	// Set records which engine options were given.
	Set map[string]bool
}

// flagSpec is one engine option: its long name, short letter and whether it
// takes a value.
type flagSpec struct {
	long, short string
	value       bool
}

// sharedFlags are engine options that are also left, with their values,
// in the application's arguments: they are not 0.6's (which left every
// option it did not know to the application), and their names are ones
// applications commonly give options of their own.
var sharedFlags = map[string]bool{"log-level": true}

// engineFlags lists every option the engine reads; all others, and the
// shared ones too, reach application_setup unchanged.
var engineFlags = []flagSpec{
	{"application-module", "", true},
	{"help", "h", false},
	{"metrics", "m", true},
	{"prometheus", "", true},
	{"log-format", "", true},
	{"log-level", "", true},
	{"control", "c", true},
	{"data", "d", true},
	{"my-control", "x", true},
	{"my-data", "y", true},
	{"external", "e", true},
	{"file", "f", true},
	{"worker-count", "w", true},
	{"cluster-initializer", "t", false},
	{"name", "n", true},
	{"resilience-dir", "r", true},
	{"resilience-dos-server", "", true},
	{"resilience-no-local-file-io", "", false},
	{"resilience-enable-io-journal", "", false},
	{"run-with-resilience", "", false},
	{"log-rotation", "", false},
	{"event-log-file-size", "l", true},
	{"join", "j", true},
	{"stop-pause", "u", true},
	{"spike-seed", "", true},
	{"spike-drop", "", false},
	{"spike-prob", "", true},
	{"spike-margin", "", true},
	{"time-between-checkpoints", "", true},
	{"keep-state-on-stop", "", false},
	{"on-error", "", true},
	{"cluster-secret-file", "", true},
	{"tls-cert", "", true},
	{"tls-key", "", true},
	{"tls-ca", "", true},
}

func lookupFlag(arg string) (spec flagSpec, name string, inline bool, ok bool) {
	if strings.HasPrefix(arg, "--") {
		name = strings.TrimPrefix(arg, "--")
		if i := strings.IndexByte(name, '='); i >= 0 {
			name, inline = name[:i], true
		}
		for _, f := range engineFlags {
			if f.long == name {
				return f, name, inline, true
			}
		}
		return flagSpec{}, name, inline, false
	}
	if len(arg) >= 2 && arg[0] == '-' && arg[1] != '-' {
		letter := arg[1:2]
		for _, f := range engineFlags {
			if f.short != "" && f.short == letter {
				return f, letter, len(arg) > 2, true
			}
		}
	}
	return flagSpec{}, "", false, false
}

// ParseArgs splits argv (argv[0] first) into engine options and the
// application's arguments, the way Wallaroo 0.6 did: engine options and
// their values are removed (but the sharedFlags, not 0.6's, stay too),
// --pony* flags are dropped, and everything else stays, in order, for
// application_setup. Both "--opt value" and
// "--opt=value" work, and so do the short forms.
func ParseArgs(argv []string) (*Options, error) {
	if len(argv) == 0 {
		argv = []string{"machida3"}
	}
	o := &Options{AppArgs: []string{argv[0]}, Set: map[string]bool{}}
	var engine []string
	// The Pony runtime consumed its options before 0.6 saw argv.
	args := ponyflag.Strip(argv[1:])
	for i := 0; i < len(args); i++ {
		a := args[i]
		spec, _, inline, ok := lookupFlag(a)
		if !ok {
			o.AppArgs = append(o.AppArgs, a)
			continue
		}
		shared := sharedFlags[spec.long]
		engine = append(engine, a)
		if shared {
			o.AppArgs = append(o.AppArgs, a)
		}
		if spec.value && !inline {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("option %s needs a value", a)
			}
			i++
			engine = append(engine, args[i])
			if shared {
				o.AppArgs = append(o.AppArgs, args[i])
			}
		}
	}
	fs := pflag.NewFlagSet("machida", pflag.ContinueOnError)
	fs.SetOutput(discard{})
	fs.StringVar(&o.Module, "application-module", "", "")
	fs.BoolVarP(&o.Help, "help", "h", false, "")
	fs.StringVarP(&o.Metrics, "metrics", "m", "", "")
	fs.StringVarP(&o.Control, "control", "c", "", "")
	fs.StringVarP(&o.Data, "data", "d", "", "")
	fs.StringVarP(&o.MyControl, "my-control", "x", "", "")
	fs.StringVarP(&o.MyData, "my-data", "y", "", "")
	fs.StringVarP(&o.External, "external", "e", "", "")
	fs.StringVarP(&o.File, "file", "f", "", "")
	fs.IntVarP(&o.WorkerCount, "worker-count", "w", 1, "")
	fs.BoolVarP(&o.ClusterInitializer, "cluster-initializer", "t", false, "")
	fs.StringVarP(&o.Name, "name", "n", "", "")
	fs.StringVarP(&o.ResilienceDir, "resilience-dir", "r", "/tmp", "")
	fs.StringVar(&o.ResilienceDOS, "resilience-dos-server", "", "")
	fs.BoolVar(&o.NoLocalFileIO, "resilience-no-local-file-io", false, "")
	fs.BoolVar(&o.EnableIOJournal, "resilience-enable-io-journal", false, "")
	fs.BoolVar(&o.RunWithResilience, "run-with-resilience", false, "")
	fs.BoolVar(&o.LogRotation, "log-rotation", false, "")
	fs.IntVarP(&o.EventLogFileSize, "event-log-file-size", "l", 0, "")
	fs.StringVarP(&o.Join, "join", "j", "", "")
	fs.Int64VarP(&o.StopPause, "stop-pause", "u", 2_000_000_000, "")
	fs.Int64Var(&o.SpikeSeed, "spike-seed", 0, "")
	fs.BoolVar(&o.SpikeDrop, "spike-drop", false, "")
	fs.Float64Var(&o.SpikeProb, "spike-prob", 0.001, "")
	fs.IntVar(&o.SpikeMargin, "spike-margin", 10, "")
	fs.Int64Var(&o.TimeBetweenCkpt, "time-between-checkpoints", 1_000_000_000, "")
	fs.BoolVar(&o.KeepStateOnStop, "keep-state-on-stop", false, "")
	fs.StringVar(&o.OnError, "on-error", "stop", "")
	fs.StringVar(&o.ClusterSecretFile, "cluster-secret-file", "", "")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "")
	fs.StringVar(&o.TLSKey, "tls-key", "", "")
	fs.StringVar(&o.TLSCA, "tls-ca", "", "")
	fs.StringVar(&o.Prometheus, "prometheus", "", "")
	fs.StringVar(&o.LogFormat, "log-format", "text", "")
	fs.StringVar(&o.LogLevel, "log-level", "info", "")
	if err := fs.Parse(engine); err != nil {
		return nil, err
	}
	fs.Visit(func(f *pflag.Flag) { o.Set[f.Name] = true })
	if !validLevel(o.LogLevel) {
		o.ForeignLogLevel, o.LogLevel = o.LogLevel, "info"
	}
	return o, nil
}

// Validate applies the 0.6 rules that a single worker can check. The
// messages are 0.6's, printed after "Error: ".
func (o *Options) Validate() error {
	switch {
	case o.Join != "" && o.Set["worker-count"] && o.WorkerCount < 1:
		return fmt.Errorf("Join Error: --worker-count must be at least 1 (the number of workers joining together), got %d", o.WorkerCount)
	case o.Set["worker-count"] && o.WorkerCount < 1:
		return fmt.Errorf("--worker-count must be at least 1, got %d", o.WorkerCount)
	case o.Join != "" && o.ClusterInitializer:
		return fmt.Errorf("a worker cannot both --join a cluster and be its --cluster-initializer")
	case o.Set["worker-count"] && !o.ClusterInitializer && o.Join == "":
		return fmt.Errorf("--worker-count is only valid with --cluster-initializer or --join")
	case o.Data != "" && !o.ClusterInitializer:
		return fmt.Errorf("only the cluster initializer takes --data; other workers use --my-data")
	case o.ClusterInitializer && (o.Data == "" || o.Data == "0"):
		return fmt.Errorf("the cluster initializer needs --data, the address its workers send data to (for example --data 127.0.0.1:6001)")
	case o.LogFormat != "text" && o.LogFormat != "json":
		return fmt.Errorf("--log-format must be text or json, got %q", o.LogFormat)
	case o.ResilienceDOS != "" && !o.ClusterInitializer && (o.MyControl == "" || o.MyData == ""):
		return fmt.Errorf("--resilience-dos-server on a worker that is not the --cluster-initializer needs --my-control and --my-data")
	case o.Set["resilience-dir"] && strings.HasSuffix(o.ResilienceDir, "/") && o.ResilienceDir != "/":
		return fmt.Errorf("--resilience-dir must not end in '/': %s", o.ResilienceDir)
	}
	// An empty security option (an unset shell variable, say) is a
	// mistake, not a request for no protection.
	if err := linkauth.RefuseEmptyOptions(func(name string) bool { return o.Set[name] },
		linkauth.ToolOptions{SecretFile: o.ClusterSecretFile, Cert: o.TLSCert, Key: o.TLSKey, CA: o.TLSCA}); err != nil {
		return err
	}
	// Refuse what would silently run as something else.
	switch {
	case o.Join != "" && o.Name == "":
		return fmt.Errorf("--join %s: a joining worker needs --name", o.Join)
	case o.Join != "" && o.Name == "initializer":
		return fmt.Errorf("--name initializer: that name is the cluster initializer's; give this worker another --name")
	case o.clusterMember() && o.Name == "":
		return fmt.Errorf("--control %s: a worker that is not the --cluster-initializer needs --name", o.Control)
	case o.clusterMember() && o.Name == "initializer":
		return fmt.Errorf("--name initializer: that name is the cluster initializer's; give this worker another --name")
	case o.TimeBetweenCkpt <= 0:
		return fmt.Errorf("--time-between-checkpoints must be a positive number of nanoseconds, got %d", o.TimeBetweenCkpt)
	case o.KeepStateOnStop && !o.RunWithResilience:
		return fmt.Errorf("--keep-state-on-stop keeps the checkpoint files: it needs --run-with-resilience")
	case o.OnError != "stop" && o.OnError != "skip":
		return fmt.Errorf("--on-error must be stop or skip, got %q", o.OnError)
	case o.RunWithResilience && rotatedLike(o.Name):
		return fmt.Errorf("--name %s: with --run-with-resilience a worker's name may not end in '-' and 16 hex digits: its event log would be taken for a rotated event log of the worker named %q; choose another name", o.Name, o.Name[:len(o.Name)-17])
	case o.EventLogFileSize < 0:
		return fmt.Errorf("--event-log-file-size must be a number of bytes, 0 or more, got %d", o.EventLogFileSize)
	case o.OnError == "skip" && !o.RunWithResilience:
		return fmt.Errorf("--on-error skip writes failing messages to a dead-letter file in --resilience-dir: it needs --run-with-resilience")
	}
	return nil
}

// rotatedLike reports whether a worker name ends like the rotated event
// log files of another worker's name (<app>-<worker>-<16 hex>.evlog).
func rotatedLike(name string) bool {
	if len(name) < 18 || name[len(name)-17] != '-' {
		return false
	}
	for _, c := range name[len(name)-16:] {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// clusterMember reports whether the command line starts a member of a
// cluster, the way Wallaroo's harness starts workers 2..N (runtime spec
// 1.4, 7.1): not the initializer, not joining, and --control naming the
// initializer to connect to. A one-worker cluster is always started with
// --cluster-initializer; a start with neither --cluster-initializer nor
// --control (or --control "0", 0.6's "unset") runs as a single worker.
func (o *Options) clusterMember() bool {
	return !o.ClusterInitializer && o.Join == "" && o.Control != "" && o.Control != "0"
}

// inCluster reports whether this worker is part of a cluster of more
// than one worker: an initializer waiting for others, or a member.
func (o *Options) inCluster() bool {
	return (o.ClusterInitializer && (o.WorkerCount > 1 || (o.Control != "" && o.Control != "0"))) ||
		o.clusterMember() || o.Join != ""
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// helpText is printed by --help: the host's option, then the engine's.
const helpText = `%[1]s: runs a Wallaroo 0.6 Python application.

Usage: %[1]s --application-module MODULE [engine options] [application options]

Machida options:
  --application-module [Specify the Machida application module]

Wallaroo options:
  -i/--in                         [Sets the addresses for the source (read by the
                                   application, e.g. with wallaroo.tcp_parse_input_addrs)]
  -o/--out                        [Sets the addresses for the sinks (read by the application)]
  -m/--metrics                    [Sets address for the metrics receiver]
  -c/--control                    [Sets address of the initializer's control channel]
  -d/--data                       [Sets address of the initializer's data channel]
  -x/--my-control                 [Sets address for this worker's control channel]
  -y/--my-data                    [Sets address for this worker's data channel]
  -e/--external                   [Sets address for the external (operator) channel]
  -w/--worker-count               [Sets the number of workers of the cluster]
  -t/--cluster-initializer        [This worker is the cluster initializer]
  -n/--name                       [Sets the name of this worker]
  -r/--resilience-dir             [Sets the directory for recovery files (default /tmp)]
  -j/--join                       [Join a running cluster through this control address]
  -l/--event-log-file-size        [Rotate the event log at this size in bytes]
  -u/--stop-pause                 [Accepted and ignored, as in 0.6]
  -f/--file                       [Accepted and ignored, as in 0.6]
  --run-with-resilience           [Enable checkpoints and recovery]
  --log-rotation                  [Enable event log rotation]
  --time-between-checkpoints      [Nanoseconds between checkpoints (default 1000000000)]
  --keep-state-on-stop            [With --run-with-resilience: a clean stop takes a last
                                   checkpoint and keeps the files; the same command lines
                                   started again resume from it]
  --on-error stop|skip            [With --run-with-resilience: on an exception in user code,
                                   stop the cluster (default, as 0.6) or write the message and
                                   its traceback to <app>-<worker>.dead-letter in
                                   --resilience-dir and go on]
  --resilience-dos-server, --resilience-no-local-file-io, --resilience-enable-io-journal,
  --spike-seed, --spike-drop, --spike-prob, --spike-margin
                                  [Accepted for compatibility]
  --cluster-secret-file           [A file (mode 0600) holding the cluster secret that every
                                   link must prove (default $WALLAROO_CLUSTER_SECRET_FILE)]
  --tls-cert, --tls-key, --tls-ca [Mutual TLS 1.3 on the control, data and external channels]
  --prometheus HOST:PORT          [Serve Prometheus metrics on http://HOST:PORT/metrics]
  --log-format text|json          [Format of the diagnostics on stderr (default text); the
                                   console lines on stdout are the same in every format]
  --log-level LEVEL               [debug, info, warn or error (default info); also left in
                                   the application's arguments, and any other value is the
                                   application's alone]
  -h/--help                       [Print this help and exit]

Pony runtime options (--ponythreads, --ponynoblock, --ponypinasio, ...) are accepted
and ignored. Every other option is passed to application_setup(args) unchanged.
`

// listeners returns the addresses this worker's command line makes it
// listen on, each with its channel's name: the external channel, and the
// control and data channels of a cluster member. Unset ones (or 0.6's
// "0") bind loopback and are left out, but a worker's control and data
// listeners, which bind every interface (":0"), as 0.6's.
func (o *Options) listeners() (addrs, names []string) {
	add := func(addr, name string) {
		if addr != "" && addr != "0" {
			addrs, names = append(addrs, addr), append(names, name)
		}
	}
	anyIface := func(addr string) string {
		if addr == "" || addr == "0" {
			return ":0"
		}
		return addr
	}
	if o.inCluster() {
		if o.ClusterInitializer {
			add(o.Control, "control")
			add(o.Data, "data")
		} else {
			add(anyIface(o.MyControl), "control")
			add(anyIface(o.MyData), "data")
		}
	}
	add(o.External, "external")
	return addrs, names
}

// validLevel reports whether s names a log level --log-level accepts.
func validLevel(s string) bool {
	_, ok := logLevels[strings.ToLower(s)]
	return ok
}
