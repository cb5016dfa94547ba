package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ancm-dev/ancm/internal/testtool"
)

// TestAlertsAndDashboardParse: promtool accepts the example alerts of
// docs/operations.md and every query of contrib/grafana-ancm.json (as
// recording rules, with Grafana's variables filled in).
func TestAlertsAndDashboardParse(t *testing.T) {
	promtool := testtool.Find(t, "promtool")
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "Three alerts to start from:\n\n```yaml\n")
	alerts, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/operations.md: no alerts block after \"Three alerts to start from:\"")
	}
	dir := t.TempDir()
	check := func(name, rules string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules %s: %v\n%s\n%s", name, err, out, rules)
		}
	}
	check("alerts.yml", alerts)

	b, err := os.ReadFile("../contrib/grafana-ancm.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("contrib/grafana-ancm.json: %v", err)
	}
	fill := strings.NewReplacer("$__rate_interval", "1m", "$app", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			n++
			q, _ := json.Marshal(fill.Replace(tg.Expr))
			fmt.Fprintf(&rules, "      - record: ancm:panel_%d\n        expr: %s\n", n, q)
		}
	}
	if n < 10 {
		t.Errorf("only %d queries in the dashboard", n)
	}
	check("dashboard.yml", rules.String())
}
