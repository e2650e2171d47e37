package ponyflag

import (
	"slices"
	"testing"
)

func TestStrip(t *testing.T) {
	cases := []struct{ in, want []string }{
		{[]string{"--ponythreads=1", "--ponynoblock", "--ponypinasio", "--in", "a:1"}, []string{"--in", "a:1"}},
		{[]string{"--ponythreads", "4", "-x"}, []string{"-x"}},
		{[]string{"--ponyminthreads", "2", "--ponygcfactor", "1.5", "keep"}, []string{"keep"}},
		{[]string{"--ponynoblock", "app-arg"}, []string{"app-arg"}},
		{[]string{"--ponynoblock", "7"}, []string{"7"}},
		{[]string{"--", "--ponythreads=1"}, []string{"--", "--ponythreads=1"}},
		{[]string{"--ponythreads"}, []string{}},
		{[]string{"--pony-app-flag=1", "x"}, []string{"x"}},
		{[]string{"-m", "1", "--ponynoblock"}, []string{"-m", "1"}},
		{[]string{"--ponynoblock", "-m", "1"}, []string{"-m", "1"}},
		{[]string{"--ponygcfactor", "1.5", "--ponycdinterval", "100_000"}, []string{}},
	}
	for _, c := range cases {
		if got := Strip(c.in); !slices.Equal(got, c.want) {
			t.Errorf("Strip(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
