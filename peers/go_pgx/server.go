// The routes and handlers of the contacts API, over a pgx pool.

package main

import (
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

const version = "0.1.0"

const contactColumns = `
SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name,
       ARRAY(SELECT p.phone_number FROM contact_phones p
             WHERE p.contact_id = c.contact_id AND p.phone_number IS NOT NULL
             ORDER BY p.phone_id) AS phone_number,
       ARRAY(SELECT e.email_address FROM contact_emails e
             WHERE e.contact_id = c.contact_id AND e.email_address IS NOT NULL
             ORDER BY e.email_id) AS email
FROM contacts c
JOIN contact_types t ON t.type_id = c.type_id
`

const (
	pageSQL       = contactColumns + `ORDER BY c.contact_id LIMIT $1 OFFSET $2`
	pageStartsSQL = contactColumns + `WHERE lower(c.last_name) LIKE lower($3) || '%'
ORDER BY c.contact_id LIMIT $1 OFFSET $2`
	contactSQL = contactColumns + `WHERE c.contact_id = $1`
	typesSQL   = `SELECT type_id, type_name FROM contact_types ORDER BY type_id`
)

type ContactType struct {
	TypeID   int     `json:"type_id"`
	TypeName *string `json:"type_name"`
}

type Contact struct {
	ContactID   int         `json:"contact_id"`
	FirstName   string      `json:"first_name"`
	LastName    string      `json:"last_name"`
	ContactType ContactType `json:"contact_type"`
	PhoneNumber []string    `json:"phone_number"`
	Email       []string    `json:"email"`
}

// fieldError is one item of a 422 body, shaped as FastAPI shapes it.
type fieldError struct {
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
	Type string   `json:"type"`
}

type detail struct {
	Detail any `json:"detail"`
}

type server struct {
	db *pgxpool.Pool
}

func newServer(db *pgxpool.Pool) *server {
	return &server{db: db}
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/version", getOnly(s.version))
	mux.HandleFunc("/types", getOnly(s.types))
	mux.HandleFunc("/contacts/", getOnly(s.contacts))
	mux.HandleFunc("/fibonacci/", getOnly(s.fibonacci))
	return mux
}

// getOnly answers 405 to any method but GET and HEAD.
func getOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, detail{"Method Not Allowed"})
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		log.Printf("encoding response: %v", err)
		status, body = http.StatusInternalServerError, []byte(`{"detail":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func serverError(w http.ResponseWriter, err error) {
	log.Printf("database: %v", err)
	writeJSON(w, http.StatusInternalServerError, detail{"Internal Server Error"})
}

func (s *server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": version})
}

func (s *server) types(w http.ResponseWriter, r *http.Request) {
	rows, err := s.db.Query(r.Context(), typesSQL)
	if err != nil {
		serverError(w, err)
		return
	}
	defer rows.Close()
	types := []ContactType{}
	for rows.Next() {
		var t ContactType
		if err := rows.Scan(&t.TypeID, &t.TypeName); err != nil {
			serverError(w, err)
			return
		}
		types = append(types, t)
	}
	if err := rows.Err(); err != nil {
		serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, types)
}

// contacts routes /contacts/fetch, /contacts/for and /contacts/{contact_id}.
func (s *server) contacts(w http.ResponseWriter, r *http.Request) {
	switch rest := strings.TrimPrefix(r.URL.Path, "/contacts/"); {
	case rest == "fetch", rest == "for":
		s.contactPage(w, r)
	case rest == "" || strings.Contains(rest, "/"):
		writeJSON(w, http.StatusNotFound, detail{"Not Found"})
	default:
		s.contact(w, r, rest)
	}
}

func (s *server) contactPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var errs []fieldError
	limit := intParam(q, "limit", 100, 1, 200, &errs)
	offset := intParam(q, "offset", 0, 0, 2147483647, &errs)
	starts, hasStarts := q.Get("starts"), q.Has("starts")
	if n := utf8.RuneCountInString(starts); hasStarts && (n < 1 || n > 100) {
		errs = append(errs, fieldError{[]string{"query", "starts"},
			"String should have 1 to 100 characters", "string_length"})
	}
	if errs != nil {
		writeJSON(w, http.StatusUnprocessableEntity, detail{errs})
		return
	}

	var rows pgx.Rows
	var err error
	if hasStarts {
		rows, err = s.db.Query(r.Context(), pageStartsSQL, limit, offset, escapeLike(starts))
	} else {
		rows, err = s.db.Query(r.Context(), pageSQL, limit, offset)
	}
	if err != nil {
		serverError(w, err)
		return
	}
	defer rows.Close()
	contacts := []Contact{}
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			serverError(w, err)
			return
		}
		contacts = append(contacts, c)
	}
	if err := rows.Err(); err != nil {
		serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, contacts)
}

func (s *server) contact(w http.ResponseWriter, r *http.Request, param string) {
	id, err := strconv.Atoi(param)
	if err != nil || id < 0 || id > 2147483647 {
		writeJSON(w, http.StatusUnprocessableEntity, detail{[]fieldError{{[]string{"path", "contact_id"},
			"Input should be an integer from 0 to 2147483647", "int_parsing"}}})
		return
	}
	c, err := scanContact(s.db.QueryRow(r.Context(), contactSQL, id))
	if errors.Is(err, pgx.ErrNoRows) {
		writeJSON(w, http.StatusNotFound, detail{"Contact not found"})
		return
	}
	if err != nil {
		serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *server) fibonacci(w http.ResponseWriter, r *http.Request) {
	param := strings.TrimPrefix(r.URL.Path, "/fibonacci/")
	if strings.Contains(param, "/") {
		writeJSON(w, http.StatusNotFound, detail{"Not Found"})
		return
	}
	n, err := strconv.Atoi(param)
	if err != nil || n < 0 || n > 40 {
		writeJSON(w, http.StatusUnprocessableEntity, detail{[]fieldError{{[]string{"path", "n"},
			"Input should be an integer from 0 to 40", "int_parsing"}}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"result": fib(n)})
}

func fib(n int) int {
	if n < 2 {
		return 1
	}
	return fib(n-1) + fib(n-2)
}

type scanner interface {
	Scan(dest ...any) error
}

func scanContact(row scanner) (Contact, error) {
	var c Contact
	// pgx decodes text[] into []string itself (lib/pq needs pq.Array).
	err := row.Scan(&c.ContactID, &c.FirstName, &c.LastName,
		&c.ContactType.TypeID, &c.ContactType.TypeName,
		&c.PhoneNumber, &c.Email)
	return c, err
}

// intParam reads an optional integer query parameter within [min, max].
func intParam(q url.Values, name string, def, min, max int, errs *[]fieldError) int {
	if !q.Has(name) {
		return def
	}
	n, err := strconv.Atoi(q.Get(name))
	switch {
	case err != nil:
		*errs = append(*errs, fieldError{[]string{"query", name},
			"Input should be a valid integer", "int_parsing"})
	case n < min || n > max:
		*errs = append(*errs, fieldError{[]string{"query", name},
			"Input should be from " + strconv.Itoa(min) + " to " + strconv.Itoa(max), "range"})
	}
	return n
}

// escapeLike makes %, _ and \ match themselves in a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
