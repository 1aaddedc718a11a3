//! DescribeConfigs (32): topic (type 2) and broker (type 4) resources at every version.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, DescribeConfigsRequest};
use protocol_tests::*;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn describe(
    client: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResult {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(sb(name))
        .with_configuration_keys(keys.map(|ks| ks.iter().map(|k| sb(k)).collect()));
    let resp = client.call(
        version,
        &DescribeConfigsRequest::default().with_resources(vec![resource]),
    );
    let ctx = format!("DescribeConfigs v{version} {resource_type}/{name}");
    assert_eq!(resp.results.len(), 1, "{ctx}: results");
    let r = resp.results[0].clone();
    assert_eq!(
        (r.resource_type, r.resource_name.as_str()),
        (resource_type, name),
        "{ctx}: resource echoed"
    );
    r
}

fn value<'a>(r: &'a DescribeConfigsResult, key: &str) -> Option<&'a str> {
    r.configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .and_then(|c| c.value.as_deref())
}

#[test]
fn every_version_describes_topic_configs() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("cfg", 1);
    // (key, config_type from v3: INT 3, LONG 5, LIST 7)
    let expected = [
        ("cleanup.policy", 7),
        ("retention.ms", 5),
        ("max.message.bytes", 3),
        ("segment.bytes", 3),
        ("retention.bytes", 5),
    ];
    for version in versions(ApiKey::DescribeConfigs) {
        let ctx = format!("DescribeConfigs v{version} topic");
        let r = describe(&mut client, version, TOPIC, "cfg", None);
        assert_eq!(
            r.error_code,
            code::NONE,
            "{ctx}: error ({:?})",
            r.error_message
        );
        for (key, config_type) in expected {
            let c = r.configs.iter().find(|c| c.name.as_str() == key);
            let c = c.unwrap_or_else(|| {
                panic!(
                    "{ctx}: {key} missing; got {:?}",
                    r.configs
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                )
            });
            let v = c
                .value
                .as_deref()
                .unwrap_or_else(|| panic!("{ctx}: {key} has a null value"));
            if key != "cleanup.policy" {
                v.parse::<i64>()
                    .unwrap_or_else(|_| panic!("{ctx}: {key}={v:?} is not a number"));
            }
            assert!(!c.is_sensitive, "{ctx}: {key} is_sensitive");
            if version >= 3 {
                assert_eq!(c.config_type, config_type, "{ctx}: config_type of {key}");
            }
        }
        assert_eq!(
            value(&r, "cleanup.policy"),
            Some("delete"),
            "{ctx}: default cleanup.policy"
        );
    }
}

#[test]
fn every_version_filters_by_key_and_reports_created_overrides() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let topic = CreatableTopic::default()
        .with_name(topic_name("custom"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(sb("retention.ms"))
            .with_value(Some(sb("3600000")))]);
    let resp = client.call(7, &CreateTopicsRequest::default().with_topics(vec![topic]));
    assert_eq!(
        resp.topics[0].error_code,
        code::NONE,
        "create topic with retention.ms"
    );
    for version in versions(ApiKey::DescribeConfigs) {
        let ctx = format!("DescribeConfigs v{version}");
        let r = describe(
            &mut client,
            version,
            TOPIC,
            "custom",
            Some(&["retention.ms", "cleanup.policy"]),
        );
        assert_eq!(r.error_code, code::NONE, "{ctx}: error");
        let mut names: Vec<&str> = r.configs.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            vec!["cleanup.policy", "retention.ms"],
            "{ctx}: only the requested keys"
        );
        let retention = r
            .configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .unwrap();
        assert_eq!(
            retention.value.as_deref(),
            Some("3600000"),
            "{ctx}: retention.ms set at creation"
        );
        assert_eq!(
            retention.config_source, 1,
            "{ctx}: retention.ms source is DYNAMIC_TOPIC_CONFIG"
        );
        assert!(!retention.read_only, "{ctx}: topic config read_only");
    }
}

#[test]
fn every_version_describes_the_broker() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::DescribeConfigs) {
        let r = describe(&mut client, version, BROKER, "1", None);
        assert_eq!(
            r.error_code,
            code::NONE,
            "DescribeConfigs v{version} broker 1: error ({:?})",
            r.error_message
        );
        assert!(
            !r.configs.is_empty(),
            "DescribeConfigs v{version} broker 1: no configs"
        );
    }
}

#[test]
fn every_version_unknown_topic() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::DescribeConfigs) {
        let r = describe(&mut client, version, TOPIC, "absent", None);
        assert_eq!(
            r.error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "DescribeConfigs v{version}: unknown topic"
        );
    }
}
