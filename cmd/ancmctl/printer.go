package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ancmv1 "github.com/ancm-dev/ancm/api/gen/ancm/v1"
)

// jsonOptions are the options of every JSON output: stable field names as in
// the .proto files, and no zero values.
var jsonOptions = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true, EmitUnpopulated: false}

// printer writes the output of every command, as a table for humans or as
// JSON for scripts. now and loc make times and ages reproducible in tests.
type printer struct {
	w    io.Writer
	json bool
	now  func() time.Time
	loc  *time.Location
}

// JSON writes m as indented JSON.
func (p *printer) JSON(m proto.Message) error {
	b, err := marshalJSON(m, "  ")
	if err != nil {
		return err
	}
	_, err = p.w.Write(b)
	return err
}

// JSONLine writes m as JSON on one line, for streams.
func (p *printer) JSONLine(m proto.Message) error {
	b, err := marshalJSON(m, "")
	if err != nil {
		return err
	}
	_, err = p.w.Write(b)
	return err
}

// marshalJSON formats m with jsonOptions, then re-indents it with
// encoding/json (compact when indent is empty): protojson varies its
// whitespace from build to build on purpose, and scripts and golden files
// want the same bytes every time.
func marshalJSON(m proto.Message, indent string) ([]byte, error) {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if indent == "" {
		err = json.Compact(&buf, b)
	} else {
		err = json.Indent(&buf, b, "", indent)
	}
	if err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// table is an aligned table that ends no line with spaces.
type table struct {
	*tabwriter.Writer
	buf bytes.Buffer
	out io.Writer
}

func (p *printer) table() *table {
	t := &table{out: p.w}
	t.Writer = tabwriter.NewWriter(&t.buf, 0, 8, 3, ' ', 0)
	return t
}

// Flush writes the table's rows so far.
func (t *table) Flush() error {
	if err := t.Writer.Flush(); err != nil {
		return err
	}
	var out bytes.Buffer
	for line := range strings.Lines(t.buf.String()) {
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	t.buf.Reset()
	_, err := t.out.Write(out.Bytes())
	return err
}

// Apps writes the apps table: one row per app.
func (p *printer) Apps(apps []*ancmv1.App) error {
	tw := p.table()
	fmt.Fprintln(tw, "APP\tSOURCE\tSTATE\tREADY\tPIDS\tPORTS\tRESTARTS\tUPTIME\tLAST EXIT")
	for _, a := range apps {
		var pids, ports []string
		ready := 0
		for _, in := range a.GetInstances() {
			if in.GetState() == ancmv1.InstanceState_INSTANCE_STATE_READY {
				ready++
			}
			if in.GetPid() > 0 && live(in.GetState()) {
				pids = append(pids, strconv.Itoa(int(in.GetPid())))
			}
			if in.GetPort() > 0 && live(in.GetState()) {
				ports = append(ports, strconv.Itoa(int(in.GetPort())))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%d\t%s\t%s\n",
			a.GetSpec().GetName(), orDash(a.GetSource()), appState(a.GetState()), ready, wanted(a.GetSpec()),
			list(pids), list(ports), a.GetRestarts(), p.uptime(a), exitText(lastExit(a)))
	}
	return tw.Flush()
}

// Traffic writes the top table: one row per app and generation.
func (p *printer) Traffic(r *ancmv1.GetTrafficResponse) error {
	fmt.Fprintf(p.w, "ancm top - %s - %d data planes - window %.0fs\n\n", p.now().In(p.loc).Format("15:04:05"),
		len(r.GetNodes()), r.GetWindowSeconds())
	tw := p.table()
	fmt.Fprintln(tw, "APP\tGEN\tSTATE\tREADY\tREQ/S\tP50\tP99\t5XX\tIN FLIGHT")
	for _, a := range r.GetApps() {
		name, ready := a.GetApp(), fmt.Sprintf("%d/%d", a.GetInstancesReady(), a.GetInstances())
		if name == "" {
			name, ready = "(none)", "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.1f\t%s\t%s\t%.1f%%\t%d\n", name, a.GetGeneration(), appState(a.GetState()), ready,
			a.GetRequestsPerSecond(), latency(a.GetP50Seconds()), latency(a.GetP99Seconds()), 100*a.GetShare_5Xx(), a.GetInFlight())
	}
	return tw.Flush()
}

// latency formats a latency in seconds; "-" for none.
func latency(s float64) string {
	if s <= 0 {
		return "-"
	}
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// Applied writes the outcome of applying one app.
func (p *printer) Applied(resp *ancmv1.ApplyAppResponse, dryRun bool) error {
	if p.json {
		return p.JSON(resp)
	}
	suffix := ""
	if dryRun {
		suffix = " (dry run)"
	}
	if ro := resp.GetRollout(); ro != nil {
		suffix += fmt.Sprintf(" (generation %d, rollout %s)", ro.GetToGeneration(), rolloutResult(ro.GetResult()))
	}
	_, err := fmt.Fprintf(p.w, "%s: %s%s\n", resp.GetApp().GetSpec().GetName(), applyChange(resp.GetChange()), suffix)
	return err
}

// Deleted writes the outcome of deleting an app.
func (p *printer) Deleted(name string, resp *ancmv1.DeleteAppResponse, dryRun bool) error {
	if p.json {
		return p.JSON(resp)
	}
	suffix := ""
	if dryRun {
		suffix = " (dry run)"
	}
	_, err := fmt.Fprintf(p.w, "%s: deleted%s\n", name, suffix)
	return err
}

// LogLines writes captured output as "[instance] text".
func (p *printer) LogLines(resp *ancmv1.TailLogsResponse) error {
	if p.json {
		return p.JSONLine(resp)
	}
	var b strings.Builder
	for _, l := range resp.GetLines() {
		fmt.Fprintf(&b, "[%d] %s\n", l.GetInstance(), strings.TrimRight(l.GetText(), "\n"))
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

// eventFormat lays out an event on one line with fixed widths, since a
// followed stream cannot be aligned after the fact. The TYPE and STATE
// columns are as wide as the longest name the API defines.
var eventFormat = fmt.Sprintf("%%-24s  %%-15s  %%-4s  %%-%ds  %%-%ds  %%7s  %%-26s  %%s",
	longestName(ancmv1.EventType_name, "EVENT_TYPE_"),
	max(longestName(ancmv1.AppState_name, "APP_STATE_"), longestName(ancmv1.InstanceState_name, "INSTANCE_STATE_")))

// longestName is the length of the longest enum value name without its
// prefix, leaving out the _UNSPECIFIED zero, which is printed as "-".
func longestName(names map[int32]string, prefix string) int {
	n := 0
	for v, s := range names {
		if v != 0 {
			n = max(n, len(strings.TrimPrefix(s, prefix)))
		}
	}
	return n
}

// EventHeader writes the header of the events table.
func (p *printer) EventHeader() error {
	if p.json {
		return nil
	}
	_, err := fmt.Fprintln(p.w, fmt.Sprintf(eventFormat, "TIME", "APP", "INST", "TYPE", "STATE", "PID", "EXIT", "MESSAGE"))
	return err
}

// Event writes one lifecycle event.
func (p *printer) Event(resp *ancmv1.WatchEventsResponse) error {
	if p.json {
		return p.JSONLine(resp)
	}
	e := resp.GetEvent()
	inst, state := "-", appState(e.GetAppState())
	if e.Instance != nil {
		inst = strconv.Itoa(int(e.GetInstance()))
		if e.GetInstanceState() != ancmv1.InstanceState_INSTANCE_STATE_UNSPECIFIED {
			state = instanceState(e.GetInstanceState())
		}
	}
	t := "-"
	if e.GetTime() != nil {
		t = e.GetTime().AsTime().In(p.loc).Format("2006-01-02T15:04:05.000Z07:00")
	}
	line := fmt.Sprintf(eventFormat, t, e.GetApp(), inst, eventType(e.GetType()), state,
		orDash(intText(e.GetPid())), exitCodeText(e.GetExit()), oneLine(e.GetMessage()))
	if _, err := fmt.Fprintln(p.w, strings.TrimRight(line, " ")); err != nil {
		return err
	}
	// A failure's last lines of output, indented under it.
	for _, l := range e.GetLogTail() {
		if _, err := fmt.Fprintln(p.w, "    | "+oneLine(l)); err != nil {
			return err
		}
	}
	return nil
}

// Endpoints writes the endpoint table: a row per app with its first
// endpoint, then a row for each further endpoint.
func (p *printer) Endpoints(routes []*ancmv1.AppRoute) error {
	tw := p.table()
	fmt.Fprintln(tw, "APP\tSTATE\tHOSTS\tPREFIX\tINSTANCE\tADDRESS\tREADY\tDRAINING\tGEN")
	for _, r := range routes {
		hosts := "*"
		if len(r.GetHosts()) > 0 {
			hosts = strings.Join(r.GetHosts(), ",")
		}
		head := fmt.Sprintf("%s\t%s\t%s\t%s", r.GetApp(), appState(r.GetState()), hosts, orDash(r.GetPathPrefix()))
		if len(r.GetEndpoints()) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\n", head)
		}
		for i, ep := range r.GetEndpoints() {
			if i > 0 {
				head = "\t\t\t"
			}
			gen := "-"
			if g := ep.GetGeneration(); g != 0 {
				gen = strconv.FormatUint(g, 10)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", head, ep.GetInstance(), orDash(ep.GetAddress()),
				yesNo(ep.GetReady()), yesNo(ep.GetDraining()), gen)
		}
	}
	return tw.Flush()
}

// Version writes the client's version and, when the daemon answered, the
// daemon's.
func (p *printer) Version(clientVersion, addr string, info *ancmv1.GetInfoResponse) error {
	if p.json {
		out := struct {
			Client struct {
				Version string `json:"version"`
			} `json:"client"`
			Server json.RawMessage `json:"server,omitempty"`
		}{}
		out.Client.Version = clientVersion
		if info != nil {
			b, err := marshalJSON(info, "")
			if err != nil {
				return err
			}
			out.Server = b
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	tw := p.table()
	fmt.Fprintf(tw, "Client:\t\n  Version:\t%s\n", clientVersion)
	if info != nil {
		fmt.Fprintf(tw, "Server:\t\n  Version:\t%s\n", orDash(info.GetVersion()))
		if info.GetCommit() != "" {
			fmt.Fprintf(tw, "  Commit:\t%s\n", info.GetCommit())
		}
		fmt.Fprintf(tw, "  Address:\t%s\n", addr)
		fmt.Fprintf(tw, "  Epoch:\t%s\n", orDash(info.GetEpoch()))
		fmt.Fprintf(tw, "  Started:\t%s\n", p.timeAgo(info.GetStartedAt()))
		fmt.Fprintf(tw, "  PID:\t%s\n", orDash(intText(info.GetPid())))
		fmt.Fprintf(tw, "  State dir:\t%s\n", orDash(info.GetStateDir()))
		fmt.Fprintf(tw, "  Listen:\t%s\n", orDash(info.GetListen()))
	}
	return tw.Flush()
}

// uptime is how long the app's oldest running instance has run.
func (p *printer) uptime(a *ancmv1.App) string {
	var oldest time.Time
	for _, in := range a.GetInstances() {
		if !live(in.GetState()) || in.GetStartedAt() == nil {
			continue
		}
		if t := in.GetStartedAt().AsTime(); oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		return "-"
	}
	return age(p.now().Sub(oldest))
}

// timeAgo writes a time with its age: "2026-01-02T03:04:05Z (5m ago)".
func (p *printer) timeAgo(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	t := ts.AsTime()
	return fmt.Sprintf("%s (%s ago)", t.In(p.loc).Format(time.RFC3339), age(p.now().Sub(t)))
}

// live reports whether an instance in state s has a running process.
func live(s ancmv1.InstanceState) bool {
	switch s {
	case ancmv1.InstanceState_INSTANCE_STATE_STARTING, ancmv1.InstanceState_INSTANCE_STATE_READY,
		ancmv1.InstanceState_INSTANCE_STATE_DRAINING, ancmv1.InstanceState_INSTANCE_STATE_STOPPING:
		return true
	}
	return false
}

// wanted is the number of instances the app is configured to run.
func wanted(s *ancmv1.AppSpec) uint32 {
	if s.GetProcesses() == 0 {
		return 1
	}
	return s.GetProcesses()
}

// lastExit is the most recent exit of any of the app's instances.
func lastExit(a *ancmv1.App) *ancmv1.ExitStatus {
	var last *ancmv1.ExitStatus
	for _, in := range a.GetInstances() {
		e := in.GetLastExit()
		if e == nil {
			continue
		}
		if last == nil || e.GetTime().AsTime().After(last.GetTime().AsTime()) {
			last = e
		}
	}
	return last
}

// exitText describes an exit: "code 1 (crashed)", "SIGKILL (stopped)".
func exitText(e *ancmv1.ExitStatus) string {
	if e == nil {
		return "-"
	}
	s := exitCodeText(e)
	if e.GetReason() != "" {
		s += " (" + e.GetReason() + ")"
	}
	return s
}

// exitCodeText is an exit's code, or its signal when one ended it.
func exitCodeText(e *ancmv1.ExitStatus) string {
	if e == nil {
		return "-"
	}
	if e.GetSignal() != "" {
		return e.GetSignal()
	}
	return "code " + strconv.Itoa(int(e.GetCode()))
}

// age is a short duration for humans: 45s, 5m10s, 3h12m, 2d4h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d.Round(time.Second) / time.Second)
	two := func(a int64, ua string, b int64, ub string) string {
		if b == 0 {
			return fmt.Sprintf("%d%s", a, ua)
		}
		return fmt.Sprintf("%d%s%d%s", a, ua, b, ub)
	}
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return two(s/60, "m", s%60, "s")
	case s < 86400:
		return two(s/3600, "h", s%3600/60, "m")
	default:
		return two(s/86400, "d", s%86400/3600, "h")
	}
}

// duration writes a config duration as the config file would: 2m, 1m30s.
func duration(d *durationpb.Duration) string {
	if d == nil {
		return "(default)"
	}
	s := d.AsDuration().String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// size writes a byte count as the config file would: 10MB, 512KB, 1000.
func size(n uint64) string {
	switch {
	case n == 0:
		return ""
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKB", n>>10)
	}
	return strconv.FormatUint(n, 10)
}

func appState(s ancmv1.AppState) string {
	if s == ancmv1.AppState_APP_STATE_UNSPECIFIED {
		return "-"
	}
	return strings.TrimPrefix(s.String(), "APP_STATE_")
}

func instanceState(s ancmv1.InstanceState) string {
	if s == ancmv1.InstanceState_INSTANCE_STATE_UNSPECIFIED {
		return "-"
	}
	return strings.TrimPrefix(s.String(), "INSTANCE_STATE_")
}

func eventType(t ancmv1.EventType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "EVENT_TYPE_"))
}

func startMode(m ancmv1.StartMode) string {
	if m == ancmv1.StartMode_START_MODE_UNSPECIFIED {
		return "(default)"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "START_MODE_"))
}

func applyChange(c ancmv1.ApplyChange) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "APPLY_CHANGE_"))
}

// quotedList writes a list as in HCL: ["--port", "$PORT"].
func quotedList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func list(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ",")
}

func intText(n int32) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(int(n))
}

func uintText(n uint32) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(n), 10)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orDefault(s string) string {
	if s == "" {
		return "(default)"
	}
	return s
}
