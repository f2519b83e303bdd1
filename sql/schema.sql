-- The study's schema (../shared/API.md), plus the indexes a real deployment has.
-- Idempotent: drops and recreates everything, so `bakeoff seed` can be rerun.
DROP TABLE IF EXISTS contact_emails, contact_phones, contacts, contact_types CASCADE;

CREATE TABLE contact_types (
    type_id   SERIAL PRIMARY KEY,
    type_name VARCHAR(30)
);

CREATE TABLE contacts (
    contact_id SERIAL PRIMARY KEY,
    first_name VARCHAR(100) NOT NULL,
    last_name  VARCHAR(100) NOT NULL,
    type_id    INT NOT NULL REFERENCES contact_types (type_id)
);

CREATE TABLE contact_phones (
    phone_id     SERIAL PRIMARY KEY,
    phone_number VARCHAR(30),
    contact_id   INT NOT NULL REFERENCES contacts ON DELETE CASCADE
);

CREATE TABLE contact_emails (
    email_id      SERIAL PRIMARY KEY,
    email_address VARCHAR(256),
    contact_id    INT NOT NULL REFERENCES contacts ON DELETE CASCADE
);

CREATE INDEX contact_phones_contact_id ON contact_phones (contact_id);
CREATE INDEX contact_emails_contact_id ON contact_emails (contact_id);
CREATE INDEX contacts_lower_last_name ON contacts (lower(last_name) text_pattern_ops);

INSERT INTO contact_types (type_id, type_name)
VALUES (1, 'Relatives'), (2, 'Friends'), (3, 'Colleagues');
SELECT setval('contact_types_type_id_seq', 3);
