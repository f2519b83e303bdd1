// Command contacts serves the contacts API (shared/API.md) with net/http and
// a pgx connection pool (pgxpool): Go's leading native PostgreSQL driver.
//
//	DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bakeoff contacts -addr 127.0.0.1:8000
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgconn/stmtcache"
	"github.com/jackc/pgx/v4/pgxpool"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "address to listen on")
	flag.Parse()

	config, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatalf("DATABASE_URL: %v", err)
	}
	// The same 10 connections as the lib/pq peer (pgxpool's own default is
	// max(4, cores)). pgx's default statement cache stays: each connection
	// prepares a query the first time it sees it and reuses it after.
	config.MaxConns = 10
	if s := os.Getenv("POOL_SIZE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			log.Fatalf("POOL_SIZE: %q is not a positive integer", s)
		}
		config.MaxConns = int32(n)
	}
	config.MaxConnIdleTime = 5 * time.Minute
	// Behind PgBouncer in transaction mode (BAKEOFF_POOLER=pgbouncer), the
	// statement cache is in "describe" mode, one of the two modes pgx v4
	// documents for PgBouncer (doc.go, "PgBouncer"), the other being
	// PreferSimpleProtocol. A query's first use on a connection describes it
	// through the unnamed statement, and every use sends Parse (unnamed),
	// Bind, Describe and Execute in one batch, so nothing is left on a server
	// connection for a later transaction, which may get another. Describe
	// mode keeps what the unpooled row measures, the extended protocol with
	// binary results and parameters sent apart from the SQL; the simple
	// protocol would switch to text results and parameters interpolated by
	// pgx.
	if os.Getenv("BAKEOFF_POOLER") == "pgbouncer" {
		capacity := 512 // pgx's default statement_cache_capacity
		config.ConnConfig.BuildStatementCache = func(conn *pgconn.PgConn) stmtcache.Cache {
			return stmtcache.New(conn, stmtcache.ModeDescribe, capacity)
		}
	}
	// ConnectConfig opens one connection to check the database, so unlike
	// the lib/pq peer this one does not start while the database is down.
	db, err := pgxpool.ConnectConfig(context.Background(), config)
	if err != nil {
		log.Fatalf("database: %v", err)
	}

	srv := &http.Server{
		Addr:              *addr,
		Handler:           newServer(db).routes(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Printf("contacts (go, pgx) listening on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}
