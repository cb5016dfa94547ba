package e2e

import (
	"strings"
	"testing"
)

// A file the daemon refuses part of changes nothing; --prune makes the
// file the whole set of applied apps, and says so in a dry run first.
func TestApplyAllOrNothingAndPrune(t *testing.T) {
	d := newDaemon(t, `
app "fromfile" {
  command = "TESTAPP"
  args = ["serve"]
  path_prefix = "/taken"
}
`)
	// "two" takes the config-file app's route: the daemon refuses it, and
	// "one", which comes first in the file, must not be added either.
	bad := d.writeApplyFile("bad.hcl", `
app "one" {
  command = "TESTAPP"
  path_prefix = "/one"
}
app "two" {
  command = "TESTAPP"
  path_prefix = "/taken"
}
`)
	msg := d.ctlFails(4, "apply", "-f", bad)
	if !strings.Contains(msg, `"two"`) {
		t.Errorf("refusal does not name the app at fault: %q", msg)
	}
	d.ctlFails(3, "get", "one")

	all := d.writeApplyFile("all.hcl", `
app "one" {
  command = "TESTAPP"
  path_prefix = "/one"
}
app "two" {
  command = "TESTAPP"
  path_prefix = "/two"
}
`)
	if got := appliedLines(t, d.mustCtl("apply", "-f", all)); got["one"] != "added" || got["two"] != "added" {
		t.Fatalf("apply = %v", got)
	}
	less := d.writeApplyFile("less.hcl", `
app "one" {
  command = "TESTAPP"
  path_prefix = "/one"
}
`)
	got := appliedLines(t, d.mustCtl("apply", "--prune", "--dry-run", "-f", less))
	if got["one"] != "unchanged (dry run)" || got["two"] != "removed (dry run)" || got["fromfile"] != "" {
		t.Errorf("prune dry run = %v, want one unchanged, two removed, fromfile untouched", got)
	}
	d.mustCtl("get", "two")
	got = appliedLines(t, d.mustCtl("apply", "--prune", "-f", less))
	if got["two"] != "removed" {
		t.Errorf("prune = %v", got)
	}
	d.ctlFails(3, "get", "two")
	d.mustCtl("get", "fromfile")
	d.mustCtl("get", "one")
}
