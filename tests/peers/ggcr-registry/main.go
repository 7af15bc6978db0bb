// Command ggcr-registry serves go-containerregistry's in-memory registry (pkg/registry) with its OCI 1.1
// Referrers API enabled, as a test partner of archfleet.multiarch (never shipped with the collection).
//
//	ggcr-registry -addr 127.0.0.1:PORT [-disk DIR]
//
// Manifests live in memory; blobs too, or under DIR with -disk. Every request is logged to stderr as one
// Apache combined-format line (method, path, status, size, user agent), the access log format of
// distribution, so the test harness parses both registries' logs alike. SIGTERM or SIGINT stops it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// recorder remembers the status and size of a response for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	size   int
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.size += n
	return n, err
}

// accessLog wraps next so that every request ends with one line on out.
func accessLog(next http.Handler, out *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, req)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		out.Printf("%s - - [%s] %q %d %d %q %q", req.RemoteAddr, time.Now().Format("02/Jan/2006:15:04:05 -0700"),
			req.Method+" "+req.URL.RequestURI()+" "+req.Proto, rec.status, rec.size, req.Referer(), req.UserAgent())
	})
}

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "address to listen on")
	disk := flag.String("disk", "", "keep blobs in this directory instead of memory")
	flag.Parse()

	opts := []registry.Option{
		registry.WithReferrersSupport(true),
		registry.Logger(log.New(os.Stderr, "ggcr: ", log.LstdFlags)),
	}
	if *disk != "" {
		opts = append(opts, registry.WithBlobHandler(registry.NewDiskBlobHandler(*disk)))
	}
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ggcr-registry: %v\n", err)
		os.Exit(1)
	}
	server := &http.Server{Handler: accessLog(registry.New(opts...), log.New(os.Stderr, "", 0)),
		ReadHeaderTimeout: 30 * time.Second}
	go stopOnSignal(server)
	fmt.Fprintf(os.Stderr, "ggcr-registry: listening on %s (referrers API on)\n", listener.Addr())
	if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "ggcr-registry: %v\n", err)
		os.Exit(1)
	}
}

// stopOnSignal shuts server down on SIGTERM or SIGINT, letting requests in flight finish (5 s at most).
func stopOnSignal(server *http.Server) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
}
