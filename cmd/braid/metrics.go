package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/metrics"
)

// metricsServer serves --metrics: a Prometheus endpoint at /metrics with the command's sessions
// (internal/metrics), its listener on a server, and the Go runtime's and process's metrics. Its
// methods do nothing on a nil receiver, so a command without --metrics calls them all the same.
type metricsServer struct {
	c    *metrics.Collector
	srv  *http.Server
	addr string
	done chan struct{}
}

// startMetrics listens on addr (an error here is the command's: a port in use fails at once)
// and serves until close.
func startMetrics(addr string, log *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	m := &metricsServer{c: metrics.New(), addr: ln.Addr().String(), done: make(chan struct{})}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("metrics endpoint", "url", "http://"+m.addr+"/metrics")
	return m, nil
}

func (m *metricsServer) track(s *braid.Session) {
	if m != nil {
		m.c.Track(s)
	}
}

func (m *metricsServer) setListener(l *braid.Listener) {
	if m != nil {
		m.c.SetListener(l)
	}
}

func (m *metricsServer) dialFailed(err error) {
	if m != nil {
		m.c.DialFailed(err)
	}
}

// close stops serving, letting a scrape in progress finish (briefly).
func (m *metricsServer) close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m.srv.Shutdown(ctx)
	<-m.done
}
