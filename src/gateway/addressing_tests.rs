use super::*;

fn ports(first: u16, last: u16, base: i32) -> PortPerNodeSettings {
    PortPerNodeSettings {
        bootstrap_port: 9092,
        first_port: first,
        last_port: last,
        node_id_base: base,
        advertised_host: "gw.example.com".to_string(),
        advertised_first_port: None,
    }
}

fn sni(domain: &str) -> SniDomain {
    SniDomain::new(&SniSettings {
        domain: domain.to_string(),
        advertised_port: 9093,
    })
    .unwrap()
}

fn addr(host: &str, port: u16) -> Advertised {
    Advertised {
        host: host.to_string(),
        port,
    }
}

#[test]
fn port_rule_maps_node_ids_from_the_base() {
    let range = PortRange::new(&ports(9200, 9202, 1)).unwrap();
    assert_eq!(range.listen_port(1), Ok(9200));
    assert_eq!(range.listen_port(2), Ok(9201));
    assert_eq!(range.listen_port(3), Ok(9202));
    assert_eq!(range.advertised(3), Ok(addr("gw.example.com", 9202)));
    assert_eq!(range.node_ids(), 1..=3);
}

#[test]
fn port_rule_refuses_node_ids_outside_the_range() {
    let range = PortRange::new(&ports(9200, 9202, 1)).unwrap();
    let below = range.listen_port(0).unwrap_err();
    assert_eq!(
        below,
        Unaddressable::OutsidePortRange {
            node_id: 0,
            first: 9200,
            last: 9202,
            lowest: 1,
            highest: 3
        }
    );
    assert!(below.to_string().contains("node ids 1..=3"), "{below}");
    assert!(matches!(
        range.advertised(4),
        Err(Unaddressable::OutsidePortRange { node_id: 4, .. })
    ));
    assert!(matches!(
        range.advertised(i32::MAX),
        Err(Unaddressable::OutsidePortRange { .. })
    ));
    assert_eq!(
        range.advertised(-1),
        Err(Unaddressable::Negative { node_id: -1 })
    );
    assert!(matches!(
        range.advertised(i32::MIN),
        Err(Unaddressable::Negative { .. })
    ));
}

#[test]
fn port_rule_reaches_port_65535_and_the_largest_node_id() {
    let range = PortRange::new(&PortPerNodeSettings {
        bootstrap_port: 1,
        ..ports(65534, 65535, i32::MAX - 1)
    })
    .unwrap();
    assert_eq!(range.listen_port(i32::MAX), Ok(65535));
    assert_eq!(range.route_for_port(65535), Some(Route::Node(i32::MAX)));
    assert_eq!(range.route_for_port(1), Some(Route::Bootstrap));
    assert_eq!(range.route_for_port(65533), None);
}

#[test]
fn ports_route_back_to_their_node_and_bootstrap_to_any() {
    let map = AddressMap::port_per_node(&ports(9200, 9299, 0)).unwrap();
    assert_eq!(map.node_for_port(9092), Some(Route::Bootstrap));
    assert_eq!(map.node_for_port(9200), Some(Route::Node(0)));
    assert_eq!(map.node_for_port(9299), Some(Route::Node(99)));
    assert_eq!(map.node_for_port(9199), None);
    assert_eq!(map.node_for_port(9300), None);
    assert!(map.check(100).is_err() && map.check(-1).is_err() && map.check(99).is_ok());
    for node in [0, 1, 42, 99] {
        let advertised = map.advertised(node).unwrap();
        assert_eq!(map.node_for_port(advertised.port), Some(Route::Node(node)));
    }
    assert!(matches!(
        map.node_for_sni("broker-1.kafka.test"),
        Err(SniNameError::NotSni { .. })
    ));
}

#[test]
fn port_range_settings_are_checked() {
    assert_eq!(
        PortRange::new(&ports(9300, 9200, 0)),
        Err(AddressMapError::EmptyPortRange {
            first: 9300,
            last: 9200
        })
    );
    assert!(matches!(
        PortRange::new(&ports(0, 10, 0)),
        Err(AddressMapError::EmptyPortRange { .. })
    ));
    assert_eq!(
        PortRange::new(&ports(9000, 9100, 0)),
        Err(AddressMapError::BootstrapInRange {
            port: 9092,
            first: 9000,
            last: 9100
        })
    );
    assert_eq!(
        PortRange::new(&PortPerNodeSettings {
            bootstrap_port: 0,
            ..ports(9200, 9201, 0)
        }),
        Err(AddressMapError::BootstrapPortZero)
    );
    assert_eq!(
        PortRange::new(&ports(9200, 9201, -1)),
        Err(AddressMapError::NegativeNodeIdBase { base: -1 })
    );
    assert_eq!(
        PortRange::new(&ports(9200, 9201, i32::MAX)),
        Err(AddressMapError::NodeIdsOverflow {
            base: i32::MAX,
            count: 2
        })
    );
    assert_eq!(
        PortRange::new(&PortPerNodeSettings {
            advertised_first_port: Some(65535),
            ..ports(9200, 9201, 0)
        }),
        Err(AddressMapError::AdvertisedPortsOverflow {
            port: 65535,
            count: 2
        })
    );
    assert_eq!(
        PortRange::new(&PortPerNodeSettings {
            advertised_first_port: Some(0),
            ..ports(9200, 9201, 0)
        }),
        Err(AddressMapError::AdvertisedPortZero)
    );
}

#[test]
fn advertised_ports_may_differ_from_bound_ones() {
    let range = PortRange::new(&PortPerNodeSettings {
        advertised_first_port: Some(31000),
        ..ports(9200, 9210, 0)
    })
    .unwrap();
    assert_eq!(range.listen_port(3), Ok(9203));
    assert_eq!(range.advertised(3).unwrap().port, 31003);
}

#[test]
fn host_template_puts_the_node_id_in_place() {
    let range = PortRange::new(&PortPerNodeSettings {
        advertised_host: "kafka-{node_id}.gw-{node_id}.example.com".to_string(),
        ..ports(9200, 9210, 0)
    })
    .unwrap();
    assert_eq!(
        range.advertised(7).unwrap().host,
        "kafka-7.gw-7.example.com"
    );
    let ipv6 = PortRange::new(&PortPerNodeSettings {
        advertised_host: "::1".to_string(),
        ..ports(9200, 9210, 0)
    })
    .unwrap();
    assert_eq!(ipv6.advertised(0).unwrap().host, "::1");
}

#[test]
fn host_template_refuses_mistakes() {
    for (template, reason) in [
        ("", "empty"),
        ("kafka-{nodeid}.example.com", "placeholder"),
        ("kafka {node_id}", "placeholder"),
        ("host/path", "placeholder"),
    ] {
        let err = PortRange::new(&PortPerNodeSettings {
            advertised_host: template.to_string(),
            ..ports(9200, 9210, 0)
        })
        .unwrap_err();
        assert!(
            matches!(err, AddressMapError::BadHost { .. }) && err.to_string().contains(reason),
            "{template}: {err}"
        );
    }
    let long = "a".repeat(250) + "{node_id}";
    assert!(matches!(
        PortRange::new(&PortPerNodeSettings {
            advertised_host: long,
            ..ports(9200, 9210, 0)
        }),
        Err(AddressMapError::BadHost { .. })
    ));
}

#[test]
fn sni_names_resolve_to_nodes_and_bootstrap() {
    let domain = sni("kafka.test");
    assert_eq!(
        domain.route_for_name(Some("broker-0.kafka.test")),
        Ok(Route::Node(0))
    );
    assert_eq!(
        domain.route_for_name(Some("broker-2.kafka.test")),
        Ok(Route::Node(2))
    );
    assert_eq!(
        domain.route_for_name(Some("bootstrap.kafka.test")),
        Ok(Route::Bootstrap)
    );
    assert_eq!(domain.bootstrap_name(), "bootstrap.kafka.test");
}

#[test]
fn sni_names_ignore_case_and_one_trailing_dot() {
    let domain = sni("Kafka.Test.");
    assert_eq!(domain.domain(), "kafka.test");
    for name in [
        "BROKER-12.KAFKA.TEST",
        "Broker-12.kafka.Test",
        "broker-12.kafka.test.",
    ] {
        assert_eq!(
            domain.route_for_name(Some(name)),
            Ok(Route::Node(12)),
            "{name}"
        );
    }
    assert_eq!(
        domain.route_for_name(Some("BOOTSTRAP.kafka.test.")),
        Ok(Route::Bootstrap)
    );
    assert!(domain
        .route_for_name(Some("broker-12.kafka.test.."))
        .is_err());
}

#[test]
fn sni_names_outside_the_domain_are_refused() {
    let domain = sni("kafka.test");
    for name in [
        "broker-1.other.test",
        "broker-1.evilkafka.test",
        "broker-1.kafka.test.evil",
        "broker-1.x.kafka.test",
        "kafka.test",
        "broker-1",
        "",
        ".",
        "..kafka.test",
    ] {
        assert!(
            matches!(
                domain.route_for_name(Some(name)),
                Err(SniNameError::OutsideDomain { .. })
            ),
            "{name:?}: {:?}",
            domain.route_for_name(Some(name))
        );
    }
}

#[test]
fn sni_names_that_name_no_node_are_refused() {
    let domain = sni("kafka.test");
    for name in [
        "broker-abc.kafka.test",
        "broker-.kafka.test",
        "broker--1.kafka.test",
        "broker-+1.kafka.test",
        "broker-01.kafka.test",
        "broker-1a.kafka.test",
        "broker-2147483648.kafka.test",
        "broker-99999999999999999999.kafka.test",
        "broker-4294967297.kafka.test",
        "broker1.kafka.test",
        "brokers-1.kafka.test",
        "node-1.kafka.test",
        "b.kafka.test",
        "bootstrap-1.kafka.test",
        "broker-١.kafka.test",
        ".kafka.test",
    ] {
        let got = domain.route_for_name(Some(name));
        assert!(
            matches!(got, Err(SniNameError::NotABroker { .. })),
            "{name}: {got:?}"
        );
    }
    assert_eq!(
        domain.route_for_name(Some("broker-2147483647.kafka.test")),
        Ok(Route::Node(i32::MAX))
    );
}

#[test]
fn a_missing_server_name_is_refused_and_says_what_to_use() {
    let err = sni("kafka.test").route_for_name(None).unwrap_err();
    assert!(err.to_string().contains("bootstrap.kafka.test"), "{err}");
}

#[test]
fn sni_errors_repeat_a_bounded_escaped_name() {
    let domain = sni("kafka.test");
    let name = format!("{}\n.other.test", "x".repeat(1000));
    let err = domain.route_for_name(Some(&name)).unwrap_err().to_string();
    assert!(!err.contains('\n'), "{err}");
    assert!(err.len() < 300, "{}", err.len());
}

#[test]
fn sni_advertises_one_name_per_node_on_one_port() {
    let map = AddressMap::sni(&SniSettings {
        domain: "kafka.test".to_string(),
        advertised_port: 9093,
    })
    .unwrap();
    assert_eq!(map.advertised(3), Ok(addr("broker-3.kafka.test", 9093)));
    assert_eq!(
        map.advertised(i32::MAX),
        Ok(addr("broker-2147483647.kafka.test", 9093))
    );
    assert_eq!(
        map.advertised(-1),
        Err(Unaddressable::Negative { node_id: -1 })
    );
    assert_eq!(map.node_for_port(9093), None);
    assert!(map.check(i32::MAX).is_ok() && map.check(-1).is_err());
    for node in [0, 3, i32::MAX] {
        let host = map.advertised(node).unwrap().host;
        assert_eq!(map.node_for_sni(&host), Ok(Route::Node(node)));
    }
}

#[test]
fn sni_domain_settings_are_checked() {
    for (domain, reason) in [
        ("", "empty"),
        (".", "empty"),
        ("*.kafka.test", "wildcard"),
        ("kafka..test", "label"),
        ("-kafka.test", "label"),
        ("kafka_test", "label"),
        ("kafka test", "label"),
    ] {
        let err = SniDomain::new(&SniSettings {
            domain: domain.to_string(),
            advertised_port: 9093,
        })
        .unwrap_err();
        assert!(err.to_string().contains(reason), "{domain:?}: {err}");
    }
    let long = vec!["a".repeat(60); 4].join(".");
    assert!(SniDomain::new(&SniSettings {
        domain: long,
        advertised_port: 9093
    })
    .is_err());
    assert_eq!(
        SniDomain::new(&SniSettings {
            domain: "kafka.test".to_string(),
            advertised_port: 0
        }),
        Err(AddressMapError::AdvertisedPortZero)
    );
}

proptest::proptest! {
    #[test]
    fn every_node_id_round_trips_through_its_sni_name(node in 0..=i32::MAX, upper: bool) {
        let map = AddressMap::sni(&SniSettings {
            domain: "kafka.test".to_string(),
            advertised_port: 9093,
        })
        .unwrap();
        let host = map.advertised(node).unwrap().host;
        let host = if upper { host.to_ascii_uppercase() } else { host };
        proptest::prop_assert_eq!(map.node_for_sni(&host), Ok(Route::Node(node)));
    }

    #[test]
    fn any_server_name_resolves_to_its_own_canonical_name_or_is_refused(
        name in ".{0,80}|([bB][rR][oO][kK][eE][rR]-[0-9+-]{0,12}|[bB]ootstrap|[a-z]{0,5})(\\.[kK]afka)?\\.test\\.{0,2}"
    ) {
        let domain = sni("kafka.test");
        match domain.route_for_name(Some(&name)) {
            Ok(Route::Node(node)) => {
                let canonical = domain.advertised(node).unwrap().host;
                let trimmed = name.strip_suffix('.').unwrap_or(&name);
                proptest::prop_assert!(trimmed.eq_ignore_ascii_case(&canonical), "{name}");
            }
            Ok(Route::Bootstrap) => {
                let trimmed = name.strip_suffix('.').unwrap_or(&name);
                proptest::prop_assert!(trimmed.eq_ignore_ascii_case("bootstrap.kafka.test"));
            }
            Err(_) => {}
        }
    }

    #[test]
    fn every_port_of_the_range_routes_back_to_the_node_it_advertises(
        first in 1024u16..60000,
        span in 0u16..1000,
        base in 0i32..10_000,
        node in -5i32..12_000,
    ) {
        let range = PortRange::new(&PortPerNodeSettings {
            bootstrap_port: 80,
            ..ports(first, first + span, base)
        })
        .unwrap();
        match range.listen_port(node) {
            Ok(port) => {
                proptest::prop_assert!((first..=first + span).contains(&port));
                proptest::prop_assert_eq!(range.route_for_port(port), Some(Route::Node(node)));
                proptest::prop_assert_eq!(range.advertised(node).unwrap().port, port);
            }
            Err(_) => proptest::prop_assert!(node < base || node > base + i32::from(span)),
        }
    }
}
