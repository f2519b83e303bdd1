-- /contacts/fetch and /contacts/for without `starts`: a page in contact_id order.
-- $1 = limit, $2 = offset.
--
-- The page is cut in a subquery, before the phones and emails are read: in
-- one flat SELECT the ARRAY subqueries would run for every row that OFFSET
-- skips as well (offset=5000: 147 pages/s flat, 4,100-4,300 cut first, in
-- pgbench; no difference at offset 0). Every contact has a type (type_id is
-- NOT NULL and a foreign key), so the join keeps every row of the page.
SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name,
       ARRAY(SELECT p.phone_number FROM contact_phones p
             WHERE p.contact_id = c.contact_id AND p.phone_number IS NOT NULL
             ORDER BY p.phone_id) AS phone_number,
       ARRAY(SELECT e.email_address FROM contact_emails e
             WHERE e.contact_id = c.contact_id AND e.email_address IS NOT NULL
             ORDER BY e.email_id) AS email
FROM (SELECT contact_id, first_name, last_name, type_id
      FROM contacts
      ORDER BY contact_id
      LIMIT $1 OFFSET $2) c
JOIN contact_types t ON t.type_id = c.type_id
ORDER BY c.contact_id
