//! AlterConfigs (33, the non-incremental form): replacing a topic's overrides at every
//! version, and the error paths.

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{AlterConfigsRequest, ApiKey, DescribeConfigsRequest};
use protocol_tests::*;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn resource(
    resource_type: i8,
    name: &str,
    configs: &[(&str, Option<&str>)],
) -> AlterConfigsResource {
    AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(sb(name))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    AlterableConfig::default()
                        .with_name(sb(k))
                        .with_value(v.map(sb))
                })
                .collect(),
        )
}

fn alter_all(
    client: &mut Client,
    version: i16,
    resources: Vec<AlterConfigsResource>,
    validate_only: bool,
) -> Vec<AlterConfigsResourceResponse> {
    let n = resources.len();
    let resp = client.call(
        version,
        &AlterConfigsRequest::default()
            .with_resources(resources)
            .with_validate_only(validate_only),
    );
    assert_eq!(resp.throttle_time_ms, 0);
    assert_eq!(
        resp.responses.len(),
        n,
        "AlterConfigs v{version}: one response per resource"
    );
    resp.responses
}

fn alter(
    client: &mut Client,
    version: i16,
    topic: &str,
    configs: &[(&str, Option<&str>)],
) -> AlterConfigsResourceResponse {
    let r = alter_all(
        client,
        version,
        vec![resource(TOPIC, topic, configs)],
        false,
    )
    .remove(0);
    assert_eq!(
        (r.resource_type, r.resource_name.as_str()),
        (TOPIC, topic),
        "resource echoed"
    );
    r
}

/// The topic's overrides (config source 1), sorted by key.
fn overrides(client: &mut Client, topic: &str) -> Vec<(String, String)> {
    let resp = client.call(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(sb(topic))
            .with_configuration_keys(None)]),
    );
    let mut out: Vec<(String, String)> = resp.results[0]
        .configs
        .iter()
        .filter(|c| c.config_source == 1)
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_deref().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_version_replaces_all_overrides() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::AlterConfigs) {
        let ctx = format!("AlterConfigs v{version}");
        let topic = format!("ac-{version}");
        client.create_topic(&topic, 1);

        let r = alter(
            &mut client,
            version,
            &topic,
            &[
                ("retention.ms", Some("1000")),
                ("cleanup.policy", Some("compact")),
            ],
        );
        assert_eq!(
            r.error_code,
            code::NONE,
            "{ctx}: set ({:?})",
            r.error_message
        );
        assert_eq!(
            overrides(&mut client, &topic),
            pairs(&[("cleanup.policy", "compact"), ("retention.ms", "1000")]),
            "{ctx}: both set"
        );

        // A second call replaces the whole set: retention.ms and cleanup.policy go back to defaults.
        let r = alter(
            &mut client,
            version,
            &topic,
            &[("max.message.bytes", Some("5000"))],
        );
        assert_eq!(r.error_code, code::NONE, "{ctx}: replace");
        assert_eq!(
            overrides(&mut client, &topic),
            pairs(&[("max.message.bytes", "5000")]),
            "{ctx}: replaced"
        );

        // validate_only changes nothing.
        let r = alter_all(
            &mut client,
            version,
            vec![resource(TOPIC, &topic, &[])],
            true,
        );
        assert_eq!(r[0].error_code, code::NONE, "{ctx}: validate_only");
        assert_eq!(
            overrides(&mut client, &topic).len(),
            1,
            "{ctx}: validate_only applies nothing"
        );

        // An empty set clears every override.
        let r = alter(&mut client, version, &topic, &[]);
        assert_eq!(r.error_code, code::NONE, "{ctx}: clear");
        assert!(overrides(&mut client, &topic).is_empty(), "{ctx}: cleared");
    }
}

#[test]
fn every_version_rejects_bad_configs_and_changes_nothing() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("ac-bad", 1);
    for version in versions(ApiKey::AlterConfigs) {
        let ctx = format!("AlterConfigs v{version}");
        let r = alter(
            &mut client,
            version,
            "ac-bad",
            &[("retention.ms", Some("7"))],
        );
        assert_eq!(r.error_code, code::NONE, "{ctx}: baseline");
        let cases: Vec<(&str, Vec<(&str, Option<&str>)>, i16)> = vec![
            (
                "unknown key",
                vec![("no.such.config", Some("1"))],
                code::INVALID_CONFIG,
            ),
            (
                "bad value",
                vec![("retention.ms", Some("soon"))],
                code::INVALID_CONFIG,
            ),
            (
                "null value",
                vec![("retention.ms", None)],
                code::INVALID_CONFIG,
            ),
            (
                "key named twice",
                vec![("retention.ms", Some("1")), ("retention.ms", Some("2"))],
                code::INVALID_REQUEST,
            ),
        ];
        for (what, configs, expected) in cases {
            let r = alter(&mut client, version, "ac-bad", &configs);
            assert_eq!(r.error_code, expected, "{ctx}: {what}");
            assert!(r.error_message.is_some(), "{ctx}: {what}: error message");
        }
        assert_eq!(
            overrides(&mut client, "ac-bad"),
            pairs(&[("retention.ms", "7")]),
            "{ctx}: nothing changed"
        );

        let r = alter(&mut client, version, "ac-missing", &[]);
        assert_eq!(
            r.error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{ctx}: unknown topic"
        );
        let r = alter_all(
            &mut client,
            version,
            vec![resource(BROKER, "1", &[("log.retention.ms", Some("1"))])],
            false,
        );
        assert_eq!(
            r[0].error_code,
            code::INVALID_CONFIG,
            "{ctx}: broker configs are static"
        );
        let r = alter_all(&mut client, version, vec![resource(99, "x", &[])], false);
        assert_eq!(
            r[0].error_code,
            code::INVALID_REQUEST,
            "{ctx}: unknown resource type"
        );
        let twice = vec![
            resource(TOPIC, "ac-bad", &[]),
            resource(TOPIC, "ac-bad", &[]),
        ];
        let r = alter_all(&mut client, version, twice, false);
        assert_eq!(
            (r[0].error_code, r[1].error_code),
            (code::INVALID_REQUEST, code::INVALID_REQUEST),
            "{ctx}: duplicate resource"
        );
        assert_eq!(
            overrides(&mut client, "ac-bad").len(),
            1,
            "{ctx}: duplicate not applied"
        );
    }
}
