package sss

import "sync"

// planCache memoises immutable plans (encoders, Lagrange weights) per
// parameter set for the one-shot functions. It is bounded: when full it is
// simply emptied, which is cheap because plans are cheap to rebuild.
type planCache[T any] struct {
	mu sync.Mutex
	m  map[string]T
}

const planCacheMax = 256

func newPlanCache[T any]() *planCache[T] {
	return &planCache[T]{m: make(map[string]T)}
}

func (c *planCache[T]) get(key string) (T, bool) {
	c.mu.Lock()
	v, ok := c.m[key]
	c.mu.Unlock()
	return v, ok
}

func (c *planCache[T]) put(key string, v T) {
	c.mu.Lock()
	if len(c.m) >= planCacheMax {
		clear(c.m)
	}
	c.m[key] = v
	c.mu.Unlock()
}
