// Command clones-lab is the "lab vCenter": govmomi's vCenter simulator (the engine of vcsim),
// populated from a JSON spec (see docs/lab-spec.md), behind a thin HTTP layer that makes linked
// clones, storage figures, latency, fault injection and sessions behave like vCenter, plus a JSON
// control API under /lab.
//
//	clones-lab --spec FILE --listen 127.0.0.1:PORT [--state-file FILE]
//	clones-lab --check --spec FILE
//	clones-lab --plain --tls-cert CERT.pem --tls-key KEY.pem [--listen ...] [--user U --password P]
//
// On start it prints one JSON line ({"url", "user", "password", "control", ...}) to stdout and
// serves until SIGTERM/SIGINT. A malformed spec exits with status 2 and one line per problem on
// stderr. --check only validates the spec: it prints the spec as the lab would run it (defaults
// filled in) and exits 0, or exits 2 with the problems. --plain serves VMware's simulator as
// shipped instead, over HTTPS (plain.go).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
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
	check := flag.Bool("check", false, "only validate --spec: print it with defaults filled in (exit 0), or its problems (exit 2)")
	listen := flag.String("listen", "127.0.0.1:8989", "address to serve on (port 0 picks a free port)")
	stateFile := flag.String("state-file", "", "write the start-up JSON (plus pid) here; removed on exit")
	verbose := flag.Bool("verbose", false, "log simulator messages to stderr")
	plain := flag.Bool("plain", false, "serve VMware's simulator as shipped (no lab fixes, no spec) over HTTPS")
	tlsCert := flag.String("tls-cert", "", "with --plain: the server certificate (PEM, chain allowed)")
	tlsKey := flag.String("tls-key", "", "with --plain: the certificate's private key (PEM)")
	user := flag.String("user", "clones", "with --plain: the one accepted user name")
	password := flag.String("password", "lab-password", "with --plain: the one accepted password")
	flag.Parse()

	switch {
	case *plain:
		runPlain(plainOptions{listen: *listen, certFile: *tlsCert, keyFile: *tlsKey, user: *user,
			password: *password, stateFile: *stateFile, verbose: *verbose})
	case *specPath == "":
		fail(2, "--spec FILE is required (the bundled default is lab/default-spec.json)")
	case *check:
		os.Exit(runCheck(*specPath, os.Stdout, os.Stderr))
	default:
		runLab(*specPath, *listen, *stateFile, *verbose)
	}
}

// runCheck validates the spec at path and returns the exit status: 0 with the spec as the lab
// would run it on stdout, or 2 with one line per problem on stderr.
func runCheck(path string, stdout, stderr io.Writer) int {
	spec, err := LoadSpec(path)
	if err != nil {
		reportSpecProblems(stderr, path, err)
		return 2
	}
	out, _ := json.MarshalIndent(spec.withLists(), "", "  ")
	fmt.Fprintln(stdout, string(out))
	return 0
}

// reportSpecProblems writes one line per problem of a spec that does not load.
func reportSpecProblems(stderr io.Writer, path string, err error) {
	list, ok := err.(problemList)
	if !ok {
		list = problemList{err.Error()}
	}
	for _, problem := range list {
		fmt.Fprintf(stderr, "clones-lab: invalid spec %s: %s\n", path, problem)
	}
}

// runLab serves the lab built from the spec at specPath until SIGTERM or SIGINT.
func runLab(specPath, listen, stateFile string, verbose bool) {
	spec, err := LoadSpec(specPath)
	if err != nil {
		reportSpecProblems(os.Stderr, specPath, err)
		os.Exit(2)
	}
	if !verbose {
		log.SetOutput(ioutil.Discard)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fail(1, "cannot listen on %s: %v", listen, err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	hostport := net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port))
	built, err := buildLab(spec, hostport)
	if err != nil {
		fail(1, "%v", err)
	}
	srv := &http.Server{Handler: built.lab, ErrorLog: log.New(os.Stderr, "clones-lab: ", log.LstdFlags)}

	absSpec, _ := filepath.Abs(specPath)
	line, _ := json.Marshal(map[string]interface{}{
		"url":      "http://" + hostport + "/sdk",
		"host":     addr.IP.String(),
		"port":     addr.Port,
		"user":     spec.User,
		"password": spec.Password,
		"control":  "http://" + hostport + "/lab",
		"pid":      os.Getpid(),
		"spec":     absSpec,
	})
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			fail(1, "serve: %v", err)
		}
	}()
	if stateFile != "" {
		if err := writeStateFile(stateFile, append(line, '\n')); err != nil {
			fail(1, "cannot write state file %s: %v", stateFile, err)
		}
	}
	fmt.Fprintln(os.Stdout, string(line))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if stateFile != "" {
		_ = os.Remove(stateFile)
	}
	built.close()
}
