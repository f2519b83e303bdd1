-- /contacts/{contact_id}: one contact with its phones and emails as arrays,
-- in phone_id / email_id order, NULL values left out.
SELECT c.contact_id, c.first_name, c.last_name, t.type_id, t.type_name,
       ARRAY(SELECT p.phone_number FROM contact_phones p
             WHERE p.contact_id = c.contact_id AND p.phone_number IS NOT NULL
             ORDER BY p.phone_id) AS phone_number,
       ARRAY(SELECT e.email_address FROM contact_emails e
             WHERE e.contact_id = c.contact_id AND e.email_address IS NOT NULL
             ORDER BY e.email_id) AS email
FROM contacts c
JOIN contact_types t ON t.type_id = c.type_id
WHERE c.contact_id = $1
