//! Login names as the store matches them: the *lookup key*.
//!
//! A username or e-mail is matched, made unique and counted (brute force)
//! by its lookup key, never by the string a person typed: `JÜRGEN`,
//! `Jürgen`, `Ju\u{308}rgen` (decomposed) and `Ｊｕｒｇｅｎ` (full width) are
//! one name. The key is Unicode's compatibility caseless form (D146:
//! NFKD(casefold(NFKD(casefold(NFD(s)))))), recomposed to NFC so it reads as
//! text. What the user typed is kept beside it and is what lists and profile
//! claims show.
//!
//! Rows of an older store may collide after folding (two accounts with one
//! key). Until an administrator resolves them, such rows are found by an
//! exact match of what was typed only: [`resolve`] is the one rule every
//! store implementation applies to its candidates.

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;

use super::User;

/// The lookup key of a username or e-mail.
pub fn login_key(name: &str) -> String {
    name.nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkd()
        .nfc()
        .collect()
}

/// The user among `candidates` (the users of one realm whose username or
/// e-mail key is `login_key(identifier)`) that a login as `identifier` means:
/// the only one, or, when several share the key (an unresolved collision from
/// an older store), the one whose username, else e-mail, is exactly
/// `identifier`; none when that is ambiguous too.
pub fn resolve(candidates: Vec<User>, identifier: &str) -> Option<User> {
    if candidates.len() <= 1 {
        return candidates.into_iter().next();
    }
    let exact_username = |u: &User| u.username.as_deref() == Some(identifier);
    let exact_email = |u: &User| u.email.as_deref() == Some(identifier);
    let pick = |matches: &dyn Fn(&User) -> bool| {
        let mut found = candidates.iter().filter(|u| matches(u));
        match (found.next(), found.next()) {
            (Some(u), None) => Some(u.clone()),
            _ => None,
        }
    };
    pick(&exact_username).or_else(|| pick(&exact_email))
}

/// [`resolve`] in each realm: `candidates` are users of any realm whose
/// username or e-mail key is `login_key(identifier)`, sorted by realm.
pub fn resolve_per_realm(candidates: Vec<User>, identifier: &str) -> Vec<User> {
    let mut found = Vec::new();
    let mut rest = candidates.into_iter().peekable();
    while let Some(first) = rest.next() {
        let mut realm = vec![first];
        while let Some(next) = rest.next_if(|u| u.realm == realm[0].realm) {
            realm.push(next);
        }
        found.extend(resolve(realm, identifier));
    }
    found
}

/// Which login name of `user`, if any, has the key `key`, for messages:
/// `username "Jürgen" of auth0|…`.
pub fn describe_clash(user: &User, key: &str) -> String {
    let field = |name: &Option<String>, what: &str| {
        name.as_deref()
            .filter(|n| login_key(n) == key)
            .map(|n| format!("the {what} \"{n}\" of {}", user.user_id))
    };
    field(&user.username, "username")
        .or_else(|| field(&user.email, "e-mail"))
        .unwrap_or_else(|| format!("user {}", user.user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_normal_forms_fold_to_one_key() {
        for name in ["Jürgen", "JÜRGEN", "Ju\u{308}rgen", "ＪÜＲＧＥＮ", "jürgen"] {
            assert_eq!(login_key(name), "jürgen", "{name:?}");
        }
        // Full case folding, not just lowercasing.
        assert_eq!(login_key("STRASSE"), login_key("straße"));
        assert_eq!(login_key("ΣΊΣΥΦΟΣ"), login_key("σίσυφος"));
        assert_eq!(login_key("ﬁle"), "file");
        assert_eq!(
            login_key("Carol@Example.COM"),
            login_key("carol@example.com")
        );
        assert_ne!(login_key("carol"), login_key("carol "));
    }

    fn user(id: &str, username: Option<&str>, email: Option<&str>) -> User {
        User {
            user_id: id.into(),
            realm: "db".into(),
            username: username.map(str::to_string),
            email: email.map(str::to_string),
            email_verified: false,
            name: None,
            password_hash: None,
            blocked: false,
            app_metadata: serde_json::json!({}),
            user_metadata: serde_json::json!({}),
            created_at: 0,
            updated_at: 0,
            last_login: None,
            logins_count: 0,
        }
    }

    #[test]
    fn collisions_resolve_by_exact_match_only() {
        let id = |u: Option<User>| u.map(|u| u.user_id);
        let one = vec![user("a", Some("Jürgen"), None)];
        assert_eq!(id(resolve(one, "JÜRGEN")).as_deref(), Some("a"));
        let two = || {
            vec![
                user("a", Some("Jürgen"), None),
                user("b", Some("JÜRGEN"), None),
            ]
        };
        assert_eq!(id(resolve(two(), "JÜRGEN")).as_deref(), Some("b"));
        assert_eq!(id(resolve(two(), "Jürgen")).as_deref(), Some("a"));
        assert_eq!(id(resolve(two(), "jürgen")), None);
        // A username equal to another user's e-mail: the username wins, as before.
        let cross = || {
            vec![
                user("m1", Some("m@example.com"), None),
                user("m2", Some("mike"), Some("m@example.com")),
            ]
        };
        assert_eq!(id(resolve(cross(), "m@example.com")).as_deref(), Some("m1"));
        assert_eq!(id(resolve(cross(), "M@example.com")), None);
    }
}
