// Command cachewarm compiles Ward WASM modules into a compilation cache
// directory. The wasm package's tests run it (built without the race
// detector) before their own compiles, which then load machine code from
// the cache: wazero's compiler is several times slower under -race.
//
//	cachewarm CACHE_DIR MODULE.wasm...
package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/wardproject/ward/wasm"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: cachewarm CACHE_DIR MODULE.wasm...")
		os.Exit(2)
	}
	ctx := context.Background()
	e, err := wasm.NewEngine(wasm.EngineConfig{CacheDir: os.Args[1]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer e.Close(ctx)
	var wg sync.WaitGroup
	failed := false
	var mu sync.Mutex
	for _, f := range os.Args[2:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bin, err := os.ReadFile(f)
			if err == nil {
				_, err = e.Compile(ctx, bin)
			}
			if err != nil {
				mu.Lock()
				failed = true
				fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed {
		os.Exit(1)
	}
}
