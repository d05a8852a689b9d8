package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The many-sessions benchmark: the server's own account of its memory.

// runtimeStats is the server's Go runtime as its metrics endpoint reports it.
type runtimeStats struct {
	goroutines float64
	heapInuse  float64 // bytes in in-use heap spans
	stackInuse float64 // bytes of goroutine stacks
}

// scrapeRuntime reads the Go runtime figures from a braid serve's --metrics endpoint.
func scrapeRuntime(ctx context.Context, addr string) (runtimeStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return runtimeStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return runtimeStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return runtimeStats{}, fmt.Errorf("metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return runtimeStats{}, fmt.Errorf("metrics: %w", err)
	}
	get := func(name string) (float64, error) {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) == 0 {
			return 0, fmt.Errorf("metrics: no %s", name)
		}
		m := f.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue(), nil
		}
		return m.GetUntyped().GetValue(), nil
	}
	var st runtimeStats
	for _, v := range []struct {
		name string
		dst  *float64
	}{{"go_goroutines", &st.goroutines}, {"go_memstats_heap_inuse_bytes", &st.heapInuse}, {"go_memstats_stack_inuse_bytes", &st.stackInuse}} {
		if *v.dst, err = get(v.name); err != nil {
			return st, err
		}
	}
	return st, nil
}
