// Command contacts serves the contacts API (shared/API.md) with net/http and
// database/sql over lib/pq.
//
//	DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bakeoff contacts -addr 127.0.0.1:8000
package main

import (
	"database/sql"
	"flag"
	"log"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "address to listen on")
	flag.Parse()

	dsn := os.Getenv("DATABASE_URL")
	// Behind PgBouncer in transaction mode (BAKEOFF_POOLER=pgbouncer), lib/pq
	// needs binary_parameters=yes. By default it runs a query with parameters
	// in two exchanges: Parse and Describe of the unnamed statement, Sync, then
	// Bind and Execute. PgBouncer may hand the second to another server
	// connection, where the unnamed statement is missing ("unnamed prepared
	// statement does not exist", lib/pq issue #889) or another client's. With
	// binary_parameters, lib/pq sends Parse, Bind, Describe and Execute in one
	// batch (one round trip, where the unpooled row takes two); parameters of
	// type []byte go in binary, and this peer has none; results stay text.
	if os.Getenv("BAKEOFF_POOLER") == "pgbouncer" {
		var err error
		if dsn, err = withParam(dsn, "binary_parameters", "yes"); err != nil {
			log.Fatalf("DATABASE_URL: %v", err)
		}
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		log.Fatalf("database: %v", err)
	}
	poolSize := 10
	if s := os.Getenv("POOL_SIZE"); s != "" {
		if poolSize, err = strconv.Atoi(s); err != nil || poolSize < 1 {
			log.Fatalf("POOL_SIZE: %q is not a positive integer", s)
		}
	}
	db.SetMaxOpenConns(poolSize)
	db.SetMaxIdleConns(poolSize)
	db.SetConnMaxIdleTime(5 * time.Minute)

	srv := &http.Server{
		Addr:              *addr,
		Handler:           newServer(db).routes(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Printf("contacts (go) listening on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}

// withParam adds key=value to a libpq connection string, a URL or key=value
// pairs, as lib/pq reads both.
func withParam(dsn, key, value string) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " " + key + "=" + value, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
