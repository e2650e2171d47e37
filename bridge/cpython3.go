//go:build !py2

package bridge

// #cgo pkg-config: python3-embed
import "C"

// PythonMajor is the major version of the Python this binary embeds.
const PythonMajor = 3
