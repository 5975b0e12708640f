package policy

import (
	"os"
	"regexp"
	"testing"
)

// TestDocsExamplesParse parses every HCL block of docs/policies.md, so the
// operator's guide cannot show a policy Ward refuses.
func TestDocsExamplesParse(t *testing.T) {
	b, err := os.ReadFile("../../docs/policies.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```hcl\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d hcl blocks in docs/policies.md", len(blocks))
	}
	for i, m := range blocks {
		if _, err := Parse("doc", m[1], ParseOptions{}); err != nil {
			t.Errorf("example %d does not parse: %v\n%s", i+1, err, m[1])
		}
	}
}
