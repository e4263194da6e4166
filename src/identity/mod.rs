//! Users and their credentials: password hashing on a bounded pool, the
//! administrator's user operations (the `users` commands), and Auth0 bulk import.

pub mod floor;
pub mod import;
pub mod password;
pub mod pool;
pub mod users;
