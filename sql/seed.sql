-- Deterministic sample data for `bakeoff seed --contacts N` ($1 = N).
-- Every value is a pure function of the contact's number i, so the same N
-- gives the same rows, byte for byte, on every machine and every run.
-- h(i, salt) = (i * 2654435761 + salt) mod 2^32 is Knuth's multiplicative hash;
-- its residues mod 100 drive the proportions of the contract: about 40% of
-- contacts have a phone, 20% of those a second one, about 70% an email.
-- A few phone rows and email rows hold NULL, which the API leaves out.
-- Statements are separated by a line ending in ';' (the seeder splits there).

TRUNCATE contact_emails, contact_phones, contacts RESTART IDENTITY;

INSERT INTO contacts (contact_id, first_name, last_name, type_id)
SELECT i,
       (ARRAY['José', 'Zoë', 'Anna', 'Liam', 'Olivia', 'Noah', 'Emma', 'Mateo',
              'Søren', 'Chloé', 'Björn', 'Ana', 'Mia', 'Lucas', 'Amélie', 'Ivan',
              'Sofía', 'Łukasz', 'Hana', 'Kenji', 'Aoife', 'Raúl', 'Ngọc', 'Mark',
              'Sarah', 'David', 'Fatima', 'Omar', 'Priya', 'Chen', 'Yuki', 'Grace'])
           [1 + ((i * 2654435761 + 11) % 4294967296) % 32],
       (ARRAY['Müller', 'O''Brien', 'Nguyễn', 'García', 'Smith', 'Johnson', 'Martin',
              'Møller', 'Dvořák', 'Łukasiewicz', 'Schröder', 'Brown', 'Miller', 'Moore',
              'Müller-Lüdenscheidt', 'Martínez', 'Wilson', 'Taylor', 'Anderson', 'Zhang',
              'Kowalski', 'Novák', 'Rossi', 'Morgan', 'Mitchell', 'Murphy', 'Lee', 'Walker',
              'Young', 'King', 'Wright', 'Lopez', 'Hill', 'Scott', 'Green', 'Adams',
              'Baker', 'Nelson', 'Carter', 'Roberts'])
           [1 + ((i * 2654435761 + 23) % 4294967296 / 64) % 40],
       1 + ((i * 2654435761 + 37) % 4294967296 / 128) % 3
FROM generate_series(1, $1::int) AS i;

INSERT INTO contact_phones (phone_number, contact_id)
SELECT '+1-202-555-' || lpad(((i * 7919) % 10000)::text, 4, '0'), i
FROM generate_series(1, $1::int) AS i
WHERE (i * 2654435761 + 41) % 4294967296 % 100 < 40;

INSERT INTO contact_phones (phone_number, contact_id)
SELECT '+1-303-555-' || lpad(((i * 104729) % 10000)::text, 4, '0'), i
FROM generate_series(1, $1::int) AS i
WHERE (i * 2654435761 + 41) % 4294967296 % 100 < 8;

INSERT INTO contact_phones (phone_number, contact_id)
SELECT NULL, i
FROM generate_series(1, $1::int) AS i
WHERE (i * 2654435761 + 53) % 4294967296 % 100 = 0;

INSERT INTO contact_emails (email_address, contact_id)
SELECT translate(lower(c.first_name || '.' || c.last_name),
                 'áéëíóöúüøçñọễęłřś''', 'aeeioouuocnoeelrs')
       || c.contact_id || '@example.com',
       c.contact_id
FROM contacts c
WHERE (c.contact_id * 2654435761 + 67) % 4294967296 % 100 < 70
ORDER BY c.contact_id;

INSERT INTO contact_emails (email_address, contact_id)
SELECT NULL, i
FROM generate_series(1, $1::int) AS i
WHERE (i * 2654435761 + 71) % 4294967296 % 100 = 0;

SELECT setval('contacts_contact_id_seq', greatest((SELECT max(contact_id) FROM contacts), 1));

ANALYZE contact_types, contacts, contact_phones, contact_emails;
