//! Reading signature headers and decoding what they carry (hex, base64, Unix seconds), shared by
//! every scheme.
//!
//! Invariants: a header that appears twice is an error, never "the first one wins" (a proxy or
//! an attacker could otherwise choose which value is checked); values are trimmed of
//! surrounding spaces only; errors name the header, never echo its value.

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use http::{HeaderMap, HeaderName, header::AsHeaderName};

use super::{VerifyError, error::Label};

/// Standard base64; padding optional, because senders differ in whether they strip it and the
/// decoded length is checked afterwards anyway.
pub(super) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The one value of header `name`: `None` when absent, an error when repeated or not text.
pub(super) fn single<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, VerifyError> {
    lookup(headers, name, || name.into())
}

/// [`single`] for a header name from the config (the generic `hmac` scheme).
pub(super) fn single_configured<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h str>, VerifyError> {
    lookup(headers, name, || name.as_str().to_owned().into())
}

fn lookup<K: AsHeaderName>(
    headers: &HeaderMap,
    name: K,
    label: impl Fn() -> Label,
) -> Result<Option<&str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::Repeated { header: label() });
    }
    value
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| VerifyError::Encoding { header: label() })
}

/// The value of the first header of `names` that is present (for aliases such as `webhook-id`
/// and `svix-id`), with the name it was found under.
pub(super) fn first_of<'h>(
    headers: &'h HeaderMap,
    names: &[&'static str],
) -> Result<Option<(&'static str, &'h str)>, VerifyError> {
    for &name in names {
        if let Some(value) = single(headers, name)? {
            return Ok(Some((name, value)));
        }
    }
    Ok(None)
}

/// Like [`single`], but a missing header is `Missing`.
pub(super) fn required<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<&'h str, VerifyError> {
    single(headers, name)?.ok_or(VerifyError::Missing {
        expected: name.into(),
    })
}

/// Decodes standard base64 (padding optional).
pub(super) fn base64(header: impl Into<Label>, value: &str) -> Result<Vec<u8>, VerifyError> {
    BASE64.decode(value).map_err(|_| VerifyError::Encoding {
        header: header.into(),
    })
}

/// Decodes hex of either case.
pub(super) fn hex(header: impl Into<Label>, value: &str) -> Result<Vec<u8>, VerifyError> {
    ::hex::decode(value).map_err(|_| VerifyError::Malformed {
        header: header.into(),
        reason: "the signature is not hex",
    })
}

/// A Unix time in whole seconds, as the schemes write it: ASCII digits only (no sign, no
/// fraction, no spaces), at most 12 of them (beyond the year 33000, certainly wrong).
pub(super) fn unix_seconds(header: &'static str, value: &str) -> Result<i64, VerifyError> {
    let malformed = || VerifyError::Malformed {
        header: header.into(),
        reason: "the timestamp must be whole seconds since 1970 (digits only)",
    };
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    value.parse().map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn repeated_headers_are_refused_and_absent_ones_are_none() {
        let mut map = HeaderMap::new();
        assert_eq!(single(&map, "x-sig"), Ok(None));
        assert_eq!(
            required(&map, "x-sig"),
            Err(VerifyError::Missing {
                expected: "x-sig".into()
            })
        );
        map.append("x-sig", HeaderValue::from_static(" a "));
        assert_eq!(single(&map, "x-sig"), Ok(Some("a")));
        map.append("x-sig", HeaderValue::from_static("b"));
        assert_eq!(
            single(&map, "x-sig"),
            Err(VerifyError::Repeated {
                header: "x-sig".into()
            })
        );
    }

    #[test]
    fn aliases_are_tried_in_order() {
        let mut map = HeaderMap::new();
        map.insert("svix-id", HeaderValue::from_static("msg_1"));
        assert_eq!(
            first_of(&map, &["webhook-id", "svix-id"]),
            Ok(Some(("svix-id", "msg_1")))
        );
        map.insert("webhook-id", HeaderValue::from_static("msg_2"));
        assert_eq!(
            first_of(&map, &["webhook-id", "svix-id"]),
            Ok(Some(("webhook-id", "msg_2")))
        );
    }

    #[test]
    fn unix_seconds_are_digits_only() {
        assert_eq!(unix_seconds("t", "1614265330"), Ok(1_614_265_330));
        for bad in ["", "-1", "+5", "1.5", " 1", "1e9", "9999999999999", "abc"] {
            assert!(unix_seconds("t", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decoders_name_the_header_not_the_value() {
        let err = hex("x-sig", "zz-secretish").unwrap_err();
        assert!(!err.to_string().contains("secretish"), "{err}");
        assert!(err.to_string().contains("x-sig"), "{err}");
        assert_eq!(base64("x", "AQID").unwrap(), [1, 2, 3]);
        assert_eq!(base64("x", "AQI").unwrap(), [1, 2], "padding is optional");
        assert!(base64("x", "*").is_err());
    }
}
