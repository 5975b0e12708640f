package kv

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/wardproject/ward/sdk/logical"
)

// Concurrent writers to one key get distinct, sequential versions, and the
// key ends with exactly as many versions as writes (pruned to max_versions).
func TestHammerConcurrentWriters(t *testing.T) {
	const writers, perWriter = 16, 25
	e := newEnv(t, "2")
	var (
		mu       sync.Mutex // protects versions
		versions []int
		wg       sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				resp, err := e.do(logical.UpdateOperation, "data/hot", map[string]any{"data": map[string]any{"w": w, "i": i}})
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				versions = append(versions, resp.Data["version"].(int))
				mu.Unlock()
				// Readers and patchers of the same key run alongside.
				if _, err := e.do(logical.ReadOperation, "data/hot", nil); err != nil {
					t.Errorf("read: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	sort.Ints(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions not distinct and sequential: position %d has %d", i, v)
		}
	}
	md := e.ok(logical.ReadOperation, "metadata/hot", nil).Data
	if md["current_version"] != writers*perWriter || len(md["versions"].(map[string]any)) != defaultMaxVersions {
		t.Fatalf("metadata current %v, %d versions", md["current_version"], len(md["versions"].(map[string]any)))
	}
	// Exactly the retained versions have records.
	if got := len(e.storageKeys()); got != 1+defaultMaxVersions {
		t.Fatalf("%d storage keys, want %d", got, 1+defaultMaxVersions)
	}
}

// Concurrent check-and-set read-modify-write loops never lose an update:
// every successful write is one increment.
func TestHammerCASCounter(t *testing.T) {
	const workers, increments = 8, 20
	e := newEnv(t, "2")
	e.ok(logical.UpdateOperation, "config", map[string]any{"cas_required": true})
	e.ok(logical.UpdateOperation, "data/counter", map[string]any{"data": map[string]any{"n": 0}, "options": map[string]any{"cas": 0}})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < increments; {
				resp, err := e.do(logical.ReadOperation, "data/counter", nil)
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				version := resp.Data["metadata"].(map[string]any)["version"].(int)
				n, _ := toInt(resp.Data["data"].(map[string]any)["n"])
				_, err = e.do(logical.UpdateOperation, "data/counter", map[string]any{
					"data": map[string]any{"n": n + 1}, "options": map[string]any{"cas": version},
				})
				switch {
				case err == nil:
					done++
				case !errors.Is(err, errCASMismatch):
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	resp := e.ok(logical.ReadOperation, "data/counter", nil)
	n, _ := toInt(resp.Data["data"].(map[string]any)["n"])
	if n != workers*increments || resp.Data["metadata"].(map[string]any)["version"] != workers*increments+1 {
		t.Fatalf("counter %d at version %v, want %d at %d", n, resp.Data["metadata"].(map[string]any)["version"],
			workers*increments, workers*increments+1)
	}
}

// Operations on many keys, including deletes and metadata writes, under
// -race: checks the striped locks and the absence of shared mutable state.
func TestHammerMixedKeys(t *testing.T) {
	e := newEnv(t, "2")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				key := fmt.Sprintf("k%d", (w+i)%5)
				ops := []struct {
					op   logical.Operation
					path string
					data map[string]any
				}{
					{logical.UpdateOperation, "data/" + key, map[string]any{"data": map[string]any{"i": i}}},
					{logical.PatchOperation, "data/" + key, map[string]any{"data": map[string]any{"p": w}}},
					{logical.ReadOperation, "metadata/" + key, nil},
					{logical.UpdateOperation, "delete/" + key, map[string]any{"versions": []any{1, 2}}},
					{logical.PatchOperation, "metadata/" + key, map[string]any{"custom_metadata": map[string]any{"w": "x"}}},
					{logical.ListOperation, "metadata/", nil},
					{logical.UpdateOperation, "destroy/" + key, map[string]any{"versions": []any{3}}},
				}
				o := ops[i%len(ops)]
				if i%23 == 0 {
					o.op, o.path, o.data = logical.DeleteOperation, "metadata/"+key, nil
				}
				if _, err := e.do(o.op, o.path, o.data); err != nil {
					t.Errorf("%s %s: %v", o.op, o.path, err)
				}
			}
		}()
	}
	wg.Wait()
}
