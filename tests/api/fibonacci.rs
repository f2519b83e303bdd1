//! `/fibonacci/{n}`: the values for 0..=40 and the 422s of `n`.

use testkit::http::Conn;
use testkit::model;
use testkit::{assert_422, assert_body, assert_json_type};

use crate::{KIT, fib_body};

#[test]
fn fibonacci_is_fib_of_n_with_fib_0_and_fib_1_equal_to_1_for_n_from_0_to_40() {
    assert_eq!(model::fib(0), 1);
    assert_eq!(model::fib(1), 1);
    assert_eq!(model::fib(2), 2);
    assert_eq!(model::fib(40), 165_580_141);
    // A server of its own: the naive fib(40) occupies a worker thread for
    // a while, and the shared server's other clients should not wait on it.
    let server = KIT.start_server(&KIT.fixture().database_url, &[]);
    let mut conn = Conn::connect(server.addr);
    for index in 0..=40 {
        let target = format!("/fibonacci/{index}");
        let response = conn.get(&target);
        assert_body(&target, &response, &fib_body(index));
        assert_json_type(&target, &response);
    }
}

#[test]
fn fibonacci_accepts_minus_zero_and_leading_zeros() {
    let mut conn = Conn::connect(KIT.addr());
    for (target, index) in [
        ("/fibonacci/-0", 0),
        ("/fibonacci/007", 7),
        ("/fibonacci/00", 0),
    ] {
        assert_body(target, &conn.get(target), &fib_body(index));
    }
}

#[test]
fn fibonacci_n_not_an_integer_from_0_to_40_is_422_path_n() {
    let mut conn = Conn::connect(KIT.addr());
    for invalid in [
        "41",
        "-1",
        "100",
        "2147483648",
        "18446744073709551617",
        "abc",
        "+5",
        "5.0",
        "1e1",
        "%205",
        "5_0",
    ] {
        let target = format!("/fibonacci/{invalid}");
        let response = conn.get(&target);
        assert_422(&target, &response, &[["path", "n"]]);
        assert_json_type(&target, &response);
    }
}
