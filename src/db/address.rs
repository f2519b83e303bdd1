//! The database's address: the connection string (`DATABASE_URL`, a URL or
//! libpq's key=value pairs) parsed into a [`Connector`], with what every
//! connection of the server needs added. Several hosts are written as libpq
//! writes them; `target_session_attrs` is taken out of the string, for
//! `session_target.rs` to check, since tokio-postgres refuses half its
//! values. Described for the start line without the user or the password.

use std::time::Duration;

use super::connect::Connector;
use super::session_target::SessionTarget;

/// Parses the connection string, adding what every connection of the
/// server needs: a statement timeout, a connect timeout, an application
/// name, TCP keepalives and a TCP user timeout. Several hosts are libpq's
/// (`host=a,b port=5432,5433`, `postgresql://a:5432,b:5433/db`), and so is
/// `target_session_attrs`, all six of its values (see
/// `db/session_target.rs`). An error names the variable, never the string
/// (it may hold a password).
pub fn postgres_config(database_url: &str, connect_timeout: Duration) -> Result<Connector, String> {
    let (rest, target) = split_session_target(database_url);
    let target = match target {
        None => SessionTarget::Any,
        Some(word) => SessionTarget::parse(&word).ok_or_else(|| {
            format!(
                "invalid DATABASE_URL: target_session_attrs must be any, read-write, read-only, \
                 primary, standby or prefer-standby, not {word:?}"
            )
        })?,
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|error| format!("invalid DATABASE_URL: {error}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("bakeoff");
    }
    // tokio-postgres has no query timeout and leaves the kernel's keepalive
    // at two hours: a database host that vanishes without closing its
    // sockets (power loss, a network partition) would hold a connection, and
    // every request queued on it, for that long. The kernel notices instead:
    // an idle connection is probed after 10 s (then every 5 s, 3 times), and
    // data left unacknowledged for 30 s ends it. No cost per request;
    // settings given in the connection string win.
    if config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
        config.keepalives_idle(KEEPALIVES_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(KEEPALIVES_INTERVAL);
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(KEEPALIVES_RETRIES);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    Ok(Connector {
        config,
        target,
        batch_syncs: false,
    })
}

/// The connection string without its `target_session_attrs`, and that
/// value: tokio-postgres refuses the values it does not know (`primary`,
/// `standby`, `prefer-standby`), so the server takes the key out and checks
/// sessions itself. Both of libpq's forms: a URL's query parameter, and a
/// key=value pair (quoted or not). Anything malformed is left as it is, for
/// tokio-postgres's parser to refuse.
fn split_session_target(database_url: &str) -> (String, Option<String>) {
    const KEY: &str = "target_session_attrs";
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let Some((base, query)) = database_url.split_once('?') else {
            return (database_url.to_owned(), None);
        };
        let mut value = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (key, word) = pair.split_once('=').unwrap_or((pair, ""));
                let ours = crate::params::decoded_eq(key, KEY);
                if ours {
                    value = Some(percent_decoded(word));
                }
                !ours
            })
            .collect();
        return match kept.is_empty() {
            true => (base.to_owned(), value),
            false => (format!("{base}?{}", kept.join("&")), value),
        };
    }
    let mut rest = String::with_capacity(database_url.len());
    let mut value = None;
    let mut pairs = KeywordPairs {
        text: database_url,
        at: 0,
    };
    while let Some(pair) = pairs.next_pair() {
        match pair {
            Some((key, word, _)) if key == KEY => value = Some(word),
            Some((_, _, span)) => {
                rest.push_str(&database_url[span.0..span.1]);
                rest.push(' ');
            }
            None => return (database_url.to_owned(), None),
        }
    }
    (rest.trim_end().to_owned(), value)
}

/// A URL query value, percent-decoded (invalid escapes kept as they are).
fn percent_decoded(word: &str) -> String {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|digit| (*digit as char).to_digit(16))
        };
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's key=value syntax, pair by pair: `key = value`, the value bare or
/// in single quotes, a backslash escaping the next character.
struct KeywordPairs<'a> {
    /// The whole connection string.
    text: &'a str,
    /// Byte offset of the next pair.
    at: usize,
}

impl KeywordPairs<'_> {
    /// `None` at the end; `Some(None)` for a malformed pair; otherwise the
    /// key, the unescaped value and the byte span of the whole pair.
    #[allow(clippy::type_complexity)]
    fn next_pair(&mut self) -> Option<Option<(String, String, (usize, usize))>> {
        let text = self.text;
        let skip_space = |mut at: usize| {
            while text[at..].starts_with(|c: char| c.is_whitespace()) {
                at += text[at..].chars().next().map_or(1, char::len_utf8);
            }
            at
        };
        let start = skip_space(self.at);
        if start >= text.len() {
            return None;
        }
        let key_end = text[start..]
            .find(|c: char| c.is_whitespace() || c == '=')
            .map_or(text.len(), |offset| start + offset);
        let key = text[start..key_end].to_owned();
        let equals = skip_space(key_end);
        if !text[equals..].starts_with('=') {
            return Some(None);
        }
        let mut at = skip_space(equals + 1);
        let mut value = String::new();
        let mut chars = text[at..].chars();
        let quoted = text[at..].starts_with('\'');
        if quoted {
            chars.next();
            at += 1;
        }
        let mut closed = !quoted;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    at += 1;
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                        at += escaped.len_utf8();
                    }
                    continue;
                }
                '\'' if quoted => {
                    at += 1;
                    closed = true;
                    break;
                }
                c if !quoted && c.is_whitespace() => break,
                c => value.push(c),
            }
            at += c.len_utf8();
        }
        if !closed {
            return Some(None);
        }
        self.at = at;
        Some(Some((key, value, (start, at))))
    }
}

/// tokio-postgres's default keepalive idle time, two hours.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// Idle seconds before the first keepalive probe on a database connection.
pub const KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
/// Seconds between keepalive probes.
pub const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the kernel closes the connection.
pub const KEEPALIVES_RETRIES: u32 = 3;
/// How long data sent to the database may stay unacknowledged by its host.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// `host:port,host:port/dbname` of a connection string, with its
/// `target_session_attrs` when not `any`, for logs: never the user or the
/// password.
pub fn describe_database(connector: &Connector) -> String {
    use tokio_postgres::config::Host;
    let config = &connector.config;
    let ports = config.get_ports();
    let hosts: Vec<String> = match config.get_hosts() {
        [] => vec!["localhost".to_owned()],
        hosts => hosts
            .iter()
            .map(|host| match host {
                Host::Tcp(host) => host.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect(),
    };
    let hosts: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let port = ports.get(index).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let dbname = config.get_dbname().unwrap_or("(default)");
    match connector.target {
        SessionTarget::Any => format!("{}/{dbname}", hosts.join(",")),
        target => format!(
            "{}/{dbname} target_session_attrs={}",
            hosts.join(","),
            target.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> (String, Option<String>) {
        split_session_target(text)
    }

    #[test]
    fn the_target_is_taken_out_of_a_url() {
        assert_eq!(
            split("postgresql://u:p@a:5432,b:5433/db?target_session_attrs=primary"),
            (
                "postgresql://u:p@a:5432,b:5433/db".to_owned(),
                Some("primary".to_owned())
            )
        );
        assert_eq!(
            split(
                "postgres://a/db?application_name=x&target_session_attrs=prefer%2Dstandby&connect_timeout=2"
            ),
            (
                "postgres://a/db?application_name=x&connect_timeout=2".to_owned(),
                Some("prefer-standby".to_owned())
            )
        );
        assert_eq!(
            split("postgresql://a/db"),
            ("postgresql://a/db".to_owned(), None)
        );
    }

    #[test]
    fn the_target_is_taken_out_of_key_value_pairs() {
        assert_eq!(
            split("host=a,b port=5432,5433 target_session_attrs=standby dbname=x"),
            (
                "host=a,b port=5432,5433 dbname=x".to_owned(),
                Some("standby".to_owned())
            )
        );
        assert_eq!(
            split("password='a \\' b' target_session_attrs = 'read-write'"),
            (
                "password='a \\' b'".to_owned(),
                Some("read-write".to_owned())
            )
        );
        assert_eq!(
            split("host=/tmp password=a\\ b"),
            ("host=/tmp password=a\\ b".to_owned(), None)
        );
        // Malformed: left for tokio-postgres to refuse.
        assert_eq!(split("host"), ("host".to_owned(), None));
    }

    #[test]
    fn several_hosts_and_every_target_reach_the_connector_and_the_log_line() {
        let timeout = Duration::from_secs(1);
        let connector = postgres_config(
            "postgresql://u:secret@db1:5432,db2:5433/api?target_session_attrs=primary",
            timeout,
        )
        .unwrap();
        assert_eq!(connector.target, SessionTarget::Primary);
        assert_eq!(connector.config.get_hosts().len(), 2);
        let line = describe_database(&connector);
        assert_eq!(line, "db1:5432,db2:5433/api target_session_attrs=primary");
        assert!(!line.contains("secret"));
        for word in [
            "any",
            "read-write",
            "read-only",
            "standby",
            "prefer-standby",
        ] {
            let connector = postgres_config(
                &format!("host=a,b port=1,2 password=secret target_session_attrs={word}"),
                timeout,
            )
            .unwrap();
            assert_eq!(connector.target.as_str(), word);
            assert!(!describe_database(&connector).contains("secret"));
        }
        let refused = postgres_config("postgresql://a/db?target_session_attrs=master", timeout);
        assert!(refused.is_err_and(|error| error.contains("target_session_attrs")));
    }
}
