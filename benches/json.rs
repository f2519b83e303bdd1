//! The JSON writer against serde_json, on the same page of 100 contacts.
//!
//! serde_json is given its best case: a derived `Serialize` struct of
//! borrowed fields, written into a reused buffer. `cargo bench --bench json`.

use std::hint::black_box;

use bakeoff::rows::write_contact_columns;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Serialize;

#[derive(Serialize)]
struct Contact<'a> {
    contact_id: i32,
    first_name: &'a str,
    last_name: &'a str,
    contact_type: ContactType<'a>,
    phone_number: &'a [&'a str],
    email: &'a [&'a str],
}

#[derive(Serialize)]
struct ContactType<'a> {
    type_id: i32,
    type_name: Option<&'a str>,
}

const FIRST: [&str; 6] = ["José", "Zoë", "Olivia", "Łukasz", "Ngọc", "Mark"];
const LAST: [&str; 6] = [
    "Müller",
    "O'Brien",
    "Nguyễn",
    "Smith",
    "Dvořák",
    "Müller-Lüdenscheidt",
];
const TYPES: [&str; 3] = ["Relatives", "Friends", "Colleagues"];

/// A page shaped like the sample data: 40% with a phone, 8% with two,
/// 70% with an email.
fn page<'a>(emails: &'a [&'a str]) -> Vec<Contact<'a>> {
    const PHONES: [&str; 2] = ["+1-202-555-0147", "+1-303-555-0199"];
    (0..100)
        .map(|i| Contact {
            contact_id: 1000 + i as i32,
            first_name: FIRST[i % FIRST.len()],
            last_name: LAST[i % LAST.len()],
            contact_type: ContactType {
                type_id: (i % 3) as i32 + 1,
                type_name: Some(TYPES[i % 3]),
            },
            phone_number: match i % 25 {
                0 | 1 => &PHONES[..],
                2..=9 => &PHONES[..1],
                _ => &[],
            },
            email: if i % 10 < 7 {
                std::slice::from_ref(&emails[i])
            } else {
                &[]
            },
        })
        .collect()
}

fn json_writer(c: &mut Criterion) {
    let emails: Vec<String> = (0..100)
        .map(|i| format!("{}.{}{}@example.com", FIRST[i % 6], LAST[i % 6], 1000 + i).to_lowercase())
        .collect();
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    let contacts = page(&emails);
    let bytes = serde_json::to_vec(&contacts).unwrap().len() as u64;

    let mut group = c.benchmark_group("page_of_100_contacts");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("bakeoff_writer", |b| {
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            out.push(b'[');
            for (index, contact) in black_box(&contacts).iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_contact_columns(
                    &mut out,
                    contact.contact_id,
                    contact.first_name,
                    contact.last_name,
                    contact.contact_type.type_id,
                    contact.contact_type.type_name,
                    contact.phone_number,
                    contact.email,
                )
                .unwrap();
            }
            out.push(b']');
            black_box(out.len())
        })
    });
    group.bench_function("serde_json", |b| {
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&contacts)).unwrap();
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, json_writer);
criterion_main!(benches);
