-- The role the server runs as in any real deployment: it can log in, read
-- the API's four tables, and nothing else.
--
-- Run it as the tables' owner (or a superuser), in the API's database, after
-- `bakeoff seed` (which drops and recreates the tables, and with them their
-- grants), and again after every seed:
--
--     psql "$ADMIN_URL" -v ON_ERROR_STOP=1 -f sql/roles.sql
--
-- Idempotent. It sets no password; give one, then put it in DATABASE_URL:
--
--     ALTER ROLE bakeoff_reader PASSWORD '...';   -- or psql's \password bakeoff_reader

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bakeoff_reader') THEN
        CREATE ROLE bakeoff_reader LOGIN;
    END IF;
END
$$;

-- No attribute beyond LOGIN, whatever an earlier hand gave it.
ALTER ROLE bakeoff_reader
    LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;

-- No membership in another role.
DO $$
DECLARE
    membership record;
BEGIN
    FOR membership IN
        SELECT roleid::regrole AS granted FROM pg_auth_members
        WHERE member = 'bakeoff_reader'::regrole
    LOOP
        EXECUTE format('REVOKE %s FROM bakeoff_reader', membership.granted);
    END LOOP;
END
$$;

-- No privilege left over from before, then exactly what it needs.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM bakeoff_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM bakeoff_reader;
REVOKE ALL ON SCHEMA public FROM bakeoff_reader;
GRANT USAGE ON SCHEMA public TO bakeoff_reader;
GRANT SELECT ON contact_types, contacts, contact_phones, contact_emails TO bakeoff_reader;

-- Every role (PUBLIC) may by default create temporary tables in a database
-- and, before PostgreSQL 15, objects in schema public: not in this one.
-- (The tables' owner and superusers keep their rights.)
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;

-- Belt and braces: its sessions are read-only, and bounded. The server sends
-- its own statement timeout as a startup option (--statement-timeout-ms);
-- this one applies where it cannot (--statements unnamed behind a
-- transaction pooler, which refuses startup options).
ALTER ROLE bakeoff_reader SET default_transaction_read_only = on;
ALTER ROLE bakeoff_reader SET statement_timeout = '5s';
ALTER ROLE bakeoff_reader SET idle_in_transaction_session_timeout = '10s';
