// Command clones-lab is the "lab vCenter": govmomi's vCenter simulator (the engine of vcsim),
// populated from a JSON spec (see docs/lab-spec.md), behind a thin HTTP layer that makes linked
// clones, storage figures, latency, fault injection and sessions behave like vCenter, plus a JSON
// control API under /lab.
//
//	clones-lab --spec FILE --listen 127.0.0.1:PORT [--state-file FILE]
//	clones-lab --plain --tls-cert CERT.pem --tls-key KEY.pem [--listen ...] [--user U --password P]
//
// On start it prints one JSON line ({"url", "user", "password", "control", ...}) to stdout and
// serves until SIGTERM/SIGINT. A malformed spec exits with status 2 and one line on stderr.
// --plain serves VMware's simulator as shipped instead, over HTTPS (plain.go).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
)

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "clones-lab: "+format+"\n", args...)
	os.Exit(code)
}

func writeStateFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0700); err != nil {
		return err
	}
	tmp, err := ioutil.TempFile(dir, ".lab-*.json")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func main() {
	specPath := flag.String("spec", "", "lab spec (JSON); see docs/lab-spec.md")
	listen := flag.String("listen", "127.0.0.1:8989", "address to serve on (port 0 picks a free port)")
	stateFile := flag.String("state-file", "", "write the start-up JSON (plus pid) here; removed on exit")
	verbose := flag.Bool("verbose", false, "log simulator messages to stderr")
	plain := flag.Bool("plain", false, "serve VMware's simulator as shipped (no lab fixes, no spec) over HTTPS")
	tlsCert := flag.String("tls-cert", "", "with --plain: the server certificate (PEM, chain allowed)")
	tlsKey := flag.String("tls-key", "", "with --plain: the certificate's private key (PEM)")
	user := flag.String("user", "clones", "with --plain: the one accepted user name")
	password := flag.String("password", "lab-password", "with --plain: the one accepted password")
	flag.Parse()

	if *plain {
		runPlain(plainOptions{listen: *listen, certFile: *tlsCert, keyFile: *tlsKey, user: *user,
			password: *password, stateFile: *stateFile, verbose: *verbose})
		return
	}

	if *specPath == "" {
		fail(2, "--spec FILE is required (the bundled default is lab/default-spec.json)")
	}
	spec, err := LoadSpec(*specPath)
	if err != nil {
		fail(2, "invalid spec %s: %v", *specPath, err)
	}
	if !*verbose {
		log.SetOutput(ioutil.Discard)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(1, "cannot listen on %s: %v", *listen, err)
	}

	// A fresh vCenter has no customization specs: drop the simulator's vcsim-* samples (the
	// spec's customization_specs are created by buildInventory).
	simulator.DefaultCustomizationSpec = nil
	model := simulator.VPX()
	model.Datacenter = 1
	model.Cluster = 0
	model.ClusterHost = 0
	model.Host = 0
	model.Datastore = 0
	model.Machine = 0
	model.Portgroup = 0
	model.Autostart = false
	if err := model.Create(); err != nil {
		fail(1, "simulator model: %v", err)
	}
	ctx := context.Background()
	client, err := vim25.NewClient(ctx, model.Service)
	if err != nil {
		fail(1, "in-process client: %v", err)
	}
	inv, err := buildInventory(ctx, client, spec)
	if err != nil {
		fail(1, "building the inventory: %v", err)
	}

	// Credentials: a Userinfo distinct from simulator.DefaultLogin makes the simulator check them
	// (with DefaultLogin itself it accepts any non-empty user and password).
	simulator.DefaultLogin = url.UserPassword(spec.User, spec.Password)
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(spec.User, spec.Password)}
	model.Service.ServeMux = http.NewServeMux()
	inner := model.Service.NewServer() // registers the SDK handlers on our ServeMux
	inner.Close()                      // ...and its own listener is not used

	addr := ln.Addr().(*net.TCPAddr)
	hostport := net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port))
	simulator.Map.SessionManager().ServiceHostName = hostport

	lab := newLab(spec, inv, model.Service.ServeMux)
	srv := &http.Server{Handler: lab, ErrorLog: log.New(os.Stderr, "clones-lab: ", log.LstdFlags)}

	absSpec, _ := filepath.Abs(*specPath)
	info := map[string]interface{}{
		"url":      "http://" + hostport + "/sdk",
		"host":     addr.IP.String(),
		"port":     addr.Port,
		"user":     spec.User,
		"password": spec.Password,
		"control":  "http://" + hostport + "/lab",
		"pid":      os.Getpid(),
		"spec":     absSpec,
	}
	line, _ := json.Marshal(info)

	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			fail(1, "serve: %v", err)
		}
	}()
	if *stateFile != "" {
		if err := writeStateFile(*stateFile, append(line, '\n')); err != nil {
			fail(1, "cannot write state file %s: %v", *stateFile, err)
		}
	}
	fmt.Fprintln(os.Stdout, string(line))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if *stateFile != "" {
		_ = os.Remove(*stateFile)
	}
	model.Remove()
	_ = os.RemoveAll(inv.tmpDir)
}
