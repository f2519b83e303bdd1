//! Routing plus parameter parsing for the request targets of the benchmark
//! workloads. `cargo bench --bench routing`.

use std::hint::black_box;

use bakeoff::params;
use bakeoff::router::{self, Route};
use criterion::{Criterion, criterion_group, criterion_main};
use hyper::Method;

fn route_and_parse(path: &str, query: Option<&str>) -> usize {
    match router::route(&Method::GET, path) {
        Ok(Route::ContactsFetch | Route::ContactsFor) => match params::page_query(query) {
            Ok(page) => page.limit as usize + page.starts.map_or(0, |starts| starts.len()),
            Err(_) => 0,
        },
        Ok(Route::Contact(raw)) => {
            params::path_integer(raw, "contact_id", 0, params::INT4_MAX).map_or(0, |id| id as usize)
        }
        Ok(_) => 1,
        Err(_) => 0,
    }
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_and_parse");
    for (name, path, query) in [
        ("version", "/version", None),
        ("types", "/types", None),
        ("fetch100", "/contacts/fetch", Some("limit=100")),
        ("fetch_starts", "/contacts/fetch", Some("limit=10&starts=m")),
        (
            "fetch_starts_encoded",
            "/contacts/fetch",
            Some("limit=10&starts=M%C3%BCller"),
        ),
        ("contact", "/contacts/4242", None),
        ("not_found", "/contacts/4242/x", None),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| route_and_parse(black_box(path), black_box(query)))
        });
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
