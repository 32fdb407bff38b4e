//! Every HighLevel fixture in `tests/fixtures/highlevel/` parses, into the struct for its kind,
//! and the lenient rules hold for missing, null and extra keys.

use super::*;

/// (file, body) of every fixture; a new fixture must be added here (the count test checks).
const FIXTURES: &[(&str, &str)] = &[
    (
        "appointment-create",
        include_str!("../../../tests/fixtures/highlevel/appointment-create.json"),
    ),
    (
        "contact-create",
        include_str!("../../../tests/fixtures/highlevel/contact-create.json"),
    ),
    (
        "conversation-unread-update",
        include_str!("../../../tests/fixtures/highlevel/conversation-unread-update.json"),
    ),
    (
        "inbound-message-email",
        include_str!("../../../tests/fixtures/highlevel/inbound-message-email.json"),
    ),
    (
        "inbound-message-sms",
        include_str!("../../../tests/fixtures/highlevel/inbound-message-sms.json"),
    ),
    (
        "install-agency",
        include_str!("../../../tests/fixtures/highlevel/install-agency.json"),
    ),
    (
        "install-as-delivered",
        include_str!("../../../tests/fixtures/highlevel/install-as-delivered.json"),
    ),
    (
        "install-location",
        include_str!("../../../tests/fixtures/highlevel/install-location.json"),
    ),
    (
        "location-create",
        include_str!("../../../tests/fixtures/highlevel/location-create.json"),
    ),
    (
        "opportunity-status-update",
        include_str!("../../../tests/fixtures/highlevel/opportunity-status-update.json"),
    ),
    (
        "plan-change",
        include_str!("../../../tests/fixtures/highlevel/plan-change.json"),
    ),
    (
        "provider-outbound-message-sms",
        include_str!("../../../tests/fixtures/highlevel/provider-outbound-message-sms.json"),
    ),
    (
        "record-create",
        include_str!("../../../tests/fixtures/highlevel/record-create.json"),
    ),
    (
        "uninstall-agency",
        include_str!("../../../tests/fixtures/highlevel/uninstall-agency.json"),
    ),
    (
        "uninstall-location",
        include_str!("../../../tests/fixtures/highlevel/uninstall-location.json"),
    ),
];

fn fixture(name: &str) -> HighLevelEvent {
    let (_, body) = FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    HighLevelEvent::parse("", body).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_fixture_is_listed_and_parses() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/highlevel");
    let on_disk = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(on_disk, FIXTURES.len(), "list every fixture in FIXTURES");
    for (name, body) in FIXTURES {
        // With the kind from the body, and with the kind the host would pass.
        let from_body = HighLevelEvent::parse("", body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kind = body_type(body).unwrap();
        assert_eq!(
            HighLevelEvent::parse(&kind, body).unwrap(),
            from_body,
            "{name}"
        );
    }
}

#[test]
fn contacts_read_every_documented_field() {
    let HighLevelEvent::Contact(c) = fixture("contact-create") else {
        panic!("not a contact")
    };
    assert_eq!(c.id, "nmFmQEsNgz6AVpgLVUJ0");
    assert_eq!(c.location_id, "ve9EPM428h8vShlRW1KT");
    assert_eq!(
        (c.first_name.as_str(), c.last_name.as_str()),
        ("John", "Deo")
    );
    assert_eq!(c.email, "JohnDeo@gmail.comm");
    assert_eq!(c.phone, "+919509597501");
    assert_eq!(c.dnd, Some(true));
    assert!(c.has_tag("Duis dolor commodo aliqua") && !c.has_tag("duis"));
    assert_eq!(
        c.custom_field("BcdmQEsNgz6AVpgLVUJ0"),
        Some(&serde_json::json!("XYZ Corp"))
    );
    assert_eq!(c.custom_field("nope"), None);
}

#[test]
fn opportunities_appointments_and_messages_have_their_shapes() {
    let HighLevelEvent::Opportunity(o) = fixture("opportunity-status-update") else {
        panic!("not an opportunity")
    };
    assert_eq!(o.pipeline_stage_id, "e93ba61a-53b3-45e7-985a-c7732dbcdb69");
    assert_eq!(o.monetary_value, Some(40.0));
    assert!(!o.is_won());

    let HighLevelEvent::Appointment(a) = fixture("appointment-create") else {
        panic!("not an appointment")
    };
    assert_eq!(a.location_id, "0007BWpSzSwfiuSl0tR2");
    assert_eq!(a.appointment.calendar_id, "BqTwX8QFwXzpegMve9EQ");
    assert_eq!(a.appointment.users.len(), 2);
    assert_eq!(a.appointment.appointment_status, "confirmed");

    let HighLevelEvent::Message(sms) = fixture("inbound-message-sms") else {
        panic!("not a message")
    };
    assert!(sms.is_inbound() && sms.is_sms());
    assert_eq!(sms.body, "This is a test message");
    let HighLevelEvent::Message(email) = fixture("inbound-message-email") else {
        panic!("not a message")
    };
    assert_eq!(email.to, ["testprasath95@gmail.com"]);
    assert_eq!(email.subject, "Order Confirmed");
    assert!(!email.is_sms());
}

#[test]
fn installs_and_uninstalls_know_their_level() {
    let HighLevelEvent::Install(location) = fixture("install-location") else {
        panic!("not an install")
    };
    assert!(!location.is_agency());
    assert_eq!(location.trial.as_ref().map(|t| t.on_trial), Some(true));
    let HighLevelEvent::Install(agency) = fixture("install-agency") else {
        panic!("not an install")
    };
    assert!(agency.is_agency());
    assert_eq!(agency.company_id.as_deref(), Some("otg8dTQqGLh3Q6iQI55w"));
    let HighLevelEvent::Install(delivered) = fixture("install-as-delivered") else {
        panic!("not an install")
    };
    assert_eq!(delivered.install_type.as_deref(), Some("Location"));
    assert!(!delivered.is_agency());

    let HighLevelEvent::Uninstall(u) = fixture("uninstall-agency") else {
        panic!("not an uninstall")
    };
    assert_eq!(
        (u.location_id, u.company_id.as_deref()),
        (None, Some("otg8dTQqGLh3Q6iQI55w"))
    );
}

#[test]
fn other_kinds_and_typeless_bodies_keep_the_whole_document() {
    for name in [
        "record-create",
        "provider-outbound-message-sms",
        "plan-change",
        "location-create",
    ] {
        let HighLevelEvent::Other(value) = fixture(name) else {
            panic!("{name} is not `Other`")
        };
        assert!(value.is_object(), "{name}");
    }
    assert_eq!(
        fixture("record-create").location_id(),
        Some("eHy2cOSZxMQzQ6Yyvl8P")
    );
}

#[test]
fn missing_null_and_extra_keys_are_tolerated() {
    let body = r#"{"type":"ContactCreate","id":"c-1","tags":null,"email":null,"brandNew":{"x":1}}"#;
    let HighLevelEvent::Contact(c) = HighLevelEvent::parse("ContactCreate", body).unwrap() else {
        panic!("not a contact")
    };
    assert_eq!(c.id, "c-1");
    assert!(c.tags.is_empty() && c.email.is_empty() && c.location_id.is_empty());
    assert_eq!(c.dnd, None);
    assert_eq!(HighLevelEvent::Contact(c).location_id(), None);

    let HighLevelEvent::Appointment(a) = HighLevelEvent::parse("AppointmentDelete", "{}").unwrap()
    else {
        panic!("not an appointment")
    };
    assert!(a.appointment.id.is_empty());
}

#[test]
fn a_key_of_the_wrong_type_names_the_kind_and_the_problem() {
    let err = HighLevelEvent::parse("ContactUpdate", r#"{"tags":"vip"}"#).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("ContactUpdate event payload: "), "{text}");
    assert!(text.contains("invalid type"), "{text}");
    let err = HighLevelEvent::parse("", "not json").unwrap_err();
    assert_eq!(err.what(), "event payload");
}
