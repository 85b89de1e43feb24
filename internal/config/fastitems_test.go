package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestBigCatalogKeepsNoPathPerItem: a parsed config remembers the lines of
// its items compactly, not as a field path string per item (which, for a
// million items, cost more memory than the catalog).
func TestBigCatalogKeepsNoPathPerItem(t *testing.T) {
	c, err := Parse(bigCatalog(10_000), "big.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Pools[0].Items); n != 10_000 {
		t.Fatalf("%d items, want 10000", n)
	}
	if n := len(c.src.lines) + len(c.src.vals) + len(c.src.bad); n > 100 {
		t.Fatalf("the config keeps %d field paths for 10,000 items, want a handful", n)
	}
	// Errors still name the item's line.
	data := append(bigCatalog(10_000), "      - {id: item0000007, quantity: 1, weight: 1}\n"...)
	_, err = Parse(data, "big.yaml")
	if err == nil || !strings.Contains(err.Error(), `big.yaml:10005: pools[0] "big" items[10000]: duplicate item id "item0000007" (first at line 11)`) {
		t.Fatalf("got %v", err)
	}
}

// TestFastItemsMeanTheSame parses documents with and without the one-line
// item shortcut: the configs and the errors must be the same.
func TestFastItemsMeanTheSame(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"flow items", "pools:\n  - name: p\n    items:\n      - {id: a, quantity: 1, weight: 1}\n      - {id: b, quantity: -1, weight: 0.5}\n"},
		{"keys in any order, spaces", "pools:\n  - name: p\n    items:\n      - { weight: 2 ,quantity: 0, id: a_b.c-d }  \n"},
		{"no newline at the end", "pools:\n  - name: p\n    items:\n      - {id: a, quantity: 1, weight: 1}"},
		{"runs broken by other lines", "pools:\n  - name: p\n    items:\n      - {id: a, quantity: 1, weight: 1}\n      # a comment\n      - id: b\n        quantity: 2\n        weight: 3\n\n      - {id: c, quantity: 1, weight: 1} # note\n      - {id: d, quantity: 1, weight: 1}\n      - {id: e, quantity: 07, weight: 1}\n      - {id: 'f', quantity: 1, weight: 1}\n"},
		{"two pools, later keys", "pools:\n  - name: p\n    items:\n      - {id: a, quantity: 1, weight: 1}\n  - name: q\n    items:\n    - {id: a, quantity: 1, weight: 1}\n    - {id: b, quantity: 1, weight: 1}\ndurability: none\n"},
		{"items first, then name", "pools:\n  - items:\n      - {id: a, quantity: 1, weight: 1}\n    name: p\n"},
		{"errors keep their lines", "durability: x\npools:\n  - name: p\n    items:\n      - {id: a, quantity: -2, weight: 1}\n      - {id: a, quantity: 1, weight: 1}\n      - {id: b, quantity: 1, weight: 0}\n      - {id: c, quantity: 1, weight: 0.0000001}\nlisen: 1\n"},
		{"nulls are not ids", "pools:\n  - name: p\n    items:\n      - {id: null, quantity: 1, weight: 1}\n      - {id: ~, quantity: 1, weight: 1}\n"},
		{"item lines in a block scalar", "admin_token: |\n  - {id: a, quantity: 1, weight: 1}\n  - {id: b, quantity: 1, weight: 1}\npools:\n  - name: p\n"},
		{"item lines where pools go", "pools:\n  - {id: a, quantity: 1, weight: 1}\n"},
		{"item lines in another list", "wal:\n  codec:\n    - {id: a, quantity: 1, weight: 1}\n"},
		{"flow list", "pools:\n  - name: p\n    items: [\n      {id: a, quantity: 1, weight: 1}]\n"},
		{"dash in a flow list", "pools:\n  - name: p\n    items: [\n      - {id: a, quantity: 1, weight: 1}]\n"},
		{"CRLF", "pools:\r\n  - name: p\r\n    items:\r\n      - {id: a, quantity: 1, weight: 1}\r\n"},
		{"indentation changes", "pools:\n  - name: p\n    items:\n      - {id: a, quantity: 1, weight: 1}\n        - {id: b, quantity: 1, weight: 1}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast, fastErr := Parse([]byte(tc.in), "c.yaml")
			slow, slowErr, _ := parse([]byte(tc.in), "c.yaml", nil)
			if (fastErr == nil) != (slowErr == nil) || (fastErr != nil && fastErr.Error() != slowErr.Error()) {
				t.Fatalf("errors differ:\nshortcut: %v\nslow:     %v", fastErr, slowErr)
			}
			if fast == nil || slow == nil {
				if fast != slow {
					t.Fatalf("configs differ: %+v vs %+v", fast, slow)
				}
				return
			}
			if !reflect.DeepEqual(fast.Pools, slow.Pools) || fast.Durability != slow.Durability {
				t.Fatalf("configs differ:\nshortcut: %+v\nslow:     %+v", fast.Pools, slow.Pools)
			}
			if !reflect.DeepEqual(fast.src.items, slow.src.items) {
				t.Fatalf("item lines differ:\nshortcut: %v\nslow:     %v", fast.src.items, slow.src.items)
			}
		})
	}
}

func TestFastItemsTakesTheGeneratedLines(t *testing.T) {
	_, runs := fastItems(bigCatalog(100))
	if len(runs) != 1 || len(runs[5].items) != 100 {
		t.Fatalf("runs %v: want one run of 100 items at line 5", runs)
	}
}
