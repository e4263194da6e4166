//! What `passgate store copy` moves: every table of the SQLite schema at its
//! latest version, in an order that satisfies PostgreSQL's foreign keys
//! (users before their MFA rows, sessions before their refresh tokens), with
//! the type each column has on each side.
//!
//! SQLite orders some rows by their `rowid`; PostgreSQL gives those tables a
//! `seq` column ([`Table::seq`]), which the copy fills from the `rowid` so
//! the order carries over (for `revocations`, `seq` *is* the rowid).

use serde_json::Value;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// How a column's SQLite value becomes a PostgreSQL value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// TEXT → TEXT.
    Text,
    /// INTEGER → BIGINT.
    Int,
    /// INTEGER 0/1 → BOOLEAN.
    Bool,
    /// TEXT holding JSON → JSONB.
    Json,
    /// BLOB → BYTEA.
    Blob,
}

/// One copied table.
#[derive(Debug)]
pub(super) struct Table {
    /// Its name, the same on both sides.
    pub name: &'static str,
    /// Its columns, the same names on both sides.
    pub columns: &'static [(&'static str, Kind)],
    /// Whether PostgreSQL orders its rows by a `seq` column, filled from
    /// the SQLite `rowid` (plus the copy's offset for the table).
    pub seq: bool,
}

use Kind::{Blob, Bool, Int, Json, Text};

/// Every table, in the order they are copied.
pub(super) const TABLES: &[Table] = &[
    Table {
        name: "settings",
        columns: &[("name", Text), ("value", Int)],
        seq: false,
    },
    Table {
        name: "signing_keys",
        columns: &[
            ("kid", Text),
            ("alg", Text),
            ("private_sealed", Blob),
            ("created_at", Int),
            ("signs_from", Int),
        ],
        seq: false,
    },
    Table {
        name: "users",
        columns: &[
            ("user_id", Text),
            ("realm", Text),
            ("username", Text),
            ("email", Text),
            ("email_verified", Bool),
            ("name", Text),
            ("password_hash", Text),
            ("blocked", Bool),
            ("app_metadata", Json),
            ("user_metadata", Json),
            ("created_at", Int),
            ("updated_at", Int),
            ("last_login", Int),
            ("logins_count", Int),
            ("username_key", Text),
            ("email_key", Text),
            ("login_clash", Bool),
        ],
        seq: false,
    },
    Table {
        name: "sessions",
        columns: &[
            ("sid", Text),
            ("user_id", Text),
            ("client_id", Text),
            ("realm", Text),
            ("audience", Text),
            ("scope", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("has_refresh", Bool),
            ("amr", Text),
        ],
        seq: true,
    },
    Table {
        name: "refresh_tokens",
        columns: &[
            ("token_hash", Text),
            ("sid", Text),
            ("client_id", Text),
            ("created_at", Int),
            ("last_used_at", Int),
            ("absolute_expires_at", Int),
            ("retired_at_ms", Int),
        ],
        seq: false,
    },
    Table {
        name: "revocations",
        columns: &[("sid", Text), ("expires_at", Int)],
        seq: true,
    },
    Table {
        name: "login_failures",
        columns: &[
            ("identifier", Text),
            ("ip", Text),
            ("failures", Int),
            ("last_failure", Int),
        ],
        seq: false,
    },
    Table {
        name: "ip_failures",
        columns: &[("ip", Text), ("tat", Int)],
        seq: false,
    },
    Table {
        name: "mfa_authenticators",
        columns: &[
            ("id", Text),
            ("user_id", Text),
            ("kind", Text),
            ("secret", Blob),
            ("active", Bool),
            ("last_step", Int),
            ("created_at", Int),
        ],
        seq: true,
    },
    Table {
        name: "mfa_transactions",
        columns: &[
            ("token_hash", Text),
            ("user_id", Text),
            ("client_id", Text),
            ("realm", Text),
            ("audience", Text),
            ("decision", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
            ("oob_authenticator", Text),
            ("oob_code_hash", Text),
            ("binding_hash", Text),
            ("oob_expires_at", Int),
        ],
        seq: false,
    },
    Table {
        name: "mfa_failures",
        columns: &[("user_id", Text), ("failures", Int), ("since", Int)],
        seq: false,
    },
];

/// One value on its way to PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Json(Value),
    Bytes(Vec<u8>),
}

impl Cell {
    /// The SQLite value `v` as a column of `kind`; `Err` says why it cannot be.
    pub fn from_sqlite(kind: Kind, v: rusqlite::types::Value) -> Result<Cell, String> {
        use rusqlite::types::Value as V;
        Ok(match (kind, v) {
            (_, V::Null) => Cell::Null,
            (Kind::Text, V::Text(s)) => Cell::Text(s),
            (Kind::Int, V::Integer(i)) => Cell::Int(i),
            (Kind::Bool, V::Integer(i)) => Cell::Bool(i != 0),
            (Kind::Json, V::Text(s)) => {
                Cell::Json(serde_json::from_str(&s).map_err(|e| format!("not JSON ({e})"))?)
            }
            (Kind::Blob, V::Blob(b)) => Cell::Bytes(b),
            (kind, other) => {
                return Err(format!(
                    "a {} where {kind:?} was expected",
                    match other.data_type() {
                        rusqlite::types::Type::Null => "NULL",
                        rusqlite::types::Type::Integer => "INTEGER",
                        rusqlite::types::Type::Real => "REAL",
                        rusqlite::types::Type::Text => "TEXT",
                        rusqlite::types::Type::Blob => "BLOB",
                    }
                ));
            }
        })
    }
}

impl ToSql for Cell {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // Each value is checked against the column's type, so a mismatch is
        // an error rather than misread bytes.
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Text(s) => s.to_sql_checked(ty, out),
            Cell::Int(i) => i.to_sql_checked(ty, out),
            Cell::Bool(b) => b.to_sql_checked(ty, out),
            Cell::Json(v) => v.to_sql_checked(ty, out),
            Cell::Bytes(b) => b.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl Table {
    /// The PostgreSQL columns written, in the order of a row's cells.
    pub fn target_columns(&self) -> Vec<&'static str> {
        let mut cols: Vec<&'static str> = self.columns.iter().map(|(c, _)| *c).collect();
        if self.seq {
            cols.push("seq");
        }
        cols
    }

    /// Rows per `INSERT`: as many as fit PostgreSQL's 65535 parameters,
    /// at most `wanted`.
    pub fn batch_rows(&self, wanted: usize) -> usize {
        let per_row = self.target_columns().len();
        wanted.clamp(1, u16::MAX as usize / per_row)
    }

    /// `INSERT ... VALUES (...), ... ON CONFLICT DO NOTHING` for `rows` rows.
    pub fn insert_sql(&self, rows: usize) -> String {
        let cols = self.target_columns();
        let n = cols.len();
        let tuples: Vec<String> = (0..rows)
            .map(|r| {
                let params: Vec<String> = (1..=n).map(|c| format!("${}", r * n + c)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {} ON CONFLICT DO NOTHING",
            self.name,
            cols.join(", "),
            tuples.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_every_parameter_once() {
        let t = &TABLES[0];
        assert_eq!(
            t.insert_sql(2),
            "INSERT INTO settings (name, value) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        let revocations = TABLES.iter().find(|t| t.name == "revocations");
        assert_eq!(
            revocations.map(|t| t.insert_sql(1)),
            Some(
                "INSERT INTO revocations (sid, expires_at, seq) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
                    .to_string()
            )
        );
    }

    #[test]
    fn a_batch_stays_within_the_parameter_limit() {
        for t in TABLES {
            let rows = t.batch_rows(1_000_000);
            assert!(rows * t.target_columns().len() <= 65535, "{}", t.name);
            assert_eq!(t.batch_rows(0), 1);
        }
    }

    #[test]
    fn sqlite_values_convert_or_say_why_not() {
        use rusqlite::types::Value as V;
        assert_eq!(
            Cell::from_sqlite(Kind::Bool, V::Integer(1)),
            Ok(Cell::Bool(true))
        );
        assert_eq!(
            Cell::from_sqlite(Kind::Bool, V::Integer(0)),
            Ok(Cell::Bool(false))
        );
        assert_eq!(Cell::from_sqlite(Kind::Text, V::Null), Ok(Cell::Null));
        assert_eq!(
            Cell::from_sqlite(Kind::Json, V::Text("{\"a\":1}".into())),
            Ok(Cell::Json(serde_json::json!({"a": 1})))
        );
        assert!(
            Cell::from_sqlite(Kind::Json, V::Text("{oops".into()))
                .is_err_and(|e| e.starts_with("not JSON"))
        );
        assert!(
            Cell::from_sqlite(Kind::Int, V::Text("12".into()))
                .is_err_and(|e| e.contains("TEXT where Int"))
        );
    }
}
