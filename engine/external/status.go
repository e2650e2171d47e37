package external

// Status is what the server asks the worker. Implementations must be safe
// for concurrent use: each connection calls them from its own goroutine.
// Methods should return promptly (Serve waits for calls in progress before
// it returns). Returned slices and maps belong to the implementation; the
// server only reads them, before the method is called again on the same
// connection, and never keeps them.
type Status interface {
	// Initialized reports whether the worker reached INIT PHASE III.
	Initialized() bool
	// Cluster returns the worker names (initializer first) and whether messages are being processed.
	Cluster() (workers []string, processing bool)
	// Worker returns this worker's name.
	Worker() string
	// StateSteps returns, per state stage id, this worker's step ids (partition-query "state_partitions").
	StateSteps() map[string][]string
	// StatelessSteps returns, per stateless stage id, this worker's step ids.
	StatelessSteps() map[string][]string
	// SourceIDs returns the ids of this worker's source actors/connections slots.
	SourceIDs() []string
	// StateEntities returns, per state stage id, the keys held here (every state stage present, maybe empty).
	StateEntities() (map[string][]string, error)
	// Shutdown starts a clean shutdown of the worker (asynchronous; returns at once).
	Shutdown(reason string)
	// ShrinkQuery handles a ShrinkRequest with "query": true and returns
	// the names of the workers eligible for shrinking.
	ShrinkQuery() (eligible []string)
	// Shrink handles any other ShrinkRequest and returns the status text
	// sent back ("Shrinking by 1 workers!", "Invalid shrink targets!",
	// ...). names is never nil; it is empty for a shrink by count.
	Shrink(names []string, count int) (status string)
	// RotateLog hands on a RotateLog for the named worker (this one, or
	// another that it passes it to); an error says why it cannot.
	RotateLog(worker string) error
}

// Health is an optional part of Status: the workers this one finds
// unresponsive (a peer stuck in user code, or silent), each as
// "<worker>: <why>". The cluster-status reply lists them, beyond 0.6,
// only when there are some.
type Health interface {
	Unresponsive() []string
}

// KeepStateShutdown is implemented by a Status whose worker can stop
// keeping its state (a resilient cluster): a last checkpoint is taken and
// the files stay, so the same command lines resume from it.
type KeepStateShutdown interface {
	ShutdownKeepingState(reason string)
}

// Boundaries is implemented by a Status that can describe its links to
// other workers (0.6's boundaries) for the boundary-count-status report,
// which is logged, not answered.
type Boundaries interface {
	Boundaries() string
}
