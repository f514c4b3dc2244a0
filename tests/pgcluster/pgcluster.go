// Package pgcluster starts a throwaway PostgreSQL server from the host's own
// server binaries (initdb + postgres on a free loopback port, in a temporary
// folder), for the tests (tests/testdb's third source of a server) and for
// `make bench`, which share this one way of doing it.
//
// initdb refuses to run as root, so as root the server runs as the "postgres"
// user (Debian's packages create it), or else as "nobody". The server gets a
// fast shutdown when the process that started it dies, so an interrupted test
// binary leaves no server behind (only, at worst, its temporary folder).
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvBin names the folder of PostgreSQL's server binaries; without it, initdb
// and postgres are looked up on PATH.
const EnvBin = "PG_BIN"

// Cluster is a running server started from the host's binaries.
type Cluster struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan error
}

// Options say how to start a cluster.
type Options struct {
	// Bin is the folder of initdb and postgres; empty means PATH only.
	Bin string
	// Settings are postgres -c settings (name=value).
	Settings []string
	// Preload lists shared_preload_libraries to load when the install has them
	// (e.g. pg_stat_statements); one that is not installed is left out.
	Preload []string
}

// URL is the address of database db as the superuser postgres (trust
// authentication on loopback).
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Start runs initdb and postgres on a free loopback port and waits until the
// server accepts connections. On error, Stop still removes what was made.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	initdb, err := FindTool(opts.Bin, "initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := FindTool(opts.Bin, "postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "userservice-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if cred, err = unprivileged(dir); err != nil {
			return c, err
		}
	}
	data := filepath.Join(dir, "data")
	cmd := exec.CommandContext(ctx, initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return c, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return c, err
	}
	c.port = ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return c, err
	}
	args := []string{"-D", data, "-p", strconv.Itoa(c.port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + dir}
	var preload []string
	for _, lib := range opts.Preload {
		if _, err := os.Stat(filepath.Join(filepath.Dir(postgres), "..", "lib", lib+".so")); err == nil {
			preload = append(preload, lib)
		}
	}
	if len(preload) > 0 {
		args = append(args, "-c", "shared_preload_libraries="+strings.Join(preload, ","))
	}
	for _, s := range opts.Settings {
		args = append(args, "-c", s)
	}
	logFile, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return c, err
	}
	defer logFile.Close()
	c.cmd = exec.Command(postgres, args...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	// If this process dies, the server gets a fast shutdown, not an orphan's life.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT}
	if err := c.cmd.Start(); err != nil {
		c.cmd = nil
		return c, fmt.Errorf("starting postgres: %w", err)
	}
	c.done = make(chan error, 1)
	go func() { c.done <- c.cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			return c, conn.Close(ctx)
		}
		select {
		case werr := <-c.done:
			c.cmd = nil
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			return c, fmt.Errorf("postgres exited: %v\n%s", werr, log)
		case <-ctx.Done():
			return c, fmt.Errorf("postgres did not accept connections: %w", errors.Join(ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("postgres did not accept connections within a minute: %w", err)
		}
	}
}

// unprivileged chowns dir to the postgres (or nobody) user and returns that
// user's credentials, for running initdb and postgres as root.
func unprivileged(dir string) (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		u, err = user.Lookup("nobody")
	}
	if err != nil {
		return nil, fmt.Errorf("running as root, and neither a postgres nor a nobody user exists for initdb: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Stop shuts the server down (fast: open sessions are ended) and removes its
// files.
func (c *Cluster) Stop() error {
	var err error
	if c.cmd != nil {
		if err = c.cmd.Process.Signal(syscall.SIGINT); err == nil {
			select {
			case <-c.done:
			case <-time.After(time.Minute):
				err = c.cmd.Process.Kill()
			}
		}
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}

// FindTool returns bin/name, or name on PATH.
func FindTool(bin, name string) (string, error) {
	if bin != "" {
		if p := filepath.Join(bin, name); isExecutable(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is neither in %s=%s nor on PATH (PostgreSQL's server binaries: Debian's postgresql-15 package)", name, EnvBin, bin)
	}
	return p, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
