package sample

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// ownerIndex maps socket inodes to the processes holding a descriptor for
// them, as `ss -p` does: every /proc/PID/fd/N link reading "socket:[INODE]".
type ownerIndex struct {
	owners []Owner
	// one holds the first owner of each socket inode; more holds the
	// full owner list of the few inodes shared by several processes
	// (after fork).
	one  map[uint64]int32
	more map[uint64][]Owner
}

// lookup returns the owners of a socket inode (nil when none or unknown).
// The slice is shared: callers must not modify it.
func (x *ownerIndex) lookup(inode uint64) []Owner {
	if x == nil || inode == 0 {
		return nil
	}
	if o, ok := x.more[inode]; ok {
		return o
	}
	if i, ok := x.one[inode]; ok {
		return x.owners[i : i+1 : i+1]
	}
	return nil
}

// scanOwners walks procRoot/[0-9]*/fd once. Processes whose descriptors
// cannot be read (no root) are counted and reported as one Missing entry;
// processes that exit during the walk are skipped.
func scanOwners(procRoot string) (*ownerIndex, *Missing, error) {
	d, err := os.Open(procRoot)
	if err != nil {
		return nil, nil, procNoData(err)
	}
	defer d.Close()
	x := &ownerIndex{one: make(map[uint64]int32, 1024), more: map[uint64][]Owner{}}
	var denied int
	link := make([]byte, 64)
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			pid, perr := strconv.Atoi(name)
			if perr != nil || pid <= 0 {
				continue
			}
			if err := x.scanProcess(procRoot, pid, link); errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
				denied++
			}
		}
		if err != nil {
			break // io.EOF or a vanished directory: done
		}
	}
	fs, err := procfs.NewFS(procRoot)
	if err == nil {
		for i := range x.owners {
			fillOwner(fs, &x.owners[i])
		}
	}
	// Shared inodes were recorded before comm and limits were known.
	for ino, list := range x.more {
		for j := range list {
			for i := range x.owners {
				if x.owners[i].PID == list[j].PID {
					list[j] = x.owners[i]
					break
				}
			}
		}
		x.more[ino] = list
	}
	var miss *Missing
	if denied > 0 {
		miss = &Missing{
			Source: "process owners",
			Reason: fmt.Sprintf("permission denied reading /proc/PID/fd of %d processes: their sockets show no owner (run as root)", denied),
		}
	}
	return x, miss, nil
}

// scanProcess records the socket descriptors of one process.
func (x *ownerIndex) scanProcess(procRoot string, pid int, link []byte) error {
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dfd), dir)
	defer f.Close()
	idx := int32(-1)
	fds := 0
	for {
		names, err := f.Readdirnames(1024)
		for _, name := range names {
			fds++
			n, err := unix.Readlinkat(dfd, name, link)
			if err != nil || n < 10 || n >= len(link) || string(link[:8]) != "socket:[" || link[n-1] != ']' {
				continue
			}
			ino, err := strconv.ParseUint(string(link[8:n-1]), 10, 64)
			if err != nil {
				continue
			}
			if idx < 0 {
				x.owners = append(x.owners, Owner{PID: pid})
				idx = int32(len(x.owners) - 1)
			}
			x.add(ino, idx)
		}
		if err != nil {
			break
		}
	}
	if idx >= 0 {
		x.owners[idx].FDs = fds
	}
	return nil
}

func (x *ownerIndex) add(ino uint64, idx int32) {
	if list, ok := x.more[ino]; ok {
		for _, o := range list {
			if o.PID == x.owners[idx].PID {
				return
			}
		}
		x.more[ino] = append(list, Owner{PID: x.owners[idx].PID})
		return
	}
	first, ok := x.one[ino]
	switch {
	case !ok:
		x.one[ino] = idx
	case first != idx:
		x.more[ino] = []Owner{{PID: x.owners[first].PID}, {PID: x.owners[idx].PID}}
	}
}

// fillOwner adds the command, systemd unit and descriptor limit of a
// process; what cannot be read stays empty.
func fillOwner(fs procfs.FS, o *Owner) {
	p, err := fs.Proc(o.PID)
	if err != nil {
		return
	}
	if c, err := p.Comm(); err == nil {
		o.Comm = c
	}
	if l, err := p.Limits(); err == nil {
		o.FDLimit = l.OpenFiles
	}
	if cg, err := p.Cgroups(); err == nil {
		o.Unit = unitOf(cg)
	}
}

// unitOf returns the systemd unit named by a process's cgroup path: the
// deepest ".service" component, else the deepest ".scope" one
// ("0::/system.slice/nginx.service" -> "nginx.service"). The unified (v2)
// hierarchy or the v1 "name=systemd" one is used.
func unitOf(cgs []procfs.Cgroup) string {
	path := ""
	for _, c := range cgs {
		if c.HierarchyID == 0 {
			path = c.Path
			break
		}
		for _, ctl := range c.Controllers {
			if ctl == "name=systemd" {
				path = c.Path
			}
		}
	}
	return unitFromPath(path)
}

func unitFromPath(path string) string {
	parts := strings.Split(path, "/")
	for _, suffix := range []string{".service", ".scope"} {
		for i := len(parts) - 1; i >= 0; i-- {
			if strings.HasSuffix(parts[i], suffix) && len(parts[i]) > len(suffix) {
				return parts[i]
			}
		}
	}
	return ""
}
