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
pub struct TextArray<'a>(Array<'a>);

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
    write_contact_columns(
        out,
        row.try_get(0).map_err(bad_column)?,
        row.try_get(1).map_err(bad_column)?,
        row.try_get(2).map_err(bad_column)?,
        row.try_get(3).map_err(bad_column)?,
        row.try_get(4).map_err(bad_column)?,
        row.try_get::<_, TextArray>(5).map_err(bad_column)?,
        row.try_get::<_, TextArray>(6).map_err(bad_column)?,
    )
}

/// Appends a Contact from its column values: the writer behind
/// [`write_contact`], apart so that benchmarks and tests can feed it the
/// same values they give serde_json.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn write_contact_columns(
    out: &mut Vec<u8>,
    contact_id: i32,
    first_name: &str,
    last_name: &str,
    type_id: i32,
    type_name: Option<&str>,
    phone_numbers: impl TextColumn,
    emails: impl TextColumn,
) -> Result<(), ApiError> {
    out.extend_from_slice(br#"{"contact_id":"#);
    write_int(out, contact_id);
    out.extend_from_slice(br#","first_name":"#);
    write_str(out, first_name.as_bytes());
    out.extend_from_slice(br#","last_name":"#);
    write_str(out, last_name.as_bytes());
    out.extend_from_slice(br#","contact_type":{"type_id":"#);
    write_int(out, type_id);
    out.extend_from_slice(br#","type_name":"#);
    write_opt_str(out, type_name.map(str::as_bytes));
    out.extend_from_slice(br#"},"phone_number":"#);
    phone_numbers.write_json_array(out)?;
    out.extend_from_slice(br#","email":"#);
    emails.write_json_array(out)?;
    out.push(b'}');
    Ok(())
}

/// A column of text values that can write itself as a JSON array.
pub trait TextColumn {
    /// Appends the non-NULL values as a JSON array of strings.
    fn write_json_array(self, out: &mut Vec<u8>) -> Result<(), ApiError>;
}

impl TextColumn for TextArray<'_> {
    /// The SQL already leaves NULL elements out; one that got through would
    /// be skipped here too.
    fn write_json_array(self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        let mut values = self.0.values();
        let mut first = true;
        out.push(b'[');
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
}

impl TextColumn for &[&str] {
    fn write_json_array(self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        out.push(b'[');
        for (index, text) in self.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_str(out, text.as_bytes());
        }
        out.push(b']');
        Ok(())
    }
}

#[cold]
fn bad_column(error: impl std::fmt::Display) -> ApiError {
    eprintln!("bakeoff: unexpected column data: {error}");
    ApiError::Internal
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_types::ToSql;
    use proptest::prelude::*;

    /// The same Contact as serde_json writes it, from a derived struct.
    #[derive(serde::Serialize)]
    struct Contact<'a> {
        contact_id: i32,
        first_name: &'a str,
        last_name: &'a str,
        contact_type: ContactType<'a>,
        phone_number: &'a [&'a str],
        email: &'a [&'a str],
    }

    #[derive(serde::Serialize)]
    struct ContactType<'a> {
        type_id: i32,
        type_name: Option<&'a str>,
    }

    /// A text[] column as PostgreSQL sends it, NULLs included.
    fn wire_array(values: &[Option<&str>]) -> Vec<u8> {
        let mut raw = bytes::BytesMut::new();
        values.to_vec().to_sql(&Type::TEXT_ARRAY, &mut raw).unwrap();
        raw.to_vec()
    }

    proptest! {
        #[test]
        fn contact_bytes_match_serde_json(
            contact_id in any::<i32>(),
            first_name in any::<String>(),
            last_name in any::<String>(),
            type_id in any::<i32>(),
            type_name in any::<Option<String>>(),
            phones in proptest::collection::vec(any::<String>(), 0..3),
            emails in proptest::collection::vec(any::<String>(), 0..3),
        ) {
            let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
            let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
            let expected = serde_json::to_vec(&Contact {
                contact_id,
                first_name: &first_name,
                last_name: &last_name,
                contact_type: ContactType { type_id, type_name: type_name.as_deref() },
                phone_number: &phones,
                email: &emails,
            }).unwrap();
            let mut out = Vec::new();
            write_contact_columns(&mut out, contact_id, &first_name, &last_name, type_id,
                type_name.as_deref(), &phones[..], &emails[..]).unwrap();
            prop_assert_eq!(out, expected);
        }
    }

    #[test]
    fn wire_arrays_skip_nulls_and_keep_order() {
        let raw = wire_array(&[Some("+1-202"), None, Some("x\"y")]);
        let array = TextArray::from_sql(&Type::TEXT_ARRAY, &raw).unwrap();
        let mut out = Vec::new();
        array.write_json_array(&mut out).unwrap();
        assert_eq!(out, br#"["+1-202","x\"y"]"#);

        let empty = wire_array(&[]);
        let mut out = Vec::new();
        TextArray::from_sql(&Type::TEXT_ARRAY, &empty)
            .unwrap()
            .write_json_array(&mut out)
            .unwrap();
        assert_eq!(out, b"[]");
    }

    #[test]
    fn only_text_arrays_are_accepted() {
        assert!(<TextArray as FromSql>::accepts(&Type::TEXT_ARRAY));
        assert!(<TextArray as FromSql>::accepts(&Type::VARCHAR_ARRAY));
        assert!(!<TextArray as FromSql>::accepts(&Type::INT4_ARRAY));
        assert!(!<TextArray as FromSql>::accepts(&Type::TEXT));
    }
}
