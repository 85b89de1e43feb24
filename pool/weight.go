package pool

import (
	"errors"
	"fmt"
	"strconv"
)

// WeightUnit is the number of units in one whole weight. Weights are kept
// as integers in millionths so that selection is exact and reproducible:
// no float rounding can make two equal configurations pick differently.
const WeightUnit = 1_000_000

// MaxWeight is the largest weight of one item, in units (one million whole).
const MaxWeight uint64 = 1_000_000 * WeightUnit

// weightDecimals is the number of decimal places one unit represents.
const weightDecimals = 6

// ParseWeight parses a plain decimal weight such as "10", "0.5" or
// "0.000001" into units. It accepts digits with an optional fraction of 1 to
// 6 digits and nothing else: no sign, no exponent, no spaces, no bare "." at
// either end. Zero and values above MaxWeight are rejected. The error names
// the input and what is wrong with it.
func ParseWeight(s string) (uint64, error) {
	units, err := parseWeight(s)
	if err != nil {
		return 0, fmt.Errorf("pool: weight %q: %w", s, err)
	}
	return units, nil
}

var (
	errWeightEmpty     = errors.New("empty")
	errWeightSyntax    = errors.New("not a plain decimal number (want digits with an optional fraction, like 10 or 0.5)")
	errWeightPrecision = fmt.Errorf("more than %d decimal places", weightDecimals)
	errWeightZero      = errors.New("must be greater than zero")
	errWeightTooLarge  = fmt.Errorf("greater than the maximum %s", FormatWeight(MaxWeight))
)

func parseWeight(s string) (uint64, error) {
	if s == "" {
		return 0, errWeightEmpty
	}
	if s[0] == '-' {
		return 0, errors.New("negative")
	}
	intPart, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac = s[:i], s[i+1:]
			if intPart == "" || frac == "" {
				return 0, errWeightSyntax
			}
			break
		}
	}
	if !allDigits(intPart) || !allDigits(frac) {
		return 0, errWeightSyntax
	}
	if len(frac) > weightDecimals {
		return 0, errWeightPrecision
	}
	// Accumulate the integer part with an early bound check so that long
	// digit strings cannot overflow uint64 before we compare to MaxWeight.
	const maxWhole = MaxWeight / WeightUnit
	var whole uint64
	for i := 0; i < len(intPart); i++ {
		whole = whole*10 + uint64(intPart[i]-'0')
		if whole > maxWhole {
			return 0, errWeightTooLarge
		}
	}
	var fracUnits uint64
	for i := 0; i < weightDecimals; i++ {
		fracUnits *= 10
		if i < len(frac) {
			fracUnits += uint64(frac[i] - '0')
		}
	}
	units := whole*WeightUnit + fracUnits
	if units == 0 {
		return 0, errWeightZero
	}
	if units > MaxWeight {
		return 0, errWeightTooLarge
	}
	return units, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatWeight renders units as a decimal number of whole weights without
// trailing zeros ("10", "0.5", "0.000001"). It is the inverse of ParseWeight
// for every value ParseWeight accepts.
func FormatWeight(units uint64) string {
	var buf [32]byte
	return string(AppendWeight(buf[:0], units))
}

// AppendWeight appends FormatWeight(units) to dst without allocating: the
// log codecs write weights with it.
func AppendWeight(dst []byte, units uint64) []byte {
	whole, frac := units/WeightUnit, units%WeightUnit
	dst = strconv.AppendUint(dst, whole, 10)
	if frac == 0 {
		return dst
	}
	dst = append(dst, '.')
	// Fixed-width fraction with leading zeros, then drop trailing zeros.
	var digits [weightDecimals]byte
	for i := weightDecimals - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := weightDecimals
	for digits[n-1] == '0' {
		n--
	}
	return append(dst, digits[:n]...)
}
