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
	"os"
	"strconv"
	"time"

	_ "github.com/lib/pq"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "address to listen on")
	flag.Parse()

	db, err := sql.Open("postgres", os.Getenv("DATABASE_URL"))
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
