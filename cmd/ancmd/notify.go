package main

import (
	"context"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
)

// notifier tells systemd how ancmd is doing (sd_notify, for a unit with
// Type=notify) through $NOTIFY_SOCKET. Without that variable every call
// does nothing. The variables stay in the environment, so apps inherit
// them; the unit's NotifyAccess=main makes systemd ignore anything but
// ancmd itself.
type notifier struct {
	log hclog.Logger
}

func (n notifier) send(lines ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(lines, "\n")); err != nil {
		n.log.Warn("sd_notify failed", "error", err)
	}
}

// ready says that both planes serve, or that a reload is done.
func (n notifier) ready(status string) { n.send(daemon.SdNotifyReady, "STATUS="+status) }

// reloading says that a SIGHUP is being handled; ready follows.
func (n notifier) reloading() {
	n.send(daemon.SdNotifyReloading, strings.TrimSuffix(daemon.SdNotifyMonotonicUsec(), "\n"), "STATUS=reloading the config file")
}

// stopping says that a graceful shutdown has begun.
func (n notifier) stopping() { n.send(daemon.SdNotifyStopping, "STATUS=stopping apps") }

// watchdog sends WATCHDOG=1 at half the unit's WatchdogSec, if it sets
// one, until ctx ends. alive is asked before each ping: a daemon whose
// planes no longer serve stops pinging, and systemd restarts it.
func (n notifier) watchdog(ctx context.Context, alive func() bool) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog settings not understood; not pinging", "error", err)
		return
	}
	if every <= 0 {
		return
	}
	n.log.Debug("pinging the systemd watchdog", "every", every/2)
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				n.send(daemon.SdNotifyWatchdog)
			}
		}
	}
}
