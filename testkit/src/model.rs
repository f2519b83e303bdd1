//! The expected answers, computed independently of the server: the tables
//! are read with plain SQL of our own, and the JSON is written by serde_json
//! from structs whose field order is the contract's key order.

use serde::Serialize;
use std::collections::HashMap;

/// `{"type_id":1,"type_name":"Relatives"}`
#[derive(Serialize, Clone, Debug)]
pub struct ContactType {
    /// `contact_types.type_id`.
    pub type_id: i32,
    /// `contact_types.type_name`: `null` in JSON when NULL.
    pub type_name: Option<String>,
}

/// A Contact as the contract spells it, keys in this order.
#[derive(Serialize, Clone, Debug)]
pub struct Contact {
    /// `contacts.contact_id`.
    pub contact_id: i32,
    /// `contacts.first_name`.
    pub first_name: String,
    /// `contacts.last_name`.
    pub last_name: String,
    /// The contact's type, nested.
    pub contact_type: ContactType,
    /// The non-NULL phone numbers, in phone_id order.
    pub phone_number: Vec<String>,
    /// The non-NULL email addresses, in email_id order.
    pub email: Vec<String>,
}

/// The whole database as the tests see it (it does not change once the
/// fixture has been built).
pub struct Snapshot {
    /// Every contact type, in type_id order.
    pub types: Vec<ContactType>,
    /// In contact_id order.
    pub contacts: Vec<Contact>,
    /// PostgreSQL's `lower(last_name)`, parallel to `contacts`.
    pub lower_last_names: Vec<String>,
    /// How many phone and email rows hold NULL (the API leaves them out).
    pub null_phone_rows: i64,
    /// How many email rows hold NULL.
    pub null_email_rows: i64,
}

impl Snapshot {
    /// Reads every table with plain SQL of our own.
    pub fn load(client: &mut postgres::Client) -> Result<Snapshot, postgres::Error> {
        let types: Vec<ContactType> = client
            .query(
                "SELECT type_id, type_name FROM contact_types ORDER BY type_id",
                &[],
            )?
            .iter()
            .map(|row| ContactType {
                type_id: row.get(0),
                type_name: row.get(1),
            })
            .collect();
        let type_by_id: HashMap<i32, ContactType> = types
            .iter()
            .map(|kind| (kind.type_id, kind.clone()))
            .collect();

        let mut phones: HashMap<i32, Vec<String>> = HashMap::new();
        let mut null_phone_rows = 0;
        for row in client.query(
            "SELECT contact_id, phone_number FROM contact_phones ORDER BY phone_id",
            &[],
        )? {
            match row.get::<_, Option<String>>(1) {
                Some(phone) => phones.entry(row.get(0)).or_default().push(phone),
                None => null_phone_rows += 1,
            }
        }
        let mut emails: HashMap<i32, Vec<String>> = HashMap::new();
        let mut null_email_rows = 0;
        for row in client.query(
            "SELECT contact_id, email_address FROM contact_emails ORDER BY email_id",
            &[],
        )? {
            match row.get::<_, Option<String>>(1) {
                Some(address) => emails.entry(row.get(0)).or_default().push(address),
                None => null_email_rows += 1,
            }
        }

        let mut contacts = Vec::new();
        let mut lower_last_names = Vec::new();
        for row in client.query(
            "SELECT contact_id, first_name, last_name, type_id, lower(last_name) \
             FROM contacts ORDER BY contact_id",
            &[],
        )? {
            let id: i32 = row.get(0);
            let type_id: i32 = row.get(3);
            contacts.push(Contact {
                contact_id: id,
                first_name: row.get(1),
                last_name: row.get(2),
                contact_type: type_by_id[&type_id].clone(),
                phone_number: phones.remove(&id).unwrap_or_default(),
                email: emails.remove(&id).unwrap_or_default(),
            });
            lower_last_names.push(row.get(4));
        }
        Ok(Snapshot {
            types,
            contacts,
            lower_last_names,
            null_phone_rows,
            null_email_rows,
        })
    }

    /// The expected body of `/types`.
    pub fn types_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.types).unwrap()
    }

    /// The contact with `contact_id` `id`, if there is one.
    pub fn contact(&self, id: i64) -> Option<&Contact> {
        self.contacts
            .iter()
            .find(|candidate| i64::from(candidate.contact_id) == id)
    }

    /// The expected body of `/contacts/{id}`, if the contact exists.
    pub fn contact_json(&self, id: i64) -> Option<Vec<u8>> {
        self.contact(id)
            .map(|found| serde_json::to_vec(found).unwrap())
    }

    /// The contacts whose lowered last name begins with `lowered_prefix`
    /// (already lowered by PostgreSQL), in contact_id order, then the page.
    pub fn page(&self, limit: usize, offset: u64, lowered_prefix: Option<&str>) -> Vec<&Contact> {
        self.contacts
            .iter()
            .zip(&self.lower_last_names)
            .filter(|(_, lower)| lowered_prefix.is_none_or(|prefix| lower.starts_with(prefix)))
            .map(|(contact, _)| contact)
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit)
            .collect()
    }
}

/// A contact the tests add (beyond the seeded ones) to exercise escaping,
/// wildcards and NULLs. Their ids are 900000 and up.
pub struct Extra {
    /// `contacts.contact_id`: 900001 and up.
    pub contact_id: i32,
    /// `contacts.first_name`.
    pub first_name: &'static str,
    /// `contacts.last_name`.
    pub last_name: String,
    /// `contacts.type_id`.
    pub type_id: i32,
    /// Inserted in this order (so phone_id order is this order); `None` is NULL.
    pub phones: Vec<Option<&'static str>>,
    /// Likewise for the email rows.
    pub emails: Vec<Option<&'static str>>,
}

/// The contacts the fixture adds to the seeded ones.
pub fn extras() -> Vec<Extra> {
    let extra = |contact_id, first_name, last_name: &str, type_id, phones, emails| Extra {
        contact_id,
        first_name,
        last_name: last_name.to_string(),
        type_id,
        phones,
        emails,
    };
    vec![
        extra(
            900_001,
            "Quote\"Back\\slash/Solidus",
            "\\Backslash",
            1,
            vec![Some("+1 (555) 000-0001")],
            vec![Some("back\\slash@example.com")],
        ),
        extra(
            900_002,
            "Tab\tNew\nline\rCR",
            "%Percent",
            2,
            vec![None, Some("555-0002"), None, Some("555-0003")],
            vec![None],
        ),
        extra(
            900_003,
            "Ctl\u{1}\u{8}\u{b}\u{c}\u{1b}\u{1f}\u{7f}End",
            "_Underscore",
            3,
            vec![],
            vec![None, Some("under@example.com"), None],
        ),
        extra(
            900_004,
            "Line\u{2028}Para\u{2029}Emoji😀",
            "Mo_re",
            1,
            vec![None],
            vec![],
        ),
        extra(900_005, "Pct", "Mo%re", 2, vec![Some("5")], vec![Some("x")]),
        extra(900_006, "Bsl", "Mo\\re", 3, vec![], vec![]),
        extra(
            900_007,
            "Zoë",
            "ÜBERMANN",
            1,
            vec![Some("+49 30 1234")],
            vec![Some("zoë@example.com")],
        ),
        extra(900_008, "Long", &"é".repeat(100), 2, vec![], vec![]),
        extra(900_009, "Wide", &"😀".repeat(100), 3, vec![], vec![]),
        extra(
            900_010,
            "Html",
            "</script>&<>'=\"",
            1,
            vec![],
            vec![Some("<a@b>")],
        ),
        extra(900_011, "Dotted", "İstanbul", 2, vec![], vec![]),
        extra(900_012, "Quoted", "\"Quoted\"", 3, vec![], vec![]),
        extra(900_013, "Spaced", " Leading space", 1, vec![], vec![]),
    ]
}

/// Inserts [`extras`] in one transaction.
pub fn insert_extras(client: &mut postgres::Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    for extra in extras() {
        tx.execute(
            "INSERT INTO contacts (contact_id, first_name, last_name, type_id) \
             VALUES ($1, $2, $3, $4)",
            &[
                &extra.contact_id,
                &extra.first_name,
                &extra.last_name,
                &extra.type_id,
            ],
        )?;
        for phone in &extra.phones {
            tx.execute(
                "INSERT INTO contact_phones (phone_number, contact_id) VALUES ($1, $2)",
                &[phone, &extra.contact_id],
            )?;
        }
        for email in &extra.emails {
            tx.execute(
                "INSERT INTO contact_emails (email_address, contact_id) VALUES ($1, $2)",
                &[email, &extra.contact_id],
            )?;
        }
    }
    tx.commit()
}

/// fib(0) = fib(1) = 1, iteratively.
pub fn fib(index: u32) -> u64 {
    let (mut current, mut next) = (1u64, 1u64);
    for _ in 0..index {
        (current, next) = (next, current + next);
    }
    current
}
