-- /types: every contact type, in type_id order.
SELECT type_id, type_name FROM contact_types ORDER BY type_id
