//! `/version` and `/types`.

use testkit::http;
use testkit::{assert_body, assert_json_type};

use crate::{KIT, version_body};

#[test]
fn version_is_the_cargo_package_version() {
    let response = http::get(KIT.addr(), "/version");
    assert_body("GET /version", &response, &version_body());
    assert_json_type("GET /version", &response);
}

#[test]
fn types_lists_every_type_in_type_id_order() {
    let expected = KIT.fixture().snapshot.types_json();
    // The contract names the rows; the database must hold exactly them.
    assert_eq!(
        testkit::show(&expected),
        r#"[{"type_id":1,"type_name":"Relatives"},{"type_id":2,"type_name":"Friends"},{"type_id":3,"type_name":"Colleagues"}]"#
    );
    let response = http::get(KIT.addr(), "/types");
    assert_body("GET /types", &response, &expected);
    assert_json_type("GET /types", &response);
}
