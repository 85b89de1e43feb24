package pool

import (
	"strings"
	"testing"
)

func TestParseWeight(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
	}{
		{"10", 10 * WeightUnit},
		{"0.5", 500_000},
		{"0.000001", 1},
		{"1", WeightUnit},
		{"1.5", 1_500_000},
		{"2.250000", 2_250_000},
		{"007", 7 * WeightUnit},
		{"123456.789012", 123_456_789_012},
		{"1000000", MaxWeight},
		{"999999.999999", MaxWeight - 1},
	}
	for _, tt := range tests {
		got, err := ParseWeight(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseWeight(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseWeightRejects(t *testing.T) {
	tests := []struct {
		in      string
		wantMsg string // part of the error text
	}{
		{"", "empty"},
		{"-1", "negative"},
		{"-0.5", "negative"},
		{"0", "greater than zero"},
		{"0.0", "greater than zero"},
		{"0.000000", "greater than zero"},
		{"0.0000001", "decimal places"},
		{"1.0000000", "decimal places"},
		{"1000000.000001", "maximum"},
		{"1000001", "maximum"},
		{"99999999999999999999999999", "maximum"},
		{"1e3", "plain decimal"},
		{"1E3", "plain decimal"},
		{"+1", "plain decimal"},
		{" 1", "plain decimal"},
		{"1 ", "plain decimal"},
		{".5", "plain decimal"},
		{"5.", "plain decimal"},
		{".", "plain decimal"},
		{"1.2.3", "plain decimal"},
		{"1,5", "plain decimal"},
		{"abc", "plain decimal"},
		{"0x10", "plain decimal"},
		{"NaN", "plain decimal"},
		{"Inf", "plain decimal"},
		{"１", "plain decimal"}, // fullwidth digit
	}
	for _, tt := range tests {
		got, err := ParseWeight(tt.in)
		if err == nil {
			t.Errorf("ParseWeight(%q) = %d, want error", tt.in, got)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.wantMsg) {
			t.Errorf("ParseWeight(%q) error %q does not mention %q", tt.in, msg, tt.wantMsg)
		}
		if tt.in != "" && !strings.Contains(msg, tt.in) {
			t.Errorf("ParseWeight(%q) error %q does not name the input", tt.in, msg)
		}
	}
}

func TestFormatWeight(t *testing.T) {
	tests := []struct {
		in   uint64
		want string
	}{
		{0, "0"},
		{1, "0.000001"},
		{10, "0.00001"},
		{500_000, "0.5"},
		{WeightUnit, "1"},
		{10 * WeightUnit, "10"},
		{1_500_000, "1.5"},
		{1_000_001, "1.000001"},
		{123_456_789_012, "123456.789012"},
		{MaxWeight, "1000000"},
		{^uint64(0), "18446744073709.551615"},
	}
	for _, tt := range tests {
		if got := FormatWeight(tt.in); got != tt.want {
			t.Errorf("FormatWeight(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWeightRoundTrip(t *testing.T) {
	units := []uint64{1, 9, 10, 99, 100, 123, 999_999, WeightUnit, WeightUnit + 1, 1_234_500, 42 * WeightUnit, MaxWeight - 1, MaxWeight}
	for u := uint64(1); u < 3*WeightUnit; u += 7919 { // a prime stride covers many digit patterns
		units = append(units, u)
	}
	for _, u := range units {
		s := FormatWeight(u)
		got, err := ParseWeight(s)
		if err != nil || got != u {
			t.Errorf("ParseWeight(FormatWeight(%d) = %q) = %d, %v", u, s, got, err)
		}
	}
}
