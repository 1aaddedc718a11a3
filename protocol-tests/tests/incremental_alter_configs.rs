//! IncrementalAlterConfigs (44): SET, DELETE, APPEND and SUBTRACT on topic configs at every
//! version, the error paths, and the produce-side effect of the altered configs.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use protocol_tests::*;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(sb(name))
        .with_config_operation(operation)
        .with_value(value.map(sb))
}

fn resource(resource_type: i8, name: &str, ops: Vec<AlterableConfig>) -> AlterConfigsResource {
    AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(sb(name))
        .with_configs(ops)
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
        &IncrementalAlterConfigsRequest::default()
            .with_resources(resources)
            .with_validate_only(validate_only),
    );
    assert_eq!(resp.throttle_time_ms, 0);
    assert_eq!(
        resp.responses.len(),
        n,
        "IncrementalAlterConfigs v{version}: one response per resource"
    );
    resp.responses
}

fn alter(
    client: &mut Client,
    version: i16,
    topic: &str,
    ops: Vec<AlterableConfig>,
) -> AlterConfigsResourceResponse {
    let r = alter_all(client, version, vec![resource(TOPIC, topic, ops)], false).remove(0);
    assert_eq!(
        (r.resource_type, r.resource_name.as_str()),
        (TOPIC, topic),
        "resource echoed"
    );
    r
}

/// The topic's current value of `key` and whether it is an override (source 1).
fn config(client: &mut Client, topic: &str, key: &str) -> (String, bool) {
    let resp = client.call(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(sb(topic))
            .with_configuration_keys(Some(vec![sb(key)]))]),
    );
    let c = &resp.results[0].configs[0];
    (
        c.value.as_deref().unwrap_or_default().to_string(),
        c.config_source == 1,
    )
}

#[test]
fn every_version_sets_appends_subtracts_and_deletes() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::IncrementalAlterConfigs) {
        let ctx = format!("IncrementalAlterConfigs v{version}");
        let topic = format!("iac-{version}");
        client.create_topic(&topic, 1);

        let r = alter(
            &mut client,
            version,
            &topic,
            vec![op("retention.ms", SET, Some("3600000"))],
        );
        assert_eq!(
            r.error_code,
            code::NONE,
            "{ctx}: SET ({:?})",
            r.error_message
        );
        assert_eq!(
            config(&mut client, &topic, "retention.ms"),
            ("3600000".into(), true),
            "{ctx}: SET"
        );

        let r = alter(
            &mut client,
            version,
            &topic,
            vec![op("cleanup.policy", APPEND, Some("compact"))],
        );
        assert_eq!(
            r.error_code,
            code::NONE,
            "{ctx}: APPEND ({:?})",
            r.error_message
        );
        assert_eq!(
            config(&mut client, &topic, "cleanup.policy"),
            ("delete,compact".into(), true),
            "{ctx}: APPEND adds to the default"
        );
        let r = alter(
            &mut client,
            version,
            &topic,
            vec![op("cleanup.policy", APPEND, Some("compact"))],
        );
        assert_eq!(r.error_code, code::NONE, "{ctx}: APPEND again");
        assert_eq!(
            config(&mut client, &topic, "cleanup.policy").0,
            "delete,compact",
            "{ctx}: no duplicate"
        );

        let r = alter(
            &mut client,
            version,
            &topic,
            vec![op("cleanup.policy", SUBTRACT, Some("delete"))],
        );
        assert_eq!(
            r.error_code,
            code::NONE,
            "{ctx}: SUBTRACT ({:?})",
            r.error_message
        );
        assert_eq!(
            config(&mut client, &topic, "cleanup.policy").0,
            "compact",
            "{ctx}: SUBTRACT"
        );

        let r = alter(
            &mut client,
            version,
            &topic,
            vec![
                op("cleanup.policy", DELETE, None),
                op("retention.ms", DELETE, None),
            ],
        );
        assert_eq!(
            r.error_code,
            code::NONE,
            "{ctx}: DELETE ({:?})",
            r.error_message
        );
        assert_eq!(
            config(&mut client, &topic, "cleanup.policy"),
            ("delete".into(), false),
            "{ctx}: default again"
        );
        assert_eq!(
            config(&mut client, &topic, "retention.ms").1,
            false,
            "{ctx}: retention.ms default again"
        );
    }
}

#[test]
fn every_version_rejects_bad_changes_and_changes_nothing() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("iac-bad", 1);
    for version in versions(ApiKey::IncrementalAlterConfigs) {
        let ctx = format!("IncrementalAlterConfigs v{version}");
        let cases: Vec<(&str, Vec<AlterableConfig>, i16)> = vec![
            (
                "unknown key",
                vec![op("no.such.config", SET, Some("1"))],
                code::INVALID_CONFIG,
            ),
            (
                "bad value",
                vec![op("retention.ms", SET, Some("soon"))],
                code::INVALID_CONFIG,
            ),
            (
                "null SET value",
                vec![op("retention.ms", SET, None)],
                code::INVALID_CONFIG,
            ),
            (
                "APPEND to a non-list",
                vec![op("retention.ms", APPEND, Some("1"))],
                code::INVALID_CONFIG,
            ),
            (
                "bad list item",
                vec![op("cleanup.policy", APPEND, Some("shred"))],
                code::INVALID_CONFIG,
            ),
            (
                "unknown operation",
                vec![op("retention.ms", 7, Some("1"))],
                code::INVALID_REQUEST,
            ),
            (
                "key named twice",
                vec![
                    op("retention.ms", SET, Some("1")),
                    op("retention.ms", DELETE, None),
                ],
                code::INVALID_REQUEST,
            ),
            // A valid change next to a bad one: nothing is applied.
            (
                "valid and invalid together",
                vec![
                    op("retention.ms", SET, Some("5")),
                    op("segment.bytes", SET, Some("big")),
                ],
                code::INVALID_CONFIG,
            ),
        ];
        for (what, ops, expected) in cases {
            let r = alter(&mut client, version, "iac-bad", ops);
            assert_eq!(r.error_code, expected, "{ctx}: {what}");
            assert!(r.error_message.is_some(), "{ctx}: {what}: error message");
        }
        assert_eq!(
            config(&mut client, "iac-bad", "retention.ms").1,
            false,
            "{ctx}: nothing applied"
        );

        let r = alter(
            &mut client,
            version,
            "iac-missing",
            vec![op("retention.ms", SET, Some("1"))],
        );
        assert_eq!(
            r.error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{ctx}: unknown topic"
        );

        let r = alter_all(
            &mut client,
            version,
            vec![resource(
                BROKER,
                "1",
                vec![op("log.retention.ms", SET, Some("1"))],
            )],
            false,
        );
        assert_eq!(
            r[0].error_code,
            code::INVALID_CONFIG,
            "{ctx}: broker configs are static"
        );
        let r = alter_all(&mut client, version, vec![resource(99, "x", vec![])], false);
        assert_eq!(
            r[0].error_code,
            code::INVALID_REQUEST,
            "{ctx}: unknown resource type"
        );

        // The same resource twice: both refused, neither applied.
        let twice = vec![
            resource(TOPIC, "iac-bad", vec![op("retention.ms", SET, Some("7"))]),
            resource(TOPIC, "iac-bad", vec![op("retention.ms", SET, Some("8"))]),
        ];
        let r = alter_all(&mut client, version, twice, false);
        assert_eq!(
            (r[0].error_code, r[1].error_code),
            (code::INVALID_REQUEST, code::INVALID_REQUEST),
            "{ctx}: duplicate resource"
        );
        assert_eq!(
            config(&mut client, "iac-bad", "retention.ms").1,
            false,
            "{ctx}: duplicate not applied"
        );

        // validate_only checks but does not apply.
        let r = alter_all(
            &mut client,
            version,
            vec![resource(
                TOPIC,
                "iac-bad",
                vec![op("retention.ms", SET, Some("9"))],
            )],
            true,
        );
        assert_eq!(r[0].error_code, code::NONE, "{ctx}: validate_only");
        assert_eq!(
            config(&mut client, "iac-bad", "retention.ms").1,
            false,
            "{ctx}: validate_only applies nothing"
        );
        let r = alter_all(
            &mut client,
            version,
            vec![resource(
                TOPIC,
                "iac-bad",
                vec![op("retention.ms", SET, Some("x"))],
            )],
            true,
        );
        assert_eq!(
            r[0].error_code,
            code::INVALID_CONFIG,
            "{ctx}: validate_only still validates"
        );
    }
}

#[test]
fn altered_configs_apply_to_produce_and_survive_restart() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("iac-effect", 1);
    let version = max_version(ApiKey::IncrementalAlterConfigs);

    // max.message.bytes: a batch over the new limit is refused with MESSAGE_TOO_LARGE (10).
    let r = alter(
        &mut client,
        version,
        "iac-effect",
        vec![op("max.message.bytes", SET, Some("200"))],
    );
    assert_eq!(r.error_code, code::NONE);
    let big = encode_batch(&[record(Some(b"k"), Some(&[b'x'; 500]), &[], now_ms())]);
    assert_eq!(
        client.produce("iac-effect", 0, big).error_code,
        10,
        "over max.message.bytes"
    );
    let small = encode_batch(&[record(Some(b"k"), Some(b"v"), &[], now_ms())]);
    client.produce_ok("iac-effect", 0, small);

    // cleanup.policy=compact: records without a key are refused with INVALID_RECORD and their
    // indexes in the batch (from Produce v8); the batch is not appended.
    let r = alter(
        &mut client,
        version,
        "iac-effect",
        vec![op("cleanup.policy", SET, Some("compact"))],
    );
    assert_eq!(r.error_code, code::NONE);
    let ts = now_ms();
    let mixed = encode_batch(&[
        record(None, Some(b"a"), &[], ts),
        record(Some(b"k"), Some(b"b"), &[], ts),
        record(None, Some(b"c"), &[], ts),
    ]);
    let before = client.log_end_offset("iac-effect", 0);
    for produce_version in [7, 8, 12] {
        let resp = client.call(
            produce_version,
            &produce_request(
                produce_version,
                "iac-effect",
                Default::default(),
                0,
                mixed.clone(),
                -1,
            ),
        );
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code,
            code::INVALID_RECORD,
            "Produce v{produce_version}: keyless records in a compacted topic"
        );
        let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(
            indexes,
            if produce_version >= 8 {
                vec![0, 2]
            } else {
                vec![]
            },
            "Produce v{produce_version}: record errors"
        );
    }
    assert_eq!(
        client.log_end_offset("iac-effect", 0),
        before,
        "nothing appended"
    );
    let keyed = encode_batch(&[record(Some(b"k"), Some(b"d"), &[], ts)]);
    client.produce_ok("iac-effect", 0, keyed);

    broker.restart();
    let mut client = broker.client();
    assert_eq!(
        config(&mut client, "iac-effect", "cleanup.policy"),
        ("compact".into(), true),
        "after restart"
    );
    assert_eq!(
        config(&mut client, "iac-effect", "max.message.bytes"),
        ("200".into(), true),
        "after restart"
    );
}
