//! Startup: the first stderr line, and the seeded database the other tests
//! rely on.

use testkit::http;
use testkit::model::Contact;

use crate::{KIT, VERSION};

#[test]
fn first_stderr_line_names_the_version_and_the_real_address() {
    let server = KIT.server();
    let prefix = format!("bakeoff {VERSION} listening on http://127.0.0.1:");
    assert!(
        server.first_line.starts_with(&prefix),
        "first stderr line {:?} does not start with {prefix:?}",
        server.first_line
    );
    assert_ne!(
        server.addr.port(),
        0,
        "the printed port must be the real one"
    );
    assert_eq!(http::get(server.addr, "/version").status, 200);
}

#[test]
fn seeded_database_has_the_shape_the_contract_describes() {
    let snap = &KIT.fixture().snapshot;
    let seeded: Vec<&Contact> = snap
        .contacts
        .iter()
        .filter(|contact| contact.contact_id < 900_000)
        .collect();
    assert_eq!(
        seeded
            .iter()
            .map(|contact| contact.contact_id)
            .collect::<Vec<_>>(),
        (1..=testkit::SEEDED_CONTACTS).collect::<Vec<_>>(),
        "`bakeoff seed --contacts 1000` must create contacts 1..=1000"
    );
    let count = seeded.len() as f64;
    let share = |predicate: &dyn Fn(&&Contact) -> bool| {
        seeded.iter().filter(|contact| predicate(contact)).count() as f64 / count
    };
    let phone = share(&|contact| !contact.phone_number.is_empty());
    let second_phone = share(&|contact| contact.phone_number.len() >= 2);
    let email = share(&|contact| !contact.email.is_empty());
    assert!(
        (0.30..=0.50).contains(&phone),
        "share with a phone: {phone}"
    );
    assert!(second_phone > 0.0, "nobody has a second phone");
    assert!(
        (0.60..=0.80).contains(&email),
        "share with an email: {email}"
    );
    assert!(snap.null_phone_rows > 0 && snap.null_email_rows > 0);
    for name in ["Müller", "O'Brien", "Nguyễn"] {
        assert!(
            seeded.iter().any(|contact| contact.last_name == name),
            "no {name}"
        );
    }
    for name in ["José", "Zoë"] {
        assert!(
            seeded.iter().any(|contact| contact.first_name == name),
            "no {name}"
        );
    }
}
