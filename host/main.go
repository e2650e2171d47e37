package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wallaroo-go/machida/bridge"
	"github.com/wallaroo-go/machida/engine/cluster"
	"github.com/wallaroo-go/machida/engine/external"
	"github.com/wallaroo-go/machida/engine/routing"
	"github.com/wallaroo-go/machida/engine/source"
	"github.com/wallaroo-go/machida/engine/topology"
	"github.com/wallaroo-go/machida/engine/worker"
	"github.com/wallaroo-go/machida/internal/linkauth"
)

// Main runs the program with argv (argv[0] first) and returns the exit
// status. prog is the binary's name for messages ("machida3").
func Main(argv []string, prog string) int {
	return run(argv, prog, os.Stdout, os.Stderr)
}

func run(argv []string, prog string, stdout, stderr io.Writer) int {
	opts, err := ParseArgs(argv)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v (see %s --help)\n", err, prog)
		return 1
	}
	if opts.Help {
		fmt.Fprintf(stdout, helpText, prog)
		return 0
	}
	if opts.Module == "" {
		fmt.Fprintln(stderr, "Error: You must provide Machida with --application-module")
		return 1
	}
	if err := opts.Validate(); err != nil {
		if strings.HasPrefix(err.Error(), "Join Error") { // 0.6's form for joiners
			fmt.Fprintln(stdout, err)
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	guard, err := linkauth.Load(linkauth.Files{SecretFile: linkauth.SecretPath(opts.ClusterSecretFile, os.Getenv),
		Cert: opts.TLSCert, Key: opts.TLSKey, CA: opts.TLSCA})
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	if guard == nil {
		if w := exposedWarning(opts); w != "" {
			fmt.Fprintln(stderr, w)
		}
	}
	if w := linkauth.KeyFileWarning(opts.TLSKey); w != "" {
		fmt.Fprintln(stderr, w)
	}
	// A certificate out of its dates, or one that does not name the
	// external listener's host (which the tools dial as given), stops the
	// worker here, not later as connections that fail for ever. (That it
	// names the data listener the others dial is checked where it is
	// bound: cluster.Member.Listen.)
	var ext, extWhat []string
	if opts.External != "" {
		ext, extWhat = []string{opts.External}, []string{"external"}
	}
	if err := guard.CheckListeners(ext, extWhat, time.Now()); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	// The external channel's port is bound before the interpreter
	// starts (a few hundred milliseconds): a tool that asks as soon as
	// the process runs (a harness waiting for a joiner) waits in the
	// backlog rather than finding the port closed.
	logger := newLogger(opts, stderr)
	var extLn net.Listener
	if opts.External != "" {
		if extLn, err = external.Bind(opts.External, func(line string) { logger.Warn(line) }); err != nil {
			fmt.Fprintf(stderr, "Error: %v\n", fmt.Errorf("%w: %w", worker.ErrListen, err))
			return 1
		}
		defer extLn.Close()
	}
	apiDir, err := extractAPI()
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	in, err := bridge.Start(bridge.Config{Path: []string{apiDir}})
	if err != nil {
		fmt.Fprintf(stderr, "Error: start Python: %v\n", err)
		return 1
	}
	if opts.ForeignLogLevel != "" {
		logger.Warn("--log-level is not one of the engine's levels (debug, info, warn, error): the engine logs at info and leaves the option to the application",
			"value", opts.ForeignLogLevel)
	}

	var cfg worker.Config
	status := -1
	err = in.Do(func(py *bridge.Py) error {
		cfg, status = build(in, py, opts, stdout, stderr, logger)
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	if status >= 0 {
		return status
	}
	cfg.Console = stdout
	cfg.Log = logger
	cfg.ExternalGuard = guard
	cfg.ExternalListener = extLn
	if cfg.Cluster != nil {
		cfg.Cluster.Guard = guard
	}
	// The recovery files go there with or without resilience (spec 4.2):
	// a directory that is not there stops the worker, as in 0.6.
	if st, err := os.Stat(opts.ResilienceDir); err != nil || !st.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		fmt.Fprintf(stderr, "Error: --resilience-dir %s: not a directory this worker can use (%v); create it first\n", opts.ResilienceDir, err)
		return 1
	}
	if opts.RunWithResilience {
		cfg.Resilience = &worker.Resilience{Dir: opts.ResilienceDir,
			Every: time.Duration(opts.TimeBetweenCkpt), KeepStateOnStop: opts.KeepStateOnStop,
			LogRotation: opts.LogRotation, LogFileSize: int64(opts.EventLogFileSize),
			CrashAt: os.Getenv(worker.CrashAtEnv), StallStart: os.Getenv(worker.StallStartEnv)}
		fmt.Fprintf(stdout, "||| Log-rotation: %t|||\n", opts.LogRotation)
		if opts.OnError == "skip" {
			dead := filepath.Join(opts.ResilienceDir, cfg.App+"-"+cfg.Name+".dead-letter")
			if p, ok := cfg.Processor.(*processor); ok {
				if err := p.setDeadLetter(dead); err != nil {
					fmt.Fprintf(stderr, "Error: %v\n", err)
					return 1
				}
			}
			logger.Info("messages whose user code raises are skipped and written to the dead-letter file", "file", dead)
		}
	}
	cfg.OnStopDeadline = func() { interruptStuck(in, logger, stderr) }
	cfg.Busy = func() time.Duration {
		if _, since, ok := in.Busy(); ok {
			return time.Since(since)
		}
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	mctx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	waitMetrics, err := startMetrics(mctx, opts, &cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	go func() {
		// After the first signal, a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	err = worker.Run(ctx, cfg)
	// (Processing has ended: the hub gets the period under way.)
	stopMetrics()
	waitMetrics()
	var ue *UserCodeError
	switch {
	case err == nil:
		fmt.Fprintln(stdout, "Shutting down")
		return 0
	case errors.As(err, &ue):
		var pe *bridge.PyError
		if errors.As(err, &pe) {
			fmt.Fprint(stderr, pe.Traceback)
			if pe.IsSystemExit {
				return pe.ExitCode
			}
			if pe.Interrupted {
				fmt.Fprintf(stderr, "error: stopped %s of pipeline %q at the shutdown deadline: it had not returned; what it was processing is lost\n", ue.Stage, ue.Source)
				return 1
			}
		}
		if ue.Summary != "" {
			fmt.Fprintf(stderr, "Error: %s\n", ue.Summary)
		}
		fmt.Fprintf(stderr, "error: %v; stopping the worker\n", err)
		return 1
	case errors.As(err, new(*cluster.JoinError)):
		var je *cluster.JoinError
		errors.As(err, &je)
		fmt.Fprintln(stdout, je.Error())
		fmt.Fprintln(stderr, je.Error())
		return 1
	case errors.Is(err, worker.ErrListen):
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	default:
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
}

// build imports the module, calls application_setup and prepares the
// worker configuration. It runs on the executor. A status >= 0 means stop
// with that exit status (the reason was printed).
func build(in *bridge.Interp, py *bridge.Py, opts *Options, stdout, stderr io.Writer, logger *slog.Logger) (worker.Config, int) {
	var cfg worker.Config
	var exit *bridge.PyError
	mod, err := py.Import(opts.Module)
	if errors.As(err, &exit) && exit.IsSystemExit {
		return cfg, exit.ExitCode
	}
	if err != nil {
		printPyError(stderr, err)
		fmt.Fprintf(stdout, "Could not load module '%s'\n", opts.Module)
		hint := "; the traceback above shows where it failed"
		var pe *bridge.PyError
		top := strings.Split(opts.Module, ".")[0]
		if errors.As(err, &pe) && strings.HasPrefix(pe.Message, "No module named") &&
			(strings.Contains(pe.Message, "'"+top+"'") || strings.HasSuffix(pe.Message, " "+top)) {
			hint = "; run machida3 from the module's directory or put that directory on PYTHONPATH"
		}
		fmt.Fprintf(stderr, "Error: could not import the application module %q: %v%s\n", opts.Module, err, hint)
		return cfg, exitFor(err)
	}
	// As 0.6 did, choose the serialisation hooks after the import and
	// before application_setup: the module's serialize/deserialize if it
	// defines both, else pickle.
	digest := moduleDigest(py, mod, opts.Module)
	hooks, err := serializationHooks(py, mod)
	if err != nil {
		printPyError(stderr, err)
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return cfg, 1
	}
	if !py.HasAttr(mod, "application_setup") {
		fmt.Fprintf(stderr, "Error: the application module %q has no application_setup(args) function\n", opts.Module)
		return cfg, 1
	}
	args, err := py.StrList(opts.AppArgs)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return cfg, 1
	}
	defer py.DecRef(args)
	app, err := py.CallMethod(mod, "application_setup", args)
	if errors.As(err, &exit) && exit.IsSystemExit {
		// As under CPython: SystemExit ends the process with its code
		// (argparse has already printed its usage).
		return cfg, exit.ExitCode
	}
	if err != nil {
		printPyError(stderr, err)
		fmt.Fprintln(stdout, "Something went wrong while building the application")
		fmt.Fprintf(stderr, "Error: application_setup of module %q failed: %v\n", opts.Module, err)
		return cfg, exitFor(err)
	}
	tr := &translator{py: py}
	spec, err := tr.spec(app)
	py.DecRef(app)
	if err == nil {
		var paths []topology.Path
		paths, err = spec.Compile()
		if err == nil {
			cfg, err = configure(in, py, spec, paths, opts, hooks, logger)
			cfg.App = spec.AppName
			if err == nil && opts.inCluster() {
				cfg.Cluster = clusterConfig(opts, spec.AppName, digest)
				cfg.Name = cfg.Cluster.Name
				if !opts.ClusterInitializer {
					// 0.6: sources live on the initializer only.
					cfg.Sources = nil
				}
			}
		}
	}
	if err != nil {
		var pe *bridge.PyError
		if errors.As(err, &pe) {
			fmt.Fprint(stderr, pe.Traceback)
		}
		fmt.Fprintln(stdout, "Something went wrong while building the application")
		fmt.Fprintf(stderr, "Error: %s\n", unwrapInvalid(err))
		return cfg, 1
	}
	return cfg, -1
}

func unwrapInvalid(err error) string {
	msg := err.Error()
	prefix := topology.ErrInvalid.Error() + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}

// configure turns the compiled paths into the worker's configuration and
// builds the processor.
func configure(in *bridge.Interp, py *bridge.Py, spec *topology.Spec, paths []topology.Path, opts *Options, hooks bridge.Object, logger *slog.Logger) (worker.Config, error) {
	var cfg worker.Config
	me := routing.WorkerName("initializer")
	table, err := routing.NewTable(routing.DefaultPartitions, []routing.WorkerName{me})
	if err != nil {
		return cfg, err
	}
	var headerLens []int
	for _, p := range paths {
		if p.Source.Kind == "gen" {
			cfg.Sources = append(cfg.Sources, worker.SourceConfig{Name: p.Source.Name, Generator: true})
			headerLens = append(headerLens, 0)
			continue
		}
		fr, err := framingOf(py, p.Source.Decoder.(bridge.Object), p.Source.Name)
		if err != nil {
			return cfg, err
		}
		cfg.Sources = append(cfg.Sources, worker.SourceConfig{
			Name: p.Source.Name, Addr: p.Source.Addr(), HeaderLen: fr.HeaderLen, Length: fr.Length, Raw: fr.Raw,
		})
		headerLens = append(headerLens, fr.HeaderLen)
	}
	for _, sk := range paths[0].Sinks() {
		cfg.Sinks = append(cfg.Sinks, worker.SinkConfig{Name: sk.Name, Addr: sk.Addr()})
	}
	proc, err := newProcessor(in, py, paths, table.Partitions(), hooks, logger)
	if err != nil {
		return cfg, err
	}
	for _, n := range headerLens {
		proc.headerLen = append(proc.headerLen, n)
		proc.maxPayload = append(proc.maxPayload, source.DefaultMaxPayload)
	}
	cfg.Processor = proc
	cfg.Queries = proc
	cfg.Name = string(me)
	cfg.Partitions = table.Partitions()
	cfg.External = opts.External
	seen := map[topology.StepID]bool{}
	for _, p := range paths {
		for _, st := range p.Stages {
			if seen[st.ID] {
				continue
			}
			seen[st.ID] = true
			switch st.Kind {
			case topology.StateComputation:
				cfg.Stages.State = append(cfg.Stages.State, st.ID)
			case topology.Computation:
				cfg.Stages.Stateless = append(cfg.Stages.Stateless, st.ID)
			}
		}
	}
	return cfg, nil
}

// clusterConfig is this worker's place in its cluster, from the 0.6
// command line (spec 1.2, 3.2).
func clusterConfig(opts *Options, app, digest string) *cluster.Config {
	c := &cluster.Config{
		Hello:         cluster.Hello{App: app, Digest: digest, PyMajor: bridge.PythonMajor, Resilient: opts.RunWithResilience},
		ResilienceDir: opts.ResilienceDir,
	}
	if opts.ClusterInitializer {
		c.Initializer = true
		c.Name = cluster.InitializerName
		c.WorkerCount = opts.WorkerCount
		c.Control = opts.Control
		c.Data = opts.Data
	} else {
		c.Name = opts.Name
		c.Control = opts.Control
		c.MyControl = opts.MyControl
		c.Data = opts.MyData
	}
	if opts.Join != "" {
		c.Control = opts.Join
		c.Joining = max(opts.WorkerCount, 1)
	}
	c.Metrics = opts.Metrics
	c.SlowFrom = cluster.SlowFromEnv(os.Getenv(cluster.SlowLinkEnv), c.Name)
	return c
}

// moduleDigest is the SHA-256 of the application module's source file
// (every worker of a cluster must run the same one), or of its name when
// it has no file.
func moduleDigest(py *bridge.Py, mod bridge.Object, name string) string {
	data := []byte("module " + name)
	if f, err := py.GetAttr(mod, "__file__"); err == nil {
		if path, err := py.GoString(f); err == nil {
			path = strings.TrimSuffix(path, "c") // a .pyc: hash the .py beside it
			if b, err := os.ReadFile(path); err == nil {
				data = b
			} else if b, err := os.ReadFile(path + "c"); err == nil {
				data = b
			}
		}
		py.DecRef(f)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// interruptStuck runs when a stop has not finished in time: if user code
// is still running (a loop that never ends, a blocking read), it raises
// WorkerStopping in the interpreter's thread; if that Do has not returned
// a second later (blocked in C, where the exception cannot land), it says
// what was running and exits 1 at once, without finalising Python.
func interruptStuck(in *bridge.Interp, logger *slog.Logger, stderr io.Writer) {
	what, since, busy := in.Busy()
	if !busy {
		return
	}
	logger.Warn("stopping: user code has not returned; interrupting it", "running", what, "for", time.Since(since).Round(time.Millisecond))
	in.Interrupt("the worker is stopping and this code did not return in time")
	time.Sleep(time.Second)
	if w, s, still := in.Busy(); still && s.Equal(since) {
		if stack, ok := in.Stack(time.Second); ok {
			fmt.Fprintf(stderr, "Where the interpreter is stuck (most recent call last):\n%s", stack)
		}
		fmt.Fprintf(stderr, "error: %s did not return within 1s of being interrupted at the shutdown deadline (running for %v, blocked outside Python); exiting without finalising Python\n",
			w, time.Since(s).Round(time.Millisecond))
		os.Exit(1)
	}
}

// serializationHooks returns the (serialize, deserialize) pair for the
// module as a new reference.
func serializationHooks(py *bridge.Py, mod bridge.Object) (bridge.Object, error) {
	runner, err := py.Import("wallaroo._runner")
	if err != nil {
		return bridge.Object{}, fmt.Errorf("import wallaroo._runner: %w", err)
	}
	defer py.DecRef(runner)
	hooks, err := py.CallMethod(runner, "serialization_hooks", mod)
	if err != nil {
		return bridge.Object{}, fmt.Errorf("serialisation hooks: %w", err)
	}
	return hooks, nil
}

func printPyError(w io.Writer, err error) {
	var pe *bridge.PyError
	if errors.As(err, &pe) && !pe.IsSystemExit {
		fmt.Fprint(w, pe.Traceback)
	}
}

// exitFor is 1, or the code of a SystemExit (argparse errors exit 2).
func exitFor(err error) int {
	var pe *bridge.PyError
	if errors.As(err, &pe) && pe.IsSystemExit {
		return pe.ExitCode
	}
	return 1
}

// exposedWarning is the one line printed when this worker listens
// beyond loopback with its links unprotected, or "".
func exposedWarning(opts *Options) string {
	addrs, names := opts.listeners()
	var open []string
	for i, a := range addrs {
		if linkauth.Exposed(a) {
			open = append(open, fmt.Sprintf("%s (%s)", a, names[i]))
		}
	}
	if len(open) == 0 {
		return ""
	}
	return fmt.Sprintf("warning: listening on %s without --cluster-secret-file or TLS: anyone who can reach these ports can join the cluster, send it pickles that run code in this worker, or shut it down (see the README, Securing a cluster)",
		strings.Join(open, ", "))
}
