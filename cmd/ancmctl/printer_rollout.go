package main

import (
	"fmt"
	"strings"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// History writes an app's generations, oldest first, marking the one that
// runs.
func (p *printer) History(resp *ancmv1.GetAppHistoryResponse, current uint64) error {
	if p.json {
		return p.JSON(resp)
	}
	t := p.table()
	fmt.Fprintln(t, "GENERATION\tTIME\tCHANGE\tRESULT\tREASON")
	for _, g := range resp.GetGenerations() {
		mark := ""
		if g.GetGeneration() == current {
			mark = " *"
		}
		when := "-"
		if g.GetTime() != nil {
			when = g.GetTime().AsTime().In(p.loc).Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(t, "%d%s\t%s\t%s\t%s\t%s\n", g.GetGeneration(), mark, when, orDash(g.GetChange()),
			rolloutResult(g.GetResult()), orDash(oneLine(g.GetReason())))
	}
	return t.Flush()
}

// Rollout writes the app and the outcome of its rollout.
func (p *printer) Rollout(resp *ancmv1.RollbackAppResponse) error {
	if p.json {
		return p.JSON(resp)
	}
	if err := p.Apps([]*ancmv1.App{resp.GetApp()}); err != nil {
		return err
	}
	if ro := resp.GetRollout(); ro != nil {
		_, err := fmt.Fprintf(p.w, "rollout from generation %d to %d: %s\n", ro.GetFromGeneration(), ro.GetToGeneration(), rolloutResult(ro.GetResult()))
		return err
	}
	return nil
}

func rolloutResult(r ancmv1.RolloutResult) string {
	if r == ancmv1.RolloutResult_ROLLOUT_RESULT_UNSPECIFIED {
		return "-"
	}
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(r.String(), "ROLLOUT_RESULT_"), "_", " "))
}
