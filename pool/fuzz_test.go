package pool

import "testing"

// FuzzParseWeight: any input either fails or parses to a weight in range
// that formats back to a string parsing to the same units.
func FuzzParseWeight(f *testing.F) {
	for _, s := range []string{"10", "0.5", "0.000001", "1000000", "007", "1e3", "-1", ".5", "1.0000001", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseWeight(s)
		if err != nil {
			return
		}
		if u == 0 || u > MaxWeight {
			t.Fatalf("ParseWeight(%q) = %d, out of range", s, u)
		}
		back, err := ParseWeight(FormatWeight(u))
		if err != nil || back != u {
			t.Fatalf("ParseWeight(FormatWeight(%d)) = %d, %v", u, back, err)
		}
	})
}
