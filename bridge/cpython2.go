//go:build py2

package bridge

// #cgo pkg-config: python-2.7
import "C"

// PythonMajor is the major version of the Python this binary embeds.
const PythonMajor = 2
