//! Settings tests, one module per area.

use super::*;

mod cluster_settings_tests {
    use super::*;

    #[test]
    fn single_broker_is_the_default_and_cluster_settings_validate() {
        let c = Config::default();
        assert_eq!(c.internal_advertised(), None);
        assert!(c.cluster_seeds.is_empty());
        assert_eq!(c.cluster_liveness_interval_ms, 100);
        let c = Config {
            internal_listener: "0.0.0.0:9093".into(),
            cluster_seeds: vec!["b1:9093".into(), "b2:9093".into()],
            ..Config::default()
        };
        c.validate().unwrap();
        assert_eq!(c.internal_advertised().as_deref(), Some("0.0.0.0:9093"));
        let c = Config { internal_advertised_listener: "broker1:9093".into(), ..c };
        assert_eq!(c.internal_advertised().as_deref(), Some("broker1:9093"));
        let cases: Vec<(Config, &str)> = vec![
            (Config { internal_listener: "nohost".into(), ..Config::default() }, "internal_listener"),
            (Config { internal_listener: "0.0.0.0:9092".into(), ..Config::default() }, "internal_listener"),
            (Config { cluster_seeds: vec!["b1:9093".into()], ..Config::default() }, "cluster_seeds"),
            (
                Config { internal_listener: "0.0.0.0:9093".into(), cluster_seeds: vec!["b1".into()], ..Config::default() },
                "cluster_seeds",
            ),
            (
                Config {
                    internal_listener: "0.0.0.0:9093".into(),
                    internal_advertised_listener: "x".into(),
                    ..Config::default()
                },
                "internal_advertised_listener",
            ),
            (Config { cluster_liveness_interval_ms: 0, ..Config::default() }, "cluster_liveness_interval_ms"),
        ];
        for (c, key) in cases {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn cluster_flags_and_env_overlay() {
        let cli = Cli::parse_from([
            "fluxo",
            "--node-id",
            "3",
            "--internal-listener",
            "127.0.0.1:19093",
            "--internal-advertised-listener",
            "b3:19093",
            "--cluster-seeds",
            "b1:19093,b2:19093",
            "--cluster-liveness-interval-ms",
            "50",
        ]);
        let c = Config::load(cli).unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.internal_listener, "127.0.0.1:19093");
        assert_eq!(c.internal_advertised().as_deref(), Some("b3:19093"));
        assert_eq!(c.cluster_seeds, vec!["b1:19093".to_string(), "b2:19093".to_string()]);
        assert_eq!(c.cluster_liveness_interval_ms, 50);
        let y = Config::from_yaml("internal_listener: 127.0.0.1:9093\ncluster_seeds: [a:1, b:2]\n").unwrap();
        assert_eq!(y.cluster_seeds.len(), 2);
    }
}

mod listener_tests {
    use super::*;

    #[test]
    fn extra_listeners_parse_and_bad_ones_are_named() {
        let c = Config { extra_listeners: vec!["0.0.0.0:29092=fluxo:29092".into()], ..Config::default() };
        c.validate().unwrap();
        assert_eq!(c.listeners()[1], ("0.0.0.0:29092".into(), "fluxo".into(), 29092));
        let bad = Config { extra_listeners: vec!["nonsense".into()], ..Config::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("extra_listeners"));
    }
}

mod security_listener_tests {
    use super::*;
    use crate::security::SecurityProtocol;

    #[test]
    fn named_listeners_map_protocols_and_advertise() {
        let c = Config {
            listeners: vec!["PLAINTEXT://127.0.0.1:9092".into(), "CLIENT://0.0.0.0:9093".into(), "SSL://:9094".into()],
            advertised_listeners: vec!["CLIENT://broker1:19093".into()],
            listener_security_protocol_map: vec!["CLIENT:SASL_SSL".into()],
            ssl_certificate_pem: "/c.pem".into(),
            ssl_key_pem: "/k.pem".into(),
            ..Config::default()
        };
        c.validate().unwrap();
        let specs = c.listener_specs().unwrap();
        let got: Vec<_> = specs.iter().map(|s| (s.name.as_str(), s.bind.as_str(), s.host.as_str(), s.port, s.protocol)).collect();
        assert_eq!(
            got,
            vec![
                ("PLAINTEXT", "127.0.0.1:9092", "127.0.0.1", 9092, SecurityProtocol::Plaintext),
                ("CLIENT", "0.0.0.0:9093", "broker1", 19093, SecurityProtocol::SaslSsl),
                ("SSL", "0.0.0.0:9094", "localhost", 9094, SecurityProtocol::Ssl),
            ]
        );
    }

    #[test]
    fn legacy_listeners_stay_plaintext_and_bad_named_ones_are_refused() {
        let c = Config { extra_listeners: vec!["0.0.0.0:29092=fluxo:29092".into()], ..Config::default() };
        let specs = c.listener_specs().unwrap();
        assert_eq!(specs.len(), 2);
        assert!(specs.iter().all(|s| s.protocol == SecurityProtocol::Plaintext));
        assert_eq!((specs[1].host.as_str(), specs[1].port), ("fluxo", 29092));
        let no_cert = Config { listeners: vec!["SSL://0.0.0.0:9093".into()], ..Config::default() };
        assert!(no_cert.validate().unwrap_err().to_string().contains("ssl_certificate_pem"));
        let unmapped = Config { listeners: vec!["INTERNAL://0.0.0.0:9093".into()], ..Config::default() };
        assert!(unmapped.validate().unwrap_err().to_string().contains("INTERNAL"));
        let stray = Config {
            listeners: vec!["PLAINTEXT://0.0.0.0:9093".into()],
            advertised_listeners: vec!["OTHER://h:1".into()],
            ..Config::default()
        };
        assert!(stray.validate().unwrap_err().to_string().contains("advertised_listeners"));
        let auth = Config { ssl_client_auth: "sometimes".into(), ..Config::default() };
        assert!(auth.validate().unwrap_err().to_string().contains("ssl_client_auth"));
    }
}

mod tests {
    use super::*;

    #[test]
    fn empty_yaml_is_default() {
        assert_eq!(Config::from_yaml("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_yaml("node_id: 3\nbogus_key: 1\n").unwrap_err();
        assert!(err.contains("bogus_key"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = Config::from_yaml("num_partitions: lots\n").unwrap_err();
        assert!(err.contains("num_partitions"), "{err}");
    }

    #[test]
    fn shipped_config_file_parses_to_defaults_except_data_dir() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/fluxo.yaml");
        let config = Config::from_yaml_file(&path).unwrap();
        let defaults = Config { data_dir: config.data_dir.clone(), ..Config::default() };
        assert_eq!(config, defaults);
        config.validate().unwrap();
    }

    #[test]
    fn advertised_listener_is_split() {
        let config = Config { advertised_listener: "broker.local:19092".into(), ..Config::default() };
        assert_eq!(config.advertised_host_port(), Some(("broker.local".into(), 19092)));
        let bad = Config { advertised_listener: "nohost".into(), ..Config::default() };
        assert!(bad.validate().is_err());
    }
}

mod default_replication_factor_tests {
    use super::*;

    #[test]
    fn default_replication_factor_defaults_to_three_and_validates() {
        assert_eq!(Config::default().default_replication_factor, 3);
        let c = Config::load(Cli::parse_from(["fluxo", "--default-replication-factor", "2"])).unwrap();
        assert_eq!(c.default_replication_factor, 2);
        for bad in [0, -1, 40_000] {
            let err = Config { default_replication_factor: bad, ..Config::default() }.validate().unwrap_err().to_string();
            assert!(err.contains("default_replication_factor"), "{bad}: {err}");
        }
        let y = Config::from_yaml("default_replication_factor: 1\n").unwrap();
        assert_eq!(y.default_replication_factor, 1);
    }
}
