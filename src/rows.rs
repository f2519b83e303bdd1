//! PostgreSQL rows to JSON, column by column, from the row's own bytes.
//!
//! Column order is that of `sql/contact.sql`, `sql/page.sql` and
//! `sql/page_starts.sql`: contact_id, first_name, last_name, type_id,
//! type_name, phone_number (text[]), email (text[]).

use std::error::Error;

use fallible_iterator::FallibleIterator;
use postgres_protocol::types::{Array, array_from_sql};
use postgres_types::{FromSql, Kind, Type};
use tokio_postgres::Row;

use crate::error::ApiError;
use crate::json::{write_int, write_opt_str, write_str};

/// Bytes a contact takes in JSON, near the high end of the sample data; used
/// to size output buffers up front so they rarely grow.
pub const CONTACT_JSON_SIZE: usize = 256;

/// Bytes a contact type takes in JSON.
pub const TYPE_JSON_SIZE: usize = 48;

/// A `text[]` or `varchar[]` column read in place: its elements are
/// borrowed from the row, where `Vec<&str>` would allocate per row.
struct TextArray<'a>(Array<'a>);

impl<'a> FromSql<'a> for TextArray<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(TextArray(array_from_sql(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.kind(), Kind::Array(member) if *member == Type::TEXT || *member == Type::VARCHAR)
    }
}

/// Appends one row of `sql/types.sql` as `{"type_id":1,"type_name":"Relatives"}`.
#[inline]
pub fn write_type(out: &mut Vec<u8>, row: &Row) -> Result<(), ApiError> {
    out.extend_from_slice(br#"{"type_id":"#);
    write_int(out, row.try_get::<_, i32>(0).map_err(bad_column)?);
    out.extend_from_slice(br#","type_name":"#);
    write_opt_str(
        out,
        row.try_get::<_, Option<&str>>(1)
            .map_err(bad_column)?
            .map(str::as_bytes),
    );
    out.push(b'}');
    Ok(())
}

/// Appends one contact row as the contract's Contact object.
#[inline]
pub fn write_contact(out: &mut Vec<u8>, row: &Row) -> Result<(), ApiError> {
    out.extend_from_slice(br#"{"contact_id":"#);
    write_int(out, row.try_get::<_, i32>(0).map_err(bad_column)?);
    out.extend_from_slice(br#","first_name":"#);
    write_str(
        out,
        row.try_get::<_, &str>(1).map_err(bad_column)?.as_bytes(),
    );
    out.extend_from_slice(br#","last_name":"#);
    write_str(
        out,
        row.try_get::<_, &str>(2).map_err(bad_column)?.as_bytes(),
    );
    out.extend_from_slice(br#","contact_type":{"type_id":"#);
    write_int(out, row.try_get::<_, i32>(3).map_err(bad_column)?);
    out.extend_from_slice(br#","type_name":"#);
    write_opt_str(
        out,
        row.try_get::<_, Option<&str>>(4)
            .map_err(bad_column)?
            .map(str::as_bytes),
    );
    out.extend_from_slice(br#"},"phone_number":"#);
    write_text_array(out, row.try_get::<_, TextArray>(5).map_err(bad_column)?)?;
    out.extend_from_slice(br#","email":"#);
    write_text_array(out, row.try_get::<_, TextArray>(6).map_err(bad_column)?)?;
    out.push(b'}');
    Ok(())
}

/// Appends a text array as a JSON array of strings. The SQL already leaves
/// NULL elements out; one that got through would be skipped here too.
fn write_text_array(out: &mut Vec<u8>, array: TextArray) -> Result<(), ApiError> {
    out.push(b'[');
    let mut values = array.0.values();
    let mut first = true;
    // The element bytes are PostgreSQL text in the UTF-8 client encoding
    // that tokio-postgres always asks for, so they are written unchecked.
    while let Some(value) = values.next().map_err(bad_column)? {
        if let Some(text) = value {
            if !first {
                out.push(b',');
            }
            write_str(out, text);
            first = false;
        }
    }
    out.push(b']');
    Ok(())
}

/// A column that does not decode as the SQL promises: a schema that differs
/// from `sql/schema.sql`, so a bug to log, not the client's fault.
#[cold]
fn bad_column(error: impl std::fmt::Display) -> ApiError {
    eprintln!("bakeoff: unexpected column data: {error}");
    ApiError::Internal
}
