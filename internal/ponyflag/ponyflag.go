// Package ponyflag removes the Pony runtime options that Wallaroo 0.6
// command lines pass to every program (--ponythreads=1, --ponynoblock,
// --ponypinasio, ...). The Pony runtime consumed them before a Wallaroo
// program saw its arguments; our programs accept them and drop them. Pure
// functions, safe for concurrent use.
package ponyflag

import "strings"

// valueOptions are the Pony runtime options documented to take a value.
var valueOptions = map[string]bool{
	"ponythreads": true, "ponyminthreads": true, "ponycdinterval": true,
	"ponygcinitial": true, "ponygcfactor": true, "ponysuspendthreshold": true,
	"ponymaxmem": true,
}

// Strip returns args without Pony runtime options: "--ponyX=V", "--ponyX"
// and "--ponyX V", where V is taken as the option's value only when X is
// documented to take one (so "--ponynoblock 5" keeps the 5 for the
// application). Arguments after "--" are kept as they are. args must not
// include the program name.
func Strip(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if !strings.HasPrefix(a, "--pony") {
			out = append(out, a)
			continue
		}
		name := strings.TrimPrefix(a, "--")
		if strings.Contains(name, "=") || i+1 >= len(args) {
			continue
		}
		if valueOptions[name] {
			i++
		}
	}
	return out
}
