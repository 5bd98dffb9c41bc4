//! The SIGUSR1 report: a summary line (mode, unknown senders, control connections and
//! the switch's own memory), the port table with per-port counters, and the MAC table.

use crate::tables::{PortKind, Tables};

/// Switch-wide figures the tables do not hold.
pub struct Summary {
    pub hub: bool,
    pub unknown_senders: u64,
    pub control_connections: usize,
    /// Each uplink's name and its overlay counters.
    pub uplinks: Vec<(String, crate::uplink::UplinkCounters)>,
}

/// The report as text.
pub fn render(tables: &Tables, sum: &Summary) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ports ({} mode), {} frames from unknown senders, {} control connections, rss {} KiB",
        tables.live_ports().len(),
        if sum.hub { "hub" } else { "switch" },
        sum.unknown_senders,
        sum.control_connections,
        own_rss_kib()
    );
    let _ = writeln!(
        s,
        "{:>5} {:<40} {:>10} {:>12} {:>10} {:>12} {:>6} {:>8} {:>9}",
        "port",
        "peer",
        "rx_frames",
        "rx_bytes",
        "tx_frames",
        "tx_bytes",
        "runts",
        "oversize",
        "tx_errors"
    );
    for &id in tables.live_ports() {
        let Some(p) = tables.port(id) else {
            continue;
        };
        let peer = match &p.kind {
            PortKind::Unix { send_to, .. } => send_to.to_string(),
            PortKind::Tap { name } => format!("tap:{name}"),
            PortKind::Uplink { name, .. } => name.clone(),
            PortKind::Vde { peer } => format!("vde:{peer}"),
        };
        let c = p.counters;
        let _ = writeln!(
            s,
            "{:>5} {:<40} {:>10} {:>12} {:>10} {:>12} {:>6} {:>8} {:>9}",
            p.label,
            peer,
            c.rx_frames,
            c.rx_bytes,
            c.tx_frames,
            c.tx_bytes,
            c.runts,
            c.oversize,
            c.tx_errors
        );
    }
    for (name, c) in &sum.uplinks {
        let _ = writeln!(
            s,
            "uplink {name}: {} malformed or foreign packets dropped, {} send errors",
            c.malformed, c.send_errors
        );
    }
    let now = tables.now();
    let macs = tables.mac_table();
    let _ = writeln!(
        s,
        "{} MAC entries ({} new addresses not learned: limit {} per port, {} in all)",
        macs.len(),
        tables.macs_refused,
        tables.limits().per_port,
        tables.limits().total
    );
    let _ = writeln!(s, "{:<17} {:>5} {:>6}", "mac", "port", "idle_s");
    for (mac, e) in macs {
        let label = tables.port(e.port).map_or(-1, |p| p.label);
        let _ = writeln!(s, "{mac} {label:>5} {:>6}", now.saturating_sub(e.last_seen));
    }
    s
}

/// The management socket's commands.
pub const MGMT_COMMANDS: [&str; 5] = ["show", "ports", "macs", "uplinks", "help"];

/// The answer to one management command, as one line of JSON.
pub fn json(tables: &Tables, sum: &Summary, command: &str) -> String {
    use serde_json::{json, Value};
    let ports = || -> Value {
        let list: Vec<Value> = tables
            .live_ports()
            .iter()
            .filter_map(|&id| tables.port(id))
            .map(|p| {
                let (kind, peer) = match &p.kind {
                    PortKind::Unix { send_to, .. } => ("unix", send_to.to_string()),
                    PortKind::Tap { name } => ("tap", name.clone()),
                    PortKind::Uplink { name, .. } => ("uplink", name.clone()),
                    PortKind::Vde { peer } => ("vde", peer.to_string()),
                };
                let c = p.counters;
                json!({
                    "port": p.label, "kind": kind, "peer": peer,
                    "rx_frames": c.rx_frames, "rx_bytes": c.rx_bytes,
                    "tx_frames": c.tx_frames, "tx_bytes": c.tx_bytes,
                    "runts": c.runts, "oversize": c.oversize, "tx_errors": c.tx_errors,
                })
            })
            .collect();
        Value::Array(list)
    };
    let macs = || -> Value {
        let now = tables.now();
        let list: Vec<Value> = tables
            .mac_table()
            .into_iter()
            .map(|(mac, e)| {
                let port = tables.port(e.port).map_or(-1, |p| p.label);
                json!({"mac": mac.to_string(), "port": port, "idle_s": now.saturating_sub(e.last_seen)})
            })
            .collect();
        Value::Array(list)
    };
    let uplinks = || -> Value {
        let list: Vec<Value> = sum
            .uplinks
            .iter()
            .map(|(name, c)| json!({"uplink": name, "malformed": c.malformed, "send_errors": c.send_errors}))
            .collect();
        Value::Array(list)
    };
    let value = match command {
        "" | "show" => json!({
            "mode": if sum.hub { "hub" } else { "switch" },
            "unknown_senders": sum.unknown_senders,
            "control_connections": sum.control_connections,
            "rss_kib": own_rss_kib(),
            "ports": ports(),
            "macs": macs(),
            "uplinks": uplinks(),
        }),
        "ports" => json!({ "ports": ports() }),
        "macs" => json!({ "macs": macs() }),
        "uplinks" => json!({ "uplinks": uplinks() }),
        "help" => json!({ "commands": MGMT_COMMANDS }),
        other => {
            json!({ "error": format!("unknown command '{other}'"), "commands": MGMT_COMMANDS })
        }
    };
    value.to_string()
}

/// This process's resident set size (VmRSS), 0 if unknown.
fn own_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uml_proto::switch::DataAddr;

    #[test]
    fn ports_counters_and_macs_are_listed() {
        let mut t = Tables::new(false);
        let send_to = DataAddr::abstract_name(42, 7);
        let a = t
            .add_port(
                9,
                PortKind::Unix {
                    send_to,
                    learned_len: false,
                    pinned: None,
                },
            )
            .unwrap();
        let mut f = vec![0u8; 60];
        f[..6].fill(0xff);
        f[6..12].copy_from_slice(&[0xfe, 0xfd, 0, 0, 0, 1]);
        t.decide(a, &f, 0);
        let text = render(
            &t,
            &Summary {
                hub: false,
                unknown_senders: 3,
                control_connections: 1,
                uplinks: vec![(
                    "vxlan:10.0.0.2,vni=1".into(),
                    crate::uplink::UplinkCounters {
                        malformed: 4,
                        send_errors: 5,
                    },
                )],
            },
        );
        assert!(
            text.contains("uplink vxlan:10.0.0.2,vni=1: 4 malformed or foreign packets dropped, 5 send errors\n"),
            "{text}"
        );
        assert!(
            text.starts_with(
                "1 ports (switch mode), 3 frames from unknown senders, 1 control connections, rss "
            ),
            "{text}"
        );
        let port_line = text.lines().find(|l| l.contains("@pid42.7/")).expect(&text);
        let cols: Vec<&str> = port_line.split_whitespace().collect();
        assert_eq!(cols[0], "9");
        assert_eq!(&cols[2..4], &["1", "60"]);
        assert!(text.contains("1 MAC entries"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("fe:fd:00:00:00:01     9")),
            "{text}"
        );
    }

    #[test]
    fn management_answers_are_one_json_line_each() {
        let mut t = Tables::new(true);
        let up = t
            .add_port(
                5,
                PortKind::Uplink {
                    index: 0,
                    name: "gre:10.0.0.2".into(),
                },
            )
            .unwrap();
        let mut f = vec![0u8; 60];
        f[..6].fill(0xff);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        t.decide(up, &f, 0);
        let sum = Summary {
            hub: true,
            unknown_senders: 0,
            control_connections: 0,
            uplinks: vec![("gre:10.0.0.2".into(), Default::default())],
        };
        let ports = json(&t, &sum, "ports");
        assert_eq!(
            ports,
            r#"{"ports":[{"kind":"uplink","oversize":0,"peer":"gre:10.0.0.2","port":5,"runts":0,"rx_bytes":60,"rx_frames":1,"tx_bytes":0,"tx_errors":0,"tx_frames":0}]}"#
        );
        assert_eq!(
            json(&t, &sum, "macs"),
            r#"{"macs":[{"idle_s":0,"mac":"02:00:00:00:00:09","port":5}]}"#
        );
        let show = json(&t, &sum, "show");
        assert!(
            show.contains(r#""mode":"hub""#) && show.contains(r#""uplinks":[{"#),
            "{show}"
        );
        assert!(
            json(&t, &sum, "").contains(r#""mode":"hub""#),
            "an empty line is show"
        );
        let bad = json(&t, &sum, "port/print\u{1b}");
        assert!(
            bad.contains(r#""error":"unknown command 'port/print\u001b'""#),
            "{bad}"
        );
        assert!(!json(&t, &sum, "help").contains('\n'));
    }
}
