package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wardproject/ward/plugins/secrets/database/pgtest"
)

// BenchmarkRevokeUser measures dynamic users dropped per second by
// RevokeUser (default revocation) with 16 concurrent callers, as the lease
// manager's expiry loop makes them, for pools of 4 and 16 connections.
func BenchmarkRevokeUser(b *testing.B) {
	pg := pgtest.New(b)
	admin, pw := pg.NewSuperuser(b)
	ctx := context.Background()
	for _, conns := range []int{4, 16} {
		b.Run(fmt.Sprintf("pool=%d", conns), func(b *testing.B) {
			db, err := Open(Config{ConnectionURL: pg.TemplateURL(), Username: admin, Password: pw, MaxOpenConnections: conns})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			names := make([]string, b.N)
			for i := range names {
				names[i] = fmt.Sprintf("bench-%d-%d-%d", conns, time.Now().UnixNano(), i)
				if err := db.CreateUser(ctx, []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`},
					User{Name: names[i], Password: "pw-Aa1-xxxxxxxx", Expiration: time.Now().Add(time.Hour)}); err != nil {
					b.Fatal(err)
				}
			}
			work := make(chan string, len(names))
			for _, n := range names {
				work <- n
			}
			close(work)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for n := range work {
						if err := db.RevokeUser(ctx, nil, n); err != nil {
							b.Error(err)
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "revocations/s")
		})
	}
}
