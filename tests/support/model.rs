//! The expected answers, computed independently of the server: the tables
//! are read with plain SQL of our own, and the JSON is written by serde_json
//! from structs whose field order is the contract's key order.

use serde::Serialize;
use std::collections::HashMap;

/// `{"type_id":1,"type_name":"Relatives"}`
#[derive(Serialize, Clone, Debug)]
pub struct ContactType {
    pub type_id: i32,
    pub type_name: Option<String>,
}

/// A Contact as the contract spells it, keys in this order.
#[derive(Serialize, Clone, Debug)]
pub struct Contact {
    pub contact_id: i32,
    pub first_name: String,
    pub last_name: String,
    pub contact_type: ContactType,
    pub phone_number: Vec<String>,
    pub email: Vec<String>,
}

/// The whole database as the tests see it (it does not change once the
/// fixture has been built).
pub struct Snapshot {
    pub types: Vec<ContactType>,
    /// In contact_id order.
    pub contacts: Vec<Contact>,
    /// PostgreSQL's `lower(last_name)`, parallel to `contacts`.
    pub lower_last_names: Vec<String>,
    /// How many phone and email rows hold NULL (the API leaves them out).
    pub null_phone_rows: i64,
    pub null_email_rows: i64,
}

impl Snapshot {
    pub fn load(client: &mut postgres::Client) -> Result<Snapshot, postgres::Error> {
        let types: Vec<ContactType> = client
            .query(
                "SELECT type_id, type_name FROM contact_types ORDER BY type_id",
                &[],
            )?
            .iter()
            .map(|r| ContactType {
                type_id: r.get(0),
                type_name: r.get(1),
            })
            .collect();
        let type_by_id: HashMap<i32, ContactType> =
            types.iter().map(|t| (t.type_id, t.clone())).collect();

        let mut phones: HashMap<i32, Vec<String>> = HashMap::new();
        let mut null_phone_rows = 0;
        for r in client.query(
            "SELECT contact_id, phone_number FROM contact_phones ORDER BY phone_id",
            &[],
        )? {
            match r.get::<_, Option<String>>(1) {
                Some(p) => phones.entry(r.get(0)).or_default().push(p),
                None => null_phone_rows += 1,
            }
        }
        let mut emails: HashMap<i32, Vec<String>> = HashMap::new();
        let mut null_email_rows = 0;
        for r in client.query(
            "SELECT contact_id, email_address FROM contact_emails ORDER BY email_id",
            &[],
        )? {
            match r.get::<_, Option<String>>(1) {
                Some(e) => emails.entry(r.get(0)).or_default().push(e),
                None => null_email_rows += 1,
            }
        }

        let mut contacts = Vec::new();
        let mut lower_last_names = Vec::new();
        for r in client.query(
            "SELECT contact_id, first_name, last_name, type_id, lower(last_name) \
             FROM contacts ORDER BY contact_id",
            &[],
        )? {
            let id: i32 = r.get(0);
            let type_id: i32 = r.get(3);
            contacts.push(Contact {
                contact_id: id,
                first_name: r.get(1),
                last_name: r.get(2),
                contact_type: type_by_id[&type_id].clone(),
                phone_number: phones.remove(&id).unwrap_or_default(),
                email: emails.remove(&id).unwrap_or_default(),
            });
            lower_last_names.push(r.get(4));
        }
        Ok(Snapshot {
            types,
            contacts,
            lower_last_names,
            null_phone_rows,
            null_email_rows,
        })
    }

    pub fn types_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.types).unwrap()
    }

    pub fn contact(&self, id: i64) -> Option<&Contact> {
        self.contacts.iter().find(|c| i64::from(c.contact_id) == id)
    }

    pub fn contact_json(&self, id: i64) -> Option<Vec<u8>> {
        self.contact(id).map(|c| serde_json::to_vec(c).unwrap())
    }

    /// The contacts whose lowered last name begins with `lowered_prefix`
    /// (already lowered by PostgreSQL), in contact_id order, then the page.
    pub fn page(&self, limit: usize, offset: u64, lowered_prefix: Option<&str>) -> Vec<&Contact> {
        self.contacts
            .iter()
            .zip(&self.lower_last_names)
            .filter(|(_, lower)| lowered_prefix.is_none_or(|p| lower.starts_with(p)))
            .map(|(c, _)| c)
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit)
            .collect()
    }
}

/// A contact the tests add (beyond the seeded ones) to exercise escaping,
/// wildcards and NULLs. Their ids are 900000 and up.
pub struct Extra {
    pub contact_id: i32,
    pub first_name: &'static str,
    pub last_name: String,
    pub type_id: i32,
    /// Inserted in this order (so phone_id order is this order); `None` is NULL.
    pub phones: Vec<Option<&'static str>>,
    pub emails: Vec<Option<&'static str>>,
}

pub fn extras() -> Vec<Extra> {
    let e = |contact_id, first_name, last_name: &str, type_id, phones, emails| Extra {
        contact_id,
        first_name,
        last_name: last_name.to_string(),
        type_id,
        phones,
        emails,
    };
    vec![
        e(
            900_001,
            "Quote\"Back\\slash/Solidus",
            "\\Backslash",
            1,
            vec![Some("+1 (555) 000-0001")],
            vec![Some("back\\slash@example.com")],
        ),
        e(
            900_002,
            "Tab\tNew\nline\rCR",
            "%Percent",
            2,
            vec![None, Some("555-0002"), None, Some("555-0003")],
            vec![None],
        ),
        e(
            900_003,
            "Ctl\u{1}\u{8}\u{b}\u{c}\u{1b}\u{1f}\u{7f}End",
            "_Underscore",
            3,
            vec![],
            vec![None, Some("under@example.com"), None],
        ),
        e(
            900_004,
            "Line\u{2028}Para\u{2029}Emoji😀",
            "Mo_re",
            1,
            vec![None],
            vec![],
        ),
        e(900_005, "Pct", "Mo%re", 2, vec![Some("5")], vec![Some("x")]),
        e(900_006, "Bsl", "Mo\\re", 3, vec![], vec![]),
        e(
            900_007,
            "Zoë",
            "ÜBERMANN",
            1,
            vec![Some("+49 30 1234")],
            vec![Some("zoë@example.com")],
        ),
        e(900_008, "Long", &"é".repeat(100), 2, vec![], vec![]),
        e(900_009, "Wide", &"😀".repeat(100), 3, vec![], vec![]),
        e(
            900_010,
            "Html",
            "</script>&<>'=\"",
            1,
            vec![],
            vec![Some("<a@b>")],
        ),
        e(900_011, "Dotted", "İstanbul", 2, vec![], vec![]),
        e(900_012, "Quoted", "\"Quoted\"", 3, vec![], vec![]),
        e(900_013, "Spaced", " Leading space", 1, vec![], vec![]),
    ]
}

/// Inserts [`extras`] in one transaction.
pub fn insert_extras(client: &mut postgres::Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    for x in extras() {
        tx.execute(
            "INSERT INTO contacts (contact_id, first_name, last_name, type_id) \
             VALUES ($1, $2, $3, $4)",
            &[&x.contact_id, &x.first_name, &x.last_name, &x.type_id],
        )?;
        for p in &x.phones {
            tx.execute(
                "INSERT INTO contact_phones (phone_number, contact_id) VALUES ($1, $2)",
                &[p, &x.contact_id],
            )?;
        }
        for m in &x.emails {
            tx.execute(
                "INSERT INTO contact_emails (email_address, contact_id) VALUES ($1, $2)",
                &[m, &x.contact_id],
            )?;
        }
    }
    tx.commit()
}

/// fib(0) = fib(1) = 1, iteratively.
pub fn fib(n: u32) -> u64 {
    let (mut a, mut b) = (1u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}
