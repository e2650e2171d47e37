// Command kafkabroker runs a small in-process Kafka-protocol broker on
// loopback for the connector tests: franz-go's kfake, with no ZooKeeper,
// no JVM and no disk.
//
//	kafkabroker [-port 0] [-topics a,b] [-partitions 1]
//
// It listens on 127.0.0.1:PORT (a free port when -port is 0), creates the
// topics named by -topics, prints its address ("127.0.0.1:PORT") as the
// first line of standard output, and then runs until it gets SIGINT or
// SIGTERM, when it closes the broker and exits 0. Topics that clients ask
// for and that do not exist are created on first use, with -partitions
// partitions. Everything is held in memory and gone when it exits.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 0, "loopback port to listen on (0: any free port)")
	topics := flag.String("topics", "", "comma-separated topics to create at start")
	partitions := flag.Int("partitions", 1, "partitions of every topic created")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kafkabroker: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if *port < 0 || *port > 65535 {
		fmt.Fprintf(os.Stderr, "kafkabroker: -port %d is not a port number\n", *port)
		os.Exit(2)
	}
	if *partitions < 1 {
		fmt.Fprintf(os.Stderr, "kafkabroker: -partitions must be at least 1, got %d\n", *partitions)
		os.Exit(2)
	}

	opts := []kfake.Opt{
		kfake.Ports(*port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
	}
	var names []string
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			names = append(names, t)
		}
	}
	if len(names) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), names...))
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)

	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafkabroker: start the broker on 127.0.0.1:%d: %v\n", *port, err)
		os.Exit(1)
	}
	addrs := cluster.ListenAddrs()
	if len(addrs) != 1 {
		cluster.Close()
		fmt.Fprintf(os.Stderr, "kafkabroker: expected one listening address, got %v\n", addrs)
		os.Exit(1)
	}
	fmt.Println(addrs[0])
	if len(names) > 0 {
		fmt.Fprintf(os.Stderr, "kafkabroker: listening on %s with topics %s\n", addrs[0], strings.Join(names, ", "))
	} else {
		fmt.Fprintf(os.Stderr, "kafkabroker: listening on %s\n", addrs[0])
	}

	sig := <-signals
	fmt.Fprintf(os.Stderr, "kafkabroker: %v: stopping\n", sig)
	cluster.Close()
}
