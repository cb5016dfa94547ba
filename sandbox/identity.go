package sandbox

import (
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// Identity is who an app runs as: a user with its primary group and its
// supplementary groups, as login(1) and systemd's User= set them.
type Identity struct {
	User   string
	Uid    uint32
	Gid    uint32
	Groups []uint32
	Home   string
}

// LookupIdentity resolves a user name (or numeric uid) and an optional
// primary group that replaces the user's own. An empty name is no change
// of user: the result is nil unless group is set, which then changes the
// group alone.
func LookupIdentity(name, group string) (*Identity, error) {
	if name == "" && group == "" {
		return nil, nil
	}
	id := &Identity{}
	if name != "" {
		u, err := lookupUser(name)
		if err != nil {
			return nil, err
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("user %q: uid %q or gid %q is not a number", name, u.Uid, u.Gid)
		}
		id.User, id.Uid, id.Gid, id.Home = u.Username, uint32(uid), uint32(gid), u.HomeDir
		gids, err := u.GroupIds()
		if err != nil {
			return nil, fmt.Errorf("user %q: groups: %w", name, err)
		}
		for _, g := range gids {
			n, err := strconv.ParseUint(g, 10, 32)
			if err == nil {
				id.Groups = append(id.Groups, uint32(n))
			}
		}
	} else {
		id.Uid = uint32(syscall.Geteuid())
		id.Gid = uint32(syscall.Getegid())
	}
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("group %q: gid %q is not a number", group, g.Gid)
		}
		id.Gid = uint32(n)
	}
	return id, nil
}

func lookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err == nil {
		return u, nil
	}
	if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
		if u, err2 := user.LookupId(name); err2 == nil {
			return u, nil
		}
	}
	return nil, fmt.Errorf("no such user %q", name)
}

func lookupGroup(name string) (*user.Group, error) {
	g, err := user.LookupGroup(name)
	if err == nil {
		return g, nil
	}
	if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
		if g, err2 := user.LookupGroupId(name); err2 == nil {
			return g, nil
		}
	}
	return nil, fmt.Errorf("no such group %q", name)
}

// credential is the identity as the kernel takes it.
func (id *Identity) credential() *syscall.Credential {
	return &syscall.Credential{Uid: id.Uid, Gid: id.Gid, Groups: id.Groups, NoSetGroups: id.User == ""}
}
