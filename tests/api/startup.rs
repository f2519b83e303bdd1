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

/// The scheduling policies (`/proc/PID/task/TID/stat`, field 41) of the
/// threads named `bakeoff-N`: the serving threads of the per-core runtimes.
fn serving_thread_policies(pid: u32) -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        // `bakeoff-N` only: `/fibonacci`'s threads are `bakeoff-compute-N`.
        let is_serving = comm
            .trim()
            .strip_prefix("bakeoff-")
            .is_some_and(|index| index.parse::<usize>().is_ok());
        if !is_serving {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap();
        // Fields after the command (which may hold spaces): state is field 3.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let policy = after.split_whitespace().nth(41 - 3).unwrap();
        policies.push(policy.parse().unwrap());
    }
    policies
}

/// The serving threads run under SCHED_BATCH by default (3 in Linux's
/// numbering) and under the normal policy (0) with `SCHEDULING=normal`.
#[test]
fn serving_threads_run_under_sched_batch_unless_told_otherwise() {
    let url = &KIT.fixture().database_url;
    for (setting, expected) in [(None, 3), (Some("normal"), 0)] {
        let env: Vec<(&str, &str)> = setting
            .map(|value| ("SCHEDULING", value))
            .into_iter()
            .collect();
        let server = KIT.start_server(url, &[&[("WORKER_THREADS", "2")], &env[..]].concat());
        assert_eq!(http::get(server.addr, "/version").status, 200);
        let policies = serving_thread_policies(server.pid());
        assert_eq!(policies, vec![expected; 2], "SCHEDULING={setting:?}");
    }
}
