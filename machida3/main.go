//go:build !py2

// Command machida3 runs a Wallaroo 0.6 Python application on Python 3.
package main

import (
	"os"

	"github.com/wallaroo-go/machida/host"
)

func main() { os.Exit(host.Main(os.Args, "machida3")) }
