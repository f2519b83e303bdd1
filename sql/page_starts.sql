-- /contacts/fetch and /contacts/for with `starts`: a page of the contacts whose
-- lower(last_name) begins with lower($3). $1 = limit, $2 = offset, $3 = starts.
--
-- Why a range and not `LIKE $3 || '%'`: a prepared LIKE with a parameter cannot
-- use the prefix index once PostgreSQL switches to a generic plan (after five
-- runs), and LIKE would need `%`, `_` and `\` escaped. text_pattern_ops orders
-- by bytes, and UTF-8 byte order is code point order, so the strings that
-- begin with p are exactly those in [p, p || U+10FFFF x 100]: last_name holds
-- at most 100 characters, so whatever follows p is at most 100 characters,
-- each at most U+10FFFF. The predicate is exact and has no wildcards at all.
--
-- The server has this statement planned for its parameters on every call
-- (on connections with plan_cache_mode = force_custom_plan, or sent
-- unnamed): the best plan depends on how common the prefix is, and the plan
-- cache can settle on a generic plan that is slow for common prefixes (see
-- `Query::plans_per_call` in src/db.rs).
--
-- The page is cut before the phones and emails are read, as in page.sql.
SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name,
       ARRAY(SELECT p.phone_number FROM contact_phones p
             WHERE p.contact_id = c.contact_id AND p.phone_number IS NOT NULL
             ORDER BY p.phone_id) AS phone_number,
       ARRAY(SELECT e.email_address FROM contact_emails e
             WHERE e.contact_id = c.contact_id AND e.email_address IS NOT NULL
             ORDER BY e.email_id) AS email
FROM (SELECT contact_id, first_name, last_name, type_id
      FROM contacts
      WHERE lower(last_name) ~>=~ lower($3::text)
        AND lower(last_name) ~<=~ (lower($3::text) || repeat(chr(1114111), 100))
      ORDER BY contact_id
      LIMIT $1 OFFSET $2) c
JOIN contact_types t ON t.type_id = c.type_id
ORDER BY c.contact_id
