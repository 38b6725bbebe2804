//! Curtailment through the cgminer API, as the fleet console drives it: a power target
//! with the write token lowers an emulated machine's reported draw to the target and its
//! nonces in proportion to its clock; without the token it is refused; `sleep` stops the
//! nonces at idle power and `wake` brings them back at the target in force. Each reply
//! comes once the machine did it, so a reading right after it shows the new draw.
//!
//! Alone in its file (its own test binary), so no other test's devices share the CPU while
//! it compares rates; the rates are compared over alternating windows with wide bounds.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hashforge_asic::{MachineProfile, PowerModel};
use hashforge_miner::{DeviceSpec, Miner, MinerHandle};
use hashforge_minerapi::cgminer::{decode_reply, Request};
use hashforge_minerapi::{bmminer, MinerStatus};
use serde_json::Value;
use support::{api, http_get, wait_for, TestPool};

const TOKEN: &str = "s3cret";
const BOUND: Duration = Duration::from_secs(30);

/// One request with `parameter` (and the token, when `token`); the reply's STATUS.
async fn command(addr: SocketAddr, cmd: &str, parameter: &str, token: bool) -> Value {
    let token = if token {
        format!(r#","token":"{TOKEN}""#)
    } else {
        String::new()
    };
    let request = format!(r#"{{"command":"{cmd}","parameter":"{parameter}"{token}}}"#);
    let v: Value = serde_json::from_str(&api(addr, &request).await).unwrap();
    v["STATUS"][0].clone()
}

/// What a fleet tool reads.
async fn read(addr: SocketAddr) -> MinerStatus {
    let req = Request::new(bmminer::READ_ALL, "");
    let reply = api(addr, &String::from_utf8(req.encode()).unwrap()).await;
    bmminer::read(&decode_reply(reply.as_bytes()).unwrap(), Some(1)).unwrap()
}

fn nonces(miner: &MinerHandle) -> u64 {
    miner.snapshot().devices[0].chains[0]
        .chips
        .iter()
        .map(|c| c.nonces)
        .sum()
}

fn watts(miner: &MinerHandle) -> f64 {
    miner
        .snapshot()
        .power_w
        .expect("an emulated machine reports its draw")
}

/// Nonces the chip returns over 1.2 s, once a change has settled.
async fn window(miner: &MinerHandle) -> u64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = nonces(miner);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    nonces(miner) - start
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_target_lowers_draw_and_rate_and_sleep_stops_both_until_wake() {
    let pool = TestPool::start(0, 0.002).await;
    let mut config = support::miner_config(&[(&pool.url(), "w")]);
    config.devices = vec![DeviceSpec::Emulated {
        profile: "bitaxe-gamma".into(),
    }];
    config.api.write_token = Some(TOKEN.into());
    let miner = Miner::start(config).await.unwrap();
    let addr = miner.api_addr().unwrap();
    let model = PowerModel {
        profile: "bitaxe-gamma".parse::<MachineProfile>().unwrap(),
        boards: 1,
    };
    let target = 8.0;
    let planned = model.plan(target).point;
    wait_for("the board to hash", BOUND, || nonces(&miner) > 50).await;
    wait_for("its nominal draw", BOUND, || {
        (watts(&miner) - model.nominal().watts).abs() < 1e-6
    })
    .await;
    let s = read(addr).await;
    assert_eq!((s.power_limit_w, s.sleeping), (None, Some(false)));
    assert_eq!(s.power_w, Some(19.0));
    assert_eq!(s.chains[0].frequency_mhz, Some(525.0));

    // Refused without the token, as every write is; bad watts refused with the token.
    let st = command(addr, "powertarget", "8", false).await;
    assert_eq!(
        (&st["STATUS"], &st["Code"]),
        (&Value::from("E"), &Value::from(45))
    );
    for bad in ["-5", "NaN", "eight", ""] {
        let st = command(addr, "powertarget", bad, true).await;
        assert_eq!(st["STATUS"], "E", "{bad}: {st}");
        assert!(
            st["Msg"].as_str().unwrap().contains("powertarget|none"),
            "{bad}: {st}"
        );
    }
    assert_eq!(miner.snapshot().power_limit_w, None);

    // The target, with the token: the reply says the clock and voltage chosen.
    let st = command(addr, "powertarget", "8", true).await;
    assert_eq!(st["STATUS"], "I", "{st}");
    let msg = st["Msg"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "power target 8 W: 1 chain at {:.2} MHz, {} mV: expected {:.0} W",
            planned.mhz, planned.mv, planned.watts
        )),
        "{msg}"
    );
    assert!(msg.ends_with("(was 19 W)"), "{msg}");
    // The reply comes once the chains run at the new clock: a reading now shows it.
    let s = read(addr).await;
    assert!((watts(&miner) - planned.watts).abs() < 1e-6);
    assert_eq!((s.power_limit_w, s.sleeping), (Some(8.0), Some(false)));
    assert!(s.power_w.unwrap() <= target, "{:?}", s.power_w);
    let mhz = s.chains[0].frequency_mhz.unwrap();
    assert!((mhz - planned.mhz).abs() < 0.5, "{mhz} MHz");
    let (_, metrics) = http_get(miner.http_addr().unwrap(), "/metrics").await;
    assert!(
        metrics.contains("hashforge_miner_power_limit_watts 8\n"),
        "{metrics}"
    );
    let (_, summary) = http_get(miner.http_addr().unwrap(), "/api/summary").await;
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["power_limit_w"], 8.0);
    assert_eq!(summary["sleeping"], false);
    let (_, page) = http_get(miner.http_addr().unwrap(), "/").await;
    assert!(page.contains("power target 8 W"), "{page}");

    // The rate falls with the clock: windows at the target and at nominal, alternating.
    let (mut limited, mut nominal) = (window(&miner).await, 0);
    for _ in 0..2 {
        assert_eq!(
            command(addr, "powertarget", "none", true).await["STATUS"],
            "I"
        );
        nominal += window(&miner).await;
        assert_eq!(command(addr, "powertarget", "8", true).await["STATUS"], "I");
        limited += window(&miner).await;
    }
    let share = limited as f64 / (nominal as f64 * 1.5);
    let expected = planned.mhz / 525.0;
    assert!(
        nominal > 300 && (0.2..0.8).contains(&share),
        "{limited} nonces at {:.0} MHz over 3 windows, {nominal} at 525 MHz over 2: {share:.2} \
         of the rate, about {expected:.2} expected",
        planned.mhz
    );

    // Asleep: no nonces, idle power; refused without the token.
    let st = command(addr, "sleep", "", false).await;
    assert_eq!(st["Code"], 45, "{st}");
    let st = command(addr, "sleep", "", true).await;
    assert_eq!(st["STATUS"], "I", "{st}");
    assert!(
        st["Msg"]
            .as_str()
            .unwrap()
            .starts_with("asleep: no device hashes, expected 2 W"),
        "{st}"
    );
    assert_eq!(watts(&miner), 1.5, "the idle draw, once the reply came");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asleep = nonces(&miner);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(nonces(&miner), asleep, "no nonces while asleep");
    let s = read(addr).await;
    assert_eq!((s.power_limit_w, s.sleeping), (Some(8.0), Some(true)));
    assert_eq!(s.chains[0].frequency_mhz, None);
    wait_for("the 5 s rate to fall to 0", BOUND, || {
        miner.snapshot().hashrate.last_5s.as_hs() == 0.0
    })
    .await;

    // Awake: back at the target in force, hashing.
    let st = command(addr, "wake", "", true).await;
    assert_eq!(st["STATUS"], "I", "{st}");
    assert!(
        st["Msg"]
            .as_str()
            .unwrap()
            .starts_with("awake (power target 8 W): 1 chain at"),
        "{st}"
    );
    assert!((watts(&miner) - planned.watts).abs() < 1e-6);
    wait_for("nonces again", BOUND, || nonces(&miner) > asleep + 50).await;
    let s = read(addr).await;
    assert_eq!((s.power_limit_w, s.sleeping), (Some(8.0), Some(false)));
    miner.stop().await;
}
