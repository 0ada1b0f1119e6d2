package main

// The "plain" mode: VMware's simulator as VMware ships it (what `vcsim` serves by default), with
// none of the lab's fixes. No spec, no /lab control API, no session gate, no linked-clone,
// storage, duplicate-name or customization fix-ups: the default vcsim inventory (datacenter DC0,
// cluster DC0_C0 with 3 hosts, standalone host DC0_H0, datastore LocalDS_0, VMs DC0_H0_VM0,
// DC0_H0_VM1, DC0_C0_RP0_VM0, DC0_C0_RP0_VM1, powered on), served over HTTPS with the
// certificate it is given, checking one user and password (vcsim's -username/-password).
//
// Tests use it to prove that the adapter works against a VMware implementation we did not patch:
// login, TLS verification (CA file, pinned fingerprint, and each failure's real reason), the
// pre-flight check, and a deploy that meets the simulator's full copies.

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"log"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

type plainOptions struct {
	listen    string
	certFile  string
	keyFile   string
	user      string
	password  string
	stateFile string
	verbose   bool
}

// runPlain stays whole (about 60 lines): it is vcsim's own start-up, step by step, and reads best
// in one piece.
func runPlain(opts plainOptions) {
	if opts.certFile == "" || opts.keyFile == "" {
		fail(2, "--plain needs --tls-cert FILE and --tls-key FILE (PEM): it serves HTTPS only")
	}
	cert, err := tls.LoadX509KeyPair(opts.certFile, opts.keyFile)
	if err != nil {
		fail(2, "cannot load the TLS certificate %s / key %s: %v", opts.certFile, opts.keyFile, err)
	}
	if opts.user == "" || opts.password == "" {
		fail(2, "--user and --password must not be empty")
	}
	if !opts.verbose {
		log.SetOutput(ioutil.Discard)
	}
	// Fail early and clearly on a taken address (the simulator's own listener would panic).
	probe, err := net.Listen("tcp", opts.listen)
	if err != nil {
		fail(1, "cannot listen on %s: %v", opts.listen, err)
	}
	listen := probe.Addr().String()
	_ = probe.Close()

	model := simulator.VPX()
	if err := model.Create(); err != nil {
		fail(1, "simulator model: %v", err)
	}
	// Exactly what vcsim does with -l, -username, -password and -tls: the simulator checks this
	// one login, and serves its own HTTPS listener.
	model.Service.Listen = &url.URL{Host: listen, User: url.UserPassword(opts.user, opts.password)}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	server := model.Service.NewServer()

	addr := server.Listener.Addr().(*net.TCPAddr)
	hostport := net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port))
	info := map[string]interface{}{
		"url":      "https://" + hostport + "/sdk",
		"host":     addr.IP.String(),
		"port":     addr.Port,
		"user":     opts.user,
		"password": opts.password,
		"control":  "",
		"pid":      os.Getpid(),
		"spec":     "",
		"plain":    true,
	}
	line, _ := json.Marshal(info)
	if opts.stateFile != "" {
		if err := writeStateFile(opts.stateFile, append(line, '\n')); err != nil {
			fail(1, "cannot write state file %s: %v", opts.stateFile, err)
		}
	}
	fmt.Fprintln(os.Stdout, string(line))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	server.Close()
	if opts.stateFile != "" {
		_ = os.Remove(opts.stateFile)
	}
	model.Remove()
}
